"""The demo's modes: the full run, the node-id probe, and the walk-through files.

:func:`run_demo` checks the data folder, deploys (:class:`Deployment`),
submits the app with ``flwr run --stream``, restarts the flagged SuperNode
once it is flagged (with a restart) and checks the logs
(:mod:`simulations.deploy.checks`). :func:`run_identity_probe` restarts one
SuperNode without a run; :func:`prepare` writes what the manual walk-through
of docs/deploying.md needs. Every process started is stopped by its pid
before they return, also on failure.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulations.deploy.certificates import DEMO_CERT_DAYS, make_node_key, make_tls
from simulations.deploy.checks import check_restart, check_unlearning, was_flagged
from simulations.deploy.common import (
    BIN,
    CONNECTION,
    FLAGGED_PARTITION,
    HOST,
    NUM_NODES,
    OVERRIDES,
    RESTART_OVERRIDES,
    DemoError,
    clean,
    say,
)
from simulations.deploy.deployment import Deployment
from simulations.deploy.environment import base_env, check_data_dir
from simulations.deploy.packaging import prepare_app, write_flower_config
from simulations.deploy.processes import Cluster, Deadline, Proc


@contextmanager
def workspace(keep: Path | None) -> Iterator[tuple[Path, list[bool]]]:
    """A work folder: ``keep`` if given, else a temporary one, deleted on success.

    Set the yielded flag's only item to ``True`` on success.
    """
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


def _copy_lines(proc: Proc, lines: list[str]) -> None:
    """Copy the output of a piped process to its log file and to ``lines``."""
    assert proc.popen.stdout is not None
    with proc.log.open("w", encoding="utf-8") as out:
        for raw in proc.popen.stdout:
            line = clean(raw.decode("utf-8", errors="replace")).rstrip("\n")
            out.write(line + "\n")
            out.flush()
            lines.append(line)


def stream_run(
    deployment: Deployment, restart: bool
) -> tuple[list[str], tuple[int, int] | None]:
    """``flwr run`` the app with ``--stream``; with ``restart``, restart the flagged.

    Returns
    -------
    tuple[list[str], tuple[int, int] or None]
        The ServerApp's log lines, and the flagged SuperNode's node id before
        and after its restart (``None`` without ``restart``).

    Raises
    ------
    DemoError
        If the run fails or outlasts the deadline, or (with ``restart``) the
        flagged node is never flagged.
    """
    app = prepare_app(deployment.workdir / "app")
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
    proc = deployment.cluster.start(
        "flwr run",
        cmd,
        deployment.workdir / "run.log",
        deployment.workdir,
        deployment.cli_env,
        pipe=True,
    )
    lines: list[str] = []
    thread = threading.Thread(target=_copy_lines, args=(proc, lines), daemon=True)
    thread.start()
    flagged_node = deployment.nodes[FLAGGED_PARTITION].node_id
    ids: tuple[int, int] | None = None
    deadline = deployment.deadline
    while proc.popen.poll() is None:
        if deadline.left() <= 0:
            raise DemoError(
                f"the run did not finish within --timeout {deadline.seconds:.0f} s"
            )
        if restart and ids is None and was_flagged(list(lines), flagged_node):
            ids = deployment.restart_node(FLAGGED_PARTITION)
        time.sleep(0.2)
    thread.join(10)
    if proc.popen.returncode != 0:
        raise DemoError(
            f"flwr run exited with status {proc.popen.returncode}:\n"
            + "\n".join(lines[-30:])
        )
    if restart and ids is None:
        raise DemoError("the flagged SuperNode was never flagged, so not restarted")
    return lines, ids


def run_demo(
    *, tls_auth: bool, restart: bool, timeout: float, workdir: Path | None
) -> None:
    """Deploy, run the app, check the unlearning (see :mod:`simulations.deploy`).

    Parameters
    ----------
    tls_auth : bool
        TLS and SuperNode authentication (and the checks that need them).
    restart : bool
        Restart the flagged SuperNode once it is flagged.
    timeout : float
        Seconds the whole demo may take.
    workdir : Path or None
        Keep certificates, keys and logs here; ``None``: a temporary folder.

    Raises
    ------
    DemoError
        If the data folder is missing, the deployment does not come up in
        time, or a check fails.
    """
    deadline = Deadline(timeout)
    env = base_env()
    say(f"data folder: {check_data_dir(env)}")  # before any process starts
    with workspace(workdir) as (folder, ok):
        cluster = Cluster(env)
        deployment = Deployment(folder, tls_auth, deadline, cluster)
        try:
            deployment.start_superlink()
            deployment.start_nodes()
            lines, ids = stream_run(deployment, restart)
        finally:
            cluster.stop_all()
        first_id = (
            deployment.nodes[FLAGGED_PARTITION].node_id if ids is None else ids[0]
        )
        former = [] if ids is None else [ids[1]]
        try:
            flag_index, found = check_unlearning(lines, first_id, former)
            for line in found:
                say(line)
            if ids is not None:
                assert deployment.superlink is not None
                restarted = deployment.nodes[FLAGGED_PARTITION].proc.text()
                say(
                    check_restart(
                        ids, lines, flag_index, deployment.superlink.text(), restarted
                    )
                )
        except DemoError as err:
            tail = "\n".join(lines[-30:])
            raise DemoError(f"{err}\n--- end of the ServerApp log:\n{tail}") from None
        table = [line for line in lines if "R_rec" in line or line.startswith("fedup:")]
        for line in table:
            say(f"ServerApp: {line}")
        say(f"PASSED in {deadline.elapsed():.0f} s")
        ok[0] = True


def run_identity_probe(*, tls_auth: bool, timeout: float, workdir: Path | None) -> None:
    """Restart one SuperNode (no run) and print the node ids it got.

    Raises
    ------
    DemoError
        If the node id does not behave as docs/deploying.md says: the same
        after a restart with ``tls_auth``, a new one without.
    """
    deadline = Deadline(timeout)
    with workspace(workdir) as (folder, ok):
        cluster = Cluster(base_env())
        deployment = Deployment(folder, tls_auth, deadline, cluster)
        try:
            deployment.start_superlink()
            key = None
            if tls_auth:
                key, public = make_node_key(folder / "keys", "node-0")
                node_id = deployment.register([public])[0]
                say(f"registered the public key as node {node_id}")
            deployment.nodes[0] = deployment.start_node(0, "node-0", key)
            deployment.wait_node_id(deployment.nodes[0])
            first_id, second_id = deployment.restart_node(0)
        finally:
            cluster.stop_all()
        mode = "with SuperNode authentication" if tls_auth else "without auth"
        same = "SAME" if first_id == second_id else "NEW"
        say(f"{mode}: node id {first_id} before the restart, {second_id} after: {same}")
        if (first_id == second_id) != tls_auth:
            raise DemoError("the node id did not behave as docs/deploying.md says")
        ok[0] = True


def prepare(folder: Path, port: int, *, days: int = DEMO_CERT_DAYS) -> None:
    """Write what the manual walk-through of docs/deploying.md needs.

    The data folder is checked first, as the app will need it.

    Parameters
    ----------
    folder : Path
        Gets ``tls/`` (CA, server certificate and key), ``keys/`` (a key pair
        per SuperNode, and one that is never registered), ``app/`` (the app
        for ``flwr run``) and ``cli/config.toml`` (the ``fedup-deploy``
        connection to ``127.0.0.1:port`` over TLS).
    port : int
        Port of the SuperLink.
    days : int
        Validity of the certificates, in days.

    Raises
    ------
    DemoError
        If the data folder is missing.
    """
    say(f"data folder: {check_data_dir(base_env())}")
    tls = make_tls(folder / "tls", days=days)
    for name in [f"node-{i}" for i in range(NUM_NODES)] + ["unregistered"]:
        make_node_key(folder / "keys", name)
    prepare_app(folder / "app")
    write_flower_config(folder / "cli", f"{HOST}:{port}", tls.ca_cert)
    for path in sorted(
        p for p in folder.rglob("*") if p.parent.name in {"tls", "keys"}
    ):
        say(f"wrote {path}")
    say(f"wrote {folder / 'app'} and {folder / 'cli' / 'config.toml'}")
    say(f"the certificates expire in {days} day(s)")
