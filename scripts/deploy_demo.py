"""Run FedUP on a real local Flower deployment and check that it unlearned.

``make deploy-demo`` runs this script. It starts one ``flower-superlink`` and
four ``flower-supernode`` processes on 127.0.0.1 (partition ``i`` on SuperNode
``i``; partition 0 is the label-flipping client), submits the project's Flower
app with ``flwr run`` and the run config ``overrides="+experiment=deploy"``,
streams the ServerApp's log and checks from it that

* FedUP flagged and unlearned the node of partition 0 in round T, and
* that node never trained again in a later round (it stays excluded).

``--tls-auth`` does the same over TLS with SuperNode authentication: it makes a
CA, a server certificate for 127.0.0.1/localhost and one key pair per
SuperNode in a temporary folder, registers the four public keys with
``flwr supernode register``, shows that a SuperNode with an unregistered key
is refused, and restarts the flagged SuperNode after it was flagged: the
restarted process must come back under the same node id and stay excluded.
``--restart-flagged`` does that restart in plain mode too (where, without
authentication, the restarted SuperNode gets a new node id and the check
fails). ``--identity-probe`` only restarts one SuperNode, without a run, and
prints the node ids it got. ``--prepare DIR`` only writes the certificates,
keys, app copy and CLI config of the manual walk-through in
``docs/deploying.md``.

Every process the script starts is stopped by its process id before it exits,
also on failure or timeout. Exit status 0: every check passed; 1: a check
failed or the deployment did not come up in time (the logs are kept and their
folder is printed).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
CONNECTION = "fedup-deploy"
NUM_NODES = 4
FLAGGED_PARTITION = 0
UNLEARNING_ROUND = 3
OVERRIDES = "+experiment=deploy"
# With a restart: never count as recovered, so that every ``max_recovery`` round
# runs and at least one is configured while the restarted SuperNode is back.
RESTART_OVERRIDES = "tolerance=-1.0"
APP_ITEMS = ("simulations", "fedup_flwr", "conf")

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NODE_LIST = r"\[([0-9, ]*)\]"
TRAIN_RE = re.compile(
    rf"FedUP: round (\d+): training on nodes {NODE_LIST}; excluded {NODE_LIST}"
)
FLAG_RE = re.compile(rf"FedUP: round (\d+): nodes {NODE_LIST} flagged and excluded")
UNLEARN_RE = re.compile(rf"FedUP: round (\d+): unlearned nodes {NODE_LIST}")
NODE_ID_RE = re.compile(r"SuperNode ID: (\d+)")
PUSH_RE = re.compile(r"\[Fleet\.PushMessages\] Push replies from node_id=(\d+)")
ACTIVATED_RE = re.compile(r"\[Fleet\.ActivateNode\] Activated node_id=(\d+)")
RUN_ID_RE = re.compile(r"Successfully started run (\d+)")
READY_RE = re.compile(r"Application startup complete")


class DemoError(RuntimeError):
    """A check failed, or the deployment did not come up."""


def say(message: str) -> None:
    """Print one progress line of the demo."""
    print(f"[deploy-demo] {message}", flush=True)


def clean(text: str) -> str:
    """Drop the ANSI colour codes Flower's logger writes."""
    return ANSI.sub("", text)


def read_log(path: Path) -> str:
    """The text of a log file without colour codes ('' if it does not exist)."""
    if not path.exists():
        return ""
    return clean(path.read_text(encoding="utf-8", errors="replace"))


def node_ids(text: str) -> list[int]:
    """Parse the inside of a logged list of node ids, e.g. ``'1, 2'``."""
    return [int(part) for part in text.replace(",", " ").split()]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------- processes
def _children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, read from /proc (empty where unavailable)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; it ends at the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children first)."""
    children = _children_map()
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        out.append(child)
        todo.extend(children.get(child, []))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2 :].split()[0] != "Z"


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def processes_matching(pattern: re.Pattern[str]) -> list[int]:
    """Pids (other than this process) whose command line matches ``pattern``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if pattern.search(cmdline):
            found.append(int(entry.name))
    return found


