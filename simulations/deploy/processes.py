"""The demo's processes: start them, wait for them, stop every one by its pid.

Flower detaches some children into sessions of their own (the SuperLink's
SuperExec, the ServerApp and ClientApp processes), so stopping a process
group is not enough: :class:`Cluster` also stops the descendants it finds in
``/proc`` and any process still using one of the deployment's ports.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from simulations.deploy.common import HOST, DemoError, read_log


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
        """The process id."""
        return self.popen.pid

    def text(self) -> str:
        """Its log so far, without colour codes."""
        return read_log(self.log)

    def tail(self, lines: int = 25) -> str:
        """The last ``lines`` lines of its log."""
        return "\n".join(self.text().splitlines()[-lines:])


@dataclass
class Cluster:
    """Starts processes in their own session and stops every one of them.

    Each process runs in a new session, so it and the children in its process
    group get SIGTERM (then SIGKILL) together; children that Flower detaches
    into a session of their own are found through /proc before the stop and
    by the ports of this deployment (:attr:`ports`) afterwards, and are
    stopped by their pids too.
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


@dataclass
class Deadline:
    """The time left of ``--timeout``."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        """Seconds left (negative once passed)."""
        return self.seconds - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.start


def wait_for(
    what: str,
    found: Callable[[], re.Match[str] | None],
    deadline: Deadline,
    limit: float = 120.0,
    alive: Proc | None = None,
) -> re.Match[str]:
    """Poll until ``found`` returns a match; fail if ``alive`` exits first.

    Raises
    ------
    DemoError
        After ``limit`` seconds (or when ``deadline`` passes), or when the
        process ``alive`` exits first; the message ends with its log's tail.
    """
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
