"""A child process in its own session, so stopping it stops everything it started (Java, workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

# stop(): SIGTERM, then SIGKILL of the whole group after this long, so a stop takes < 5 s even when
# the process ignores SIGTERM (the real tensorflow_model_server) or is hung. Measured on 2 idle cores:
# the gateway stops in ~0.2 s, the TF Serving stand-in in ~1.3 s, TorchServe (its JVM's shutdown) in
# ~2.5 s; on a loaded machine the slowest are cut short here (nothing they hold needs a longer wait).
STOP_GRACE_S = 3.0
KILL_WAIT_S = 1.0  # after SIGKILL: reaping a killed group takes milliseconds; never wait longer than this
POLL_S = 0.05


class StartError(RuntimeError):
    pass


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so context managers stop the servers a tool started
    (by default SIGTERM ends Python at once, leaving its children, which run in sessions of
    their own, behind)."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    """n distinct free ports, chosen by the kernel."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def check_ports_free(ports: Mapping[str, int]) -> None:
    busy = [f"{h.name}={h.port} ({h.who})" for h in port_holders(ports)]
    if busy:
        raise StartError(f"ports already in use: {', '.join(busy)} (set the *_PORT env vars to move them)")


@dataclass(frozen=True)
class PortHolder:
    """A port that cannot be bound, and the process listening on it (pid None: not visible to us)."""

    name: str  # the port's role, e.g. torchserve_inference
    port: int
    pid: int | None = None
    pgid: int | None = None
    sid: int | None = None
    command: str = ""

    @property
    def who(self) -> str:
        if self.pid is None:
            return "held by a process this user cannot see"
        return f"held by pid {self.pid} ({self.command or '?'}; session {self.sid})"


def port_holders(ports: Mapping[str, int]) -> list[PortHolder]:
    """The ports of ``ports`` that cannot be bound now, each with the process that holds it."""
    busy = {port: name for name, port in ports.items() if not port_free(port)}
    if not busy:
        return []
    found: dict[int, PortHolder] = {}
    # The listening socket first: an accepted connection on that port belongs to the same process.
    conns = sorted(psutil.net_connections("tcp"), key=lambda c: c.status != psutil.CONN_LISTEN)
    for conn in conns:
        port = conn.laddr.port if conn.laddr else None
        if port in busy and port not in found and conn.pid is not None:
            found[port] = _holder(busy[port], port, conn.pid)
    return [found.get(port, PortHolder(name, port)) for port, name in busy.items()]


def _holder(name: str, port: int, pid: int) -> PortHolder:
    try:
        command = " ".join(psutil.Process(pid).cmdline())[:120]
        return PortHolder(name, port, pid, os.getpgid(pid), os.getsid(pid), command)
    except (psutil.Error, ProcessLookupError):
        return PortHolder(name, port, pid)


class ManagedProcess:
    def __init__(
        self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def session(self) -> int | None:
        """The session and process group of the last start (the leader's pid): what it left behind
        shares it, even after the leader is gone."""
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def wait_until(self, ready: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise StartError(f"{self.name} exited during start-up; see {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(interval)
        raise StartError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after ``grace_s``: at most ~grace_s + 1 s."""
        stop_all([self], grace_s)

    def terminate(self) -> None:
        """SIGTERM the whole group, and SIGCONT it: a stopped process acts on SIGTERM only once continued."""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    @property
    def finished(self) -> bool:
        """The process exited and nothing of its group runs any more."""
        return self.proc is None or (self.proc.poll() is not None and not group_alive(self.proc.pid))

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crashed or hung server), and reap it."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        deadline = time.monotonic() + KILL_WAIT_S
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=KILL_WAIT_S)
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(POLL_S)


def stop_all(processes: Iterable[ManagedProcess], grace_s: float = STOP_GRACE_S) -> None:
    """Stop several processes with one grace period for all of them (not one each, one after another)."""
    procs = list(processes)
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and not all(p.finished for p in procs):
        time.sleep(POLL_S)
    for p in procs:
        p.kill()


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies, which only wait to be reaped, do not)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for p in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                return True
    return False