@dataclass
class Proc:
    """One process started by the demo, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return read_log(self.log)

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


@dataclass
class Cluster:
    """Starts processes in their own session and stops every one of them.

    Each process runs in a new session, so it and the children in its process
    group get SIGTERM (then SIGKILL) together; children that Flower detaches
    into a session of their own (the SuperLink's SuperExec, the ServerApp and
    ClientApp processes) are found through /proc before the stop and by the
    ports of this deployment afterwards, and are stopped by their pids too.
    """

    env: dict[str, str]
    ports: list[int] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        log: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        pipe: bool = False,
    ) -> Proc:
        """Start ``cmd`` with its output in ``log`` (or a pipe, read by the caller)."""
        cwd.mkdir(parents=True, exist_ok=True)
        handle = None if pipe else log.open("wb")
        popen = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log, handle)
        self.procs.append(proc)
        return proc

    def stop(self, *procs: Proc, grace: float = 15.0) -> None:
        """Stop ``procs``, their process groups and their descendants, by pid.

        All get SIGTERM at once; a group still running after ``grace`` seconds
        gets SIGKILL. Then any descendant still alive is stopped by its pid.
        """
        running = [p for p in procs if p.popen.poll() is None]
        family = [pid for p in running for pid in descendants(p.pid)]
        for proc in running:
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                try:
                    proc.popen.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self._stop_pids(family)
        for proc in procs:
            if proc.handle is not None:
                proc.handle.close()
                proc.handle = None

    def _stop_pids(self, pids: list[int]) -> None:
        live = [pid for pid in pids if _alive(pid)]
        for pid in live:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in live):
            time.sleep(0.1)
        for pid in live:
            if _alive(pid):
                _kill(pid, signal.SIGKILL)

    def stop_all(self) -> None:
        """Stop every process started, then any leftover using one of the ports.

        SIGINT and SIGTERM are ignored meanwhile, so that the clean-up is
        not cut short.
        """
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.stop(*self.procs)
            if self.ports:
                ports = "|".join(str(p) for p in self.ports)
                pattern = re.compile(rf"{re.escape(HOST)}:({ports})(?!\d)")
                self._stop_pids(processes_matching(pattern))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# -------------------------------------------------------------- TLS, keys
@dataclass(frozen=True)
class TlsFiles:
    """CA certificate and the SuperLink's certificate and key (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls(folder: Path) -> TlsFiles:
    """Make a CA and a server certificate for 127.0.0.1 and localhost.

    Parameters
    ----------
    folder : Path
        Where the PEM files are written.

    Returns
    -------
    TlsFiles
        The paths of the CA certificate and the server certificate and key.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FedUP demo CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(HOST)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(folder / "ca.crt", folder / "server.pem", folder / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.server_key.chmod(0o600)
    return files


def make_node_key(folder: Path, name: str) -> tuple[Path, Path]:
    """Make a SuperNode key pair (P-384, OpenSSH format, as Flower expects).

    Returns
    -------
    tuple[Path, Path]
        The private key (for ``--auth-supernode-private-key``) and the public
        key (for ``flwr supernode register``).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = folder / name
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + b"\n"
    )
    return private, public


# -------------------------------------------------------------- workspace
def strip_federations(pyproject: str) -> str:
    """Drop the ``[tool.flwr.federations*]`` tables from a pyproject.toml text.

    ``flwr run`` (1.42) migrates such tables into the Flower config file and
    comments them out in the app's pyproject.toml; the copy given to
    ``flwr run`` has none, so nothing is rewritten.
    """
    out: list[str] = []
    skipping = False
    for line in pyproject.splitlines(keepends=True):
        header = re.match(r"\s*\[([^\]]*)\]", line)
        if header:
            skipping = header.group(1).strip().startswith("tool.flwr.federations")
        if not skipping:
            out.append(line)
    return "".join(out)


