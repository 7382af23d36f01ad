"""A local Flower deployment: one SuperLink and its SuperNodes on 127.0.0.1.

:class:`Deployment` starts the SuperLink (plain, or with TLS and SuperNode
authentication), registers SuperNode keys, starts and restarts SuperNodes and
checks that a SuperNode with an unregistered key is refused. Its processes
belong to a :class:`~simulations.deploy.processes.Cluster`, which stops them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simulations.deploy.certificates import TlsFiles, check_tls, make_node_key, make_tls
from simulations.deploy.common import (
    BIN,
    CONNECTION,
    FLAGGED_PARTITION,
    HOST,
    NUM_NODES,
    DemoError,
    say,
)
from simulations.deploy.packaging import write_flower_config
from simulations.deploy.processes import Cluster, Deadline, Proc, free_port, wait_for

NODE_ID_RE = re.compile(r"SuperNode ID: (\d+)")
READY_RE = re.compile(r"Application startup complete")


@dataclass
class Node:
    """One SuperNode: its partition, key, process and node id."""

    partition: int
    private_key: Path | None
    proc: Proc
    node_id: int = 0


@dataclass
class Deployment:
    """The SuperLink and SuperNodes of one demo, in a work folder."""

    workdir: Path
    tls_auth: bool
    deadline: Deadline
    cluster: Cluster
    port: int = 0
    tls: TlsFiles | None = None
    superlink: Proc | None = None
    nodes: dict[int, Node] = field(default_factory=dict)
    cli_env: dict[str, str] = field(default_factory=dict)

    def start_superlink(self) -> Proc:
        """Start the SuperLink (TLS and SuperNode auth with ``tls_auth``).

        With ``tls_auth`` it then checks that the SuperLink refuses a
        plain-text connection (:func:`check_tls`).
        """
        self.port = free_port()
        self.cluster.ports.append(self.port)
        address = f"{HOST}:{self.port}"
        cmd = [
            str(BIN / "flower-superlink"),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--disable-runtime-dependency-installation",
        ]
        if self.tls_auth:
            self.tls = make_tls(self.workdir / "tls")
            cmd += [
                "--ssl-ca-certfile",
                str(self.tls.ca_cert),
                "--ssl-certfile",
                str(self.tls.server_cert),
                "--ssl-keyfile",
                str(self.tls.server_key),
                "--enable-supernode-auth",
            ]
        else:
            cmd.append("--insecure")
        env = dict(self.cluster.env, FLWR_HOME=str(self.workdir / "superlink" / "home"))
        link = self.cluster.start(
            "SuperLink",
            cmd,
            self.workdir / "superlink.log",
            self.workdir / "superlink",
            env,
        )
        self.superlink = link
        wait_for(
            "the SuperLink to start",
            lambda: READY_RE.search(link.text()),
            self.deadline,
            alive=link,
        )
        cli_home = self.workdir / "cli-home"
        ca_cert = None if self.tls is None else self.tls.ca_cert
        write_flower_config(cli_home, address, ca_cert)
        self.cli_env = dict(self.cluster.env, FLWR_HOME=str(cli_home))
        mode = "TLS, SuperNode authentication on" if self.tls_auth else "insecure"
        say(f"SuperLink up on {address} ({mode}), pid {link.pid}")
        if ca_cert is not None:
            say(check_tls(HOST, self.port, ca_cert))
        return link

    def register(self, public_keys: Sequence[Path]) -> list[int]:
        """Register SuperNode public keys with ``flwr supernode register``.

        The CLI calls run side by side; returns the node ids, in order.
        """
        procs = [
            self.cluster.start(
                f"flwr supernode register {key.name}",
                [str(BIN / "flwr"), "supernode", "register", str(key), CONNECTION],
                self.workdir / f"register-{key.stem}.log",
                self.workdir,
                self.cli_env,
            )
            for key in public_keys
        ]
        ids = []
        for proc in procs:
            try:
                proc.popen.wait(min(120.0, max(self.deadline.left(), 1.0)))
            except subprocess.TimeoutExpired:
                raise DemoError(f"{proc.name} timed out:\n{proc.tail()}") from None
            match = re.search(r"SuperNode (\d+) registered", proc.text())
            if proc.popen.returncode != 0 or match is None:
                raise DemoError(f"{proc.name} failed:\n{proc.tail()}")
            ids.append(int(match.group(1)))
        return ids

    def start_node(
        self, partition: int, label: str, key: Path | None, max_retries: int = 0
    ) -> Node:
        """Start a SuperNode for ``partition`` (``key``: its private key).

        ``max_retries`` > 0: give up connecting after that many retries.
        """
        node_port = free_port()
        self.cluster.ports.append(node_port)
        cmd = [
            str(BIN / "flower-supernode"),
            "--superlink",
            f"{HOST}:{self.port}",
            "--port",
            str(node_port),
            "--node-config",
            f"partition-id={partition} num-partitions={NUM_NODES}",
        ]
        if max_retries > 0:
            cmd += ["--max-retries", str(max_retries)]
        if self.tls is not None:
            cmd += ["--root-certificates", str(self.tls.ca_cert)]
        else:
            cmd.append("--insecure")
        if key is not None:
            cmd += ["--auth-supernode-private-key", str(key)]
        folder = self.workdir / label
        env = dict(self.cluster.env, FLWR_HOME=str(folder / "home"))
        proc = self.cluster.start(
            f"SuperNode {label}", cmd, self.workdir / f"{label}.log", folder, env
        )
        return Node(partition, key, proc)

    def wait_node_id(self, node: Node) -> int:
        """Wait for the ``SuperNode ID: ...`` line of a SuperNode's log."""
        match = wait_for(
            f"{node.proc.name} to connect",
            lambda: NODE_ID_RE.search(node.proc.text()),
            self.deadline,
            alive=node.proc,
        )
        node.node_id = int(match.group(1))
        return node.node_id

    def start_nodes(self) -> None:
        """Start the SuperNodes; with ``tls_auth`` register their keys first.

        With ``tls_auth`` a further SuperNode, whose key is not registered, is
        started alongside and must be refused.
        """
        keys: dict[int, Path | None] = dict.fromkeys(range(NUM_NODES))
        registered: dict[int, int] = {}
        rogue = None
        if self.tls_auth:
            folder = self.workdir / "keys"
            pairs = {i: make_node_key(folder, f"node-{i}") for i in keys}
            keys = {i: private for i, (private, _) in pairs.items()}
            ids = self.register([public for _, public in pairs.values()])
            registered = dict(zip(pairs, ids))
            say(f"registered SuperNode public keys: node ids {registered}")
            unregistered, _ = make_node_key(folder, "unregistered")
            rogue = self.start_node(
                FLAGGED_PARTITION, "node-unregistered", unregistered, 3
            )
        for i, key in keys.items():
            self.nodes[i] = self.start_node(i, f"node-{i}", key)
        for i, node in self.nodes.items():
            self.wait_node_id(node)
            if i in registered and node.node_id != registered[i]:
                raise DemoError(
                    f"SuperNode {i} connected as node {node.node_id}, but its "
                    f"key was registered as node {registered[i]}"
                )
        ids_now = {i: node.node_id for i, node in self.nodes.items()}
        say(f"SuperNodes connected (partition -> node id): {ids_now}")
        if rogue is not None:
            self.check_refused(rogue)

    def check_refused(self, node: Node) -> None:
        """The SuperNode ``node``, whose key is not registered, must be refused."""
        try:
            node.proc.popen.wait(min(90.0, max(self.deadline.left(), 1.0)))
        except subprocess.TimeoutExpired:
            self.cluster.stop(node.proc)
            raise DemoError(
                "a SuperNode with an unregistered key was not refused within 90 s:\n"
                + node.proc.tail()
            ) from None
        text = node.proc.text()
        status = node.proc.popen.returncode
        if status == 0 or NODE_ID_RE.search(text):
            raise DemoError(
                "a SuperNode with an unregistered key was accepted "
                f"(exit status {status}):\n{node.proc.tail()}"
            )
        reason = next(
            (line.strip() for line in text.splitlines() if "[code:" in line),
            "see " + str(node.proc.log),
        )
        say(f"unregistered SuperNode refused: exit status {status}; {reason}")

    def restart_node(self, partition: int) -> tuple[int, int]:
        """Stop the SuperNode of ``partition`` and start it again, same key.

        Returns
        -------
        tuple[int, int]
            Its node id before and after the restart.
        """
        old = self.nodes[partition]
        say(
            f"restarting the SuperNode of partition {partition} (node "
            f"{old.node_id}, pid {old.proc.pid})"
        )
        self.cluster.stop(old.proc)
        new = self.start_node(partition, f"node-{partition}-restarted", old.private_key)
        new_id = self.wait_node_id(new)
        self.nodes[partition] = new
        same = "the same node id" if new_id == old.node_id else "a NEW node id"
        say(f"the restarted SuperNode connected as node {new_id}: {same}")
        return old.node_id, new_id