def prepare_app(dest: Path) -> Path:
    """Copy the Flower app (code, Hydra config, pyproject.toml) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in APP_ITEMS:
        shutil.copytree(ROOT / item, dest / item, ignore=ignore, dirs_exist_ok=True)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (dest / "pyproject.toml").write_text(strip_federations(text), encoding="utf-8")
    return dest


def write_flower_config(home: Path, address: str, ca_cert: Path | None) -> None:
    """Write the CLI's Flower config with one SuperLink connection."""
    home.mkdir(parents=True, exist_ok=True)
    lines = [
        "[superlink]",
        f'default = "{CONNECTION}"',
        "",
        f"[superlink.{CONNECTION}]",
        f'address = "{address}"',
    ]
    if ca_cert is None:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{ca_cert}"')
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def base_env() -> dict[str, str]:
    """Environment of every process: this venv first on PATH, no network use."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    shared = ROOT.parent / "shared" / "data"
    if not env.get("FEDUP_DATA_DIR") and shared.is_dir():
        env["FEDUP_DATA_DIR"] = str(shared)
    return env


# ------------------------------------------------------------- the demo
@dataclass
class Deadline:
    """The time left of ``--timeout``."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def wait_for(
    what: str,
    found: Callable[[], re.Match[str] | None],
    deadline: Deadline,
    limit: float = 120.0,
    alive: Proc | None = None,
) -> re.Match[str]:
    """Poll until ``found`` returns a match; fail if ``alive`` exits first."""
    end = time.monotonic() + min(limit, max(deadline.left(), 0.0))
    while True:
        match = found()
        if match is not None:
            return match
        if alive is not None and alive.popen.poll() is not None:
            raise DemoError(
                f"{alive.name} exited (status {alive.popen.returncode}) "
                f"before {what}:\n{alive.tail()}"
            )
        if time.monotonic() > end:
            tail = f":\n{alive.tail()}" if alive is not None else ""
            raise DemoError(f"timed out waiting for {what}{tail}")
        time.sleep(0.2)


@dataclass
class Node:
    """One SuperNode: its partition, key, process and node id."""

    partition: int
    private_key: Path | None
    proc: Proc
    node_id: int = 0


@dataclass
class Demo:
    """One demo deployment in a work folder."""

    workdir: Path
    tls_auth: bool
    deadline: Deadline
    cluster: Cluster
    port: int = 0
    tls: TlsFiles | None = None
    superlink: Proc | None = None
    nodes: dict[int, Node] = field(default_factory=dict)
    cli_env: dict[str, str] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    # (node id before, node id after) of the flagged SuperNode's restart
    restart: tuple[int, int] | None = None

    # ------------------------------------------------------------ set-up
    def start_superlink(self) -> None:
        """Start the SuperLink (TLS and SuperNode auth with ``tls_auth``)."""
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
        self.superlink = self.cluster.start(
            "SuperLink",
            cmd,
            self.workdir / "superlink.log",
            self.workdir / "superlink",
            env,
        )
        link = self.superlink
        wait_for(
            "the SuperLink to start",
            lambda: READY_RE.search(link.text()),
            self.deadline,
            alive=link,
        )
        cli_home = self.workdir / "cli-home"
        write_flower_config(
            cli_home, address, None if self.tls is None else self.tls.ca_cert
        )
        self.cli_env = dict(self.cluster.env, FLWR_HOME=str(cli_home))
        mode = "TLS, SuperNode authentication on" if self.tls_auth else "insecure"
        say(f"SuperLink up on {address} ({mode}), pid {link.pid}")

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
        """Start the four SuperNodes; with ``tls_auth`` register them first.

        With ``tls_auth`` a fifth SuperNode, whose key is not registered, is
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
        self.findings.append(
            f"unregistered SuperNode refused: exit status {status}; {reason}"
        )
        say(self.findings[-1])

    # ----------------------------------------------------------- the run
    def run_app(self, restart: bool) -> list[str]:
        """``flwr run`` the app with ``--stream``; restart the flagged node."""
        app = prepare_app(self.workdir / "app")
        overrides = OVERRIDES + (f" {RESTART_OVERRIDES}" if restart else "")
        cmd = [
            str(BIN / "flwr"),
            "run",
            str(app),
            CONNECTION,
            "--run-config",
            f'overrides="{overrides}"',
            "--stream",
        ]
        say(f"flwr run {app} {CONNECTION} --run-config 'overrides=\"{overrides}\"'")
        proc = self.cluster.start(
            "flwr run",
            cmd,
            self.workdir / "run.log",
            self.workdir,
            self.cli_env,
            pipe=True,
        )
        lines: list[str] = []
        thread = threading.Thread(target=_copy_lines, args=(proc, lines), daemon=True)
        thread.start()
        flagged_node = self.nodes[FLAGGED_PARTITION].node_id
        restarted = not restart
        while proc.popen.poll() is None:
            if self.deadline.left() <= 0:
                raise DemoError(
                    f"the run did not finish within --timeout "
                    f"{self.deadline.seconds:.0f} s"
                )
            if not restarted and _flagged(list(lines), flagged_node):
                restarted = True
                self.restart_flagged()
            time.sleep(0.2)
        thread.join(10)
        if proc.popen.returncode != 0:
            raise DemoError(
                f"flwr run exited with status {proc.popen.returncode}:\n"
                + "\n".join(lines[-30:])
            )
        if not restarted:
            raise DemoError("the flagged SuperNode was never flagged, so not restarted")
        return lines

    def restart_flagged(self) -> None:
        """Stop the flagged client's SuperNode and start it again, same key."""
        old = self.nodes[FLAGGED_PARTITION]
        say(
            f"restarting the flagged SuperNode (node {old.node_id}, pid {old.proc.pid})"
        )
        self.cluster.stop(old.proc)
        new = self.start_node(FLAGGED_PARTITION, "node-0-restarted", old.private_key)
        new_id = self.wait_node_id(new)
        self.nodes[FLAGGED_PARTITION] = new
        self.restart = (old.node_id, new_id)
        same = "the same node id" if new_id == old.node_id else "a NEW node id"
        say(f"the restarted SuperNode connected as node {new_id}: {same}")


def _flagged(lines: Sequence[str], node: int) -> bool:
    """Whether the ServerApp logged that ``node`` was flagged."""
    for line in lines:
        match = FLAG_RE.search(line)
        if match is not None and node in node_ids(match.group(2)):
            return True
    return False


def _copy_lines(proc: Proc, lines: list[str]) -> None:
    """Copy the output of a piped process to its log file and to ``lines``."""
    assert proc.popen.stdout is not None
    with proc.log.open("w", encoding="utf-8") as out:
        for raw in proc.popen.stdout:
            line = clean(raw.decode("utf-8", errors="replace")).rstrip("\n")
            out.write(line + "\n")
            out.flush()
            lines.append(line)


# -------------------------------------------------------------- checks
@dataclass(frozen=True)
class TrainLine:
    """One ``FedUP: round N: training on nodes [..]; excluded [..]`` line."""

    index: int
    server_round: int
    nodes: list[int]
    excluded: list[int]


def parse_train_lines(lines: Sequence[str]) -> list[TrainLine]:
    """Every round's sampled and excluded nodes, in log order."""
    out = []
    for index, line in enumerate(lines):
        if m := TRAIN_RE.search(line):
            out.append(
                TrainLine(
                    index, int(m.group(1)), node_ids(m.group(2)), node_ids(m.group(3))
                )
            )
    return out


def check_unlearning(
    lines: Sequence[str], flagged: int, former_ids: Sequence[int] = ()
) -> tuple[int, list[str]]:
    """Check the ServerApp log: ``flagged`` unlearned, never trained again.

    Parameters
    ----------
    lines : Sequence[str]
        The ServerApp's log lines, in order.
    flagged : int
        Node id of the malicious client (partition 0) when it was flagged.
    former_ids : Sequence[int]
        Other node ids the same client had (after a restart): none of them
        may train after the flagging either.

    Returns
    -------
    tuple[int, list[str]]
        Index of the flagging line in ``lines`` and what was found.

    Raises
    ------
    DemoError
        If a check fails.
    """
    flags = [
        (i, int(m.group(1)), node_ids(m.group(2)))
        for i, line in enumerate(lines)
        if (m := FLAG_RE.search(line))
    ]
    unlearned = [
        (int(m.group(1)), node_ids(m.group(2)))
        for line in lines
        if (m := UNLEARN_RE.search(line))
    ]
    if [(r, n) for _, r, n in flags] != [(UNLEARNING_ROUND, [flagged])]:
        raise DemoError(
            f"expected node {flagged} to be flagged in round {UNLEARNING_ROUND}, "
            f"found flaggings {[(r, n) for _, r, n in flags]}"
        )
    if unlearned != [(UNLEARNING_ROUND, [flagged])]:
        raise DemoError(
            f"expected node {flagged} to be unlearned in round {UNLEARNING_ROUND}, "
            f"found unlearnings {unlearned}"
        )
    flag_index = flags[0][0]
    rounds = parse_train_lines(lines)
    before = [t for t in rounds if t.index < flag_index]
    after = [t for t in rounds if t.index > flag_index]
    if not before or flagged not in before[-1].nodes:
        raise DemoError(f"node {flagged} did not train in the round it was flagged in")
    if not after:
        raise DemoError("no round after the unlearning round: nothing to check")
    client_ids = {flagged, *former_ids}
    for t in after:
        again = client_ids & set(t.nodes)
        if again:
            raise DemoError(
                f"round {t.server_round}: the flagged client trained again as "
                f"node(s) {sorted(again)} (training on {t.nodes}, excluded "
                f"{t.excluded})"
            )
        if flagged not in t.excluded:
            raise DemoError(f"round {t.server_round}: node {flagged} not excluded")
    found = [
        f"round {UNLEARNING_ROUND}: node {flagged} flagged, excluded and unlearned",
        f"rounds {[t.server_round for t in after]} after it: trained on "
        f"{len(after[0].nodes)} nodes, node {flagged} excluded in each",
    ]
    return flag_index, found


def rounds_configured_after(
    superlink_log: str, rounds: Sequence[TrainLine], node: int
) -> list[TrainLine]:
    """The rounds the ServerApp configured after ``node`` last (re)activated.

    The SuperLink logs, in order, every node activation and every reply it
    receives. The replies of the rounds in ``rounds`` (the last rounds of the
    run, in order) are its last replies, one per node sampled; a round is
    configured only once every reply of the round before it arrived. So a
    round was configured after the activation if the last reply of the round
    before it comes after the activation in the SuperLink's log.

    Raises
    ------
    DemoError
        If the replies do not match the rounds (e.g. a failed reply).
    """
    events = [
        ("push" if m.re is PUSH_RE else "activate", int(m.group(1)))
        for line in superlink_log.splitlines()
        if (m := PUSH_RE.search(line) or ACTIVATED_RE.search(line))
    ]
    activations = [
        i for i, (kind, n) in enumerate(events) if kind == "activate" and n == node
    ]
    if not activations:
        raise DemoError(f"the SuperLink never activated node {node}")
    activated = activations[-1]
    pushes = [(i, n) for i, (kind, n) in enumerate(events) if kind == "push"]
    blocks: list[list[tuple[int, int]]] = []
    end = len(pushes)
    for t in reversed(rounds):
        block = pushes[end - len(t.nodes) : end]
        if end < len(t.nodes) or sorted(n for _, n in block) != sorted(t.nodes):
            raise DemoError(
                f"the SuperLink's replies do not match round {t.server_round} "
                f"(nodes {t.nodes}): cannot tell which rounds followed the restart"
            )
        blocks.insert(0, block)
        end -= len(t.nodes)
    return [
        t for t, previous in zip(rounds[1:], blocks[:-1]) if previous[-1][0] > activated
    ]


def check_restart(demo: Demo, lines: Sequence[str], flag_index: int) -> None:
    """The restarted flagged SuperNode: same id, and rounds ran while it was back.

    That it was excluded in every round after the flagging is checked by
    :func:`check_unlearning`.
    """
    assert demo.restart is not None and demo.superlink is not None
    old_id, new_id = demo.restart
    if new_id != old_id:
        raise DemoError(
            f"the restarted flagged SuperNode came back as node {new_id}, not "
            f"{old_id}: to FedUP it is a new client"
        )
    rounds = [t for t in parse_train_lines(lines) if t.index > flag_index]
    flag_round = [t for t in parse_train_lines(lines) if t.index < flag_index][-1:]
    later = rounds_configured_after(demo.superlink.text(), flag_round + rounds, new_id)
    if not later:
        raise DemoError(
            "no round was configured after the flagged SuperNode came back, so "
            "the restart proves nothing; raise rounds.max_recovery"
        )
    restarted_log = demo.nodes[FLAGGED_PARTITION].proc.text()
    if "Receiving: train message" in restarted_log:
        raise DemoError("the restarted flagged SuperNode received a train message")
    demo.findings.append(
        f"restarted flagged SuperNode came back as the same node {new_id}; rounds "
        f"{[t.server_round for t in later]} were configured while it was back "
        f"online and it stayed excluded (no train message reached it)"
    )
    say(demo.findings[-1])


# ---------------------------------------------------------------- modes
@contextmanager
def workspace(keep: Path | None) -> Iterator[tuple[Path, list[bool]]]:
    """A work folder: ``keep`` if given, else a temporary one, deleted on success."""
    ok = [False]
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        try:
            yield keep, ok
        finally:
            say(f"logs in {keep}")
        return
    folder = Path(tempfile.mkdtemp(prefix="fedup-deploy-"))
    try:
        yield folder, ok
    finally:
        if ok[0]:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            say(f"logs kept in {folder}")


def run_demo(args: argparse.Namespace) -> None:
    """Deploy, run the app, check the unlearning (see the module docstring)."""
    deadline = Deadline(args.timeout)
    restart = args.tls_auth or args.restart_flagged
    with workspace(args.workdir) as (workdir, ok):
        cluster = Cluster(base_env())
        demo = Demo(workdir, args.tls_auth, deadline, cluster)
        try:
            demo.start_superlink()
            demo.start_nodes()
            lines = demo.run_app(restart)
        finally:
            cluster.stop_all()
        flagged = demo.nodes[FLAGGED_PARTITION]
        first_id = flagged.node_id if demo.restart is None else demo.restart[0]
        former = [] if demo.restart is None else [demo.restart[1]]
        try:
            flag_index, found = check_unlearning(lines, first_id, former)
            demo.findings[:0] = found
            for line in found:
                say(line)
            if restart:
                check_restart(demo, lines, flag_index)
        except DemoError as err:
            tail = "\n".join(lines[-30:])
            raise DemoError(f"{err}\n--- end of the ServerApp log:\n{tail}") from None
        table = [line for line in lines if "R_rec" in line or line.startswith("fedup:")]
        for line in table:
            say(f"ServerApp: {line}")
        say(f"PASSED in {deadline.elapsed():.0f} s")
        ok[0] = True


def run_identity_probe(args: argparse.Namespace) -> None:
    """Restart one SuperNode (no run) and print the node ids it got."""
    deadline = Deadline(args.timeout)
    with workspace(args.workdir) as (workdir, ok):
        cluster = Cluster(base_env())
        demo = Demo(workdir, args.tls_auth, deadline, cluster)
        try:
            demo.start_superlink()
            key = None
            if args.tls_auth:
                key, public = make_node_key(workdir / "keys", "node-0")
                say(f"registered the public key as node {demo.register([public])[0]}")
            first = demo.start_node(0, "node-0", key)
            first_id = demo.wait_node_id(first)
            cluster.stop(first.proc)
            second = demo.start_node(0, "node-0-restarted", key)
            second_id = demo.wait_node_id(second)
        finally:
            cluster.stop_all()
        mode = "with SuperNode authentication" if args.tls_auth else "without auth"
        same = "SAME" if first_id == second_id else "NEW"
        say(f"{mode}: node id {first_id} before the restart, {second_id} after: {same}")
        expected_same = bool(args.tls_auth)
        if (first_id == second_id) != expected_same:
            raise DemoError("the node id did not behave as docs/deploying.md says")
        ok[0] = True


def prepare(folder: Path, port: int) -> None:
    """Write what the manual walk-through of docs/deploying.md needs.

    Parameters
    ----------
    folder : Path
        Gets ``tls/`` (CA, server certificate and key), ``keys/`` (a key pair
        per SuperNode, and one that is never registered), ``app/`` (the app
        for ``flwr run``) and ``cli/config.toml`` (the ``fedup-deploy``
        connection to ``127.0.0.1:port`` over TLS).
    port : int
        Port of the SuperLink.
    """
    tls = make_tls(folder / "tls")
    for name in [f"node-{i}" for i in range(NUM_NODES)] + ["unregistered"]:
        make_node_key(folder / "keys", name)
    prepare_app(folder / "app")
    write_flower_config(folder / "cli", f"{HOST}:{port}", tls.ca_cert)
    for path in sorted(
        p for p in folder.rglob("*") if p.parent.name in {"tls", "keys"}
    ):
        say(f"wrote {path}")
    say(f"wrote {folder / 'app'} and {folder / 'cli' / 'config.toml'}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tls-auth",
        action="store_true",
        help="TLS and SuperNode authentication; also checks that an unregistered "
        "SuperNode is refused and restarts the flagged SuperNode",
    )
    parser.add_argument(
        "--restart-flagged",
        action="store_true",
        help="restart the flagged SuperNode once flagged (implied by --tls-auth)",
    )
    parser.add_argument(
        "--identity-probe",
        action="store_true",
        help="no run: restart one SuperNode and print its node ids",
    )
    parser.add_argument(
        "--prepare",
        type=Path,
        metavar="DIR",
        default=None,
        help="no run: write certificates, SuperNode keys, the app copy and the "
        "CLI config for the manual walk-through of docs/deploying.md into DIR",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=9092,
        help="SuperLink port written by --prepare (default: 9092)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="give up after this many seconds (default: 900)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the certificates, keys and logs here (default: a temporary "
        "folder, deleted on success)",
    )
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when every check passed."""
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.prepare is not None:
            prepare(args.prepare, args.port)
        elif args.identity_probe:
            run_identity_probe(args)
        else:
            run_demo(args)
    except DemoError as err:
        say(f"FAILED: {err}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; every process started was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
