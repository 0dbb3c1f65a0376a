"""CPU accounting and core pinning, the one helper for load_tests and benchmarks/:

- machine: idle and steal shares from /proc/stat deltas (all cores together);
- a process tree's CPU seconds (psutil): a server with its workers, or one process alone;
- servers by name: CPU seconds of each server's process tree, per request;
- pinning: on ≥ ``PIN_MIN_CORES`` cores the generator gets its own cores (``taskset``), away from
  the servers and the gateway, which get the rest.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

PIN_MIN_CORES = 4  # below this, pinning would leave the servers too few cores: share, and say so
# Which processes make up each server (matched against the command line); children count too
# (TorchServe's Python workers are children of its Java frontend).
SERVER_PROCESSES = {
    "tfserving": ("serving.tfserving_standin", "tensorflow_model_server"),
    "torchserve": ("org.pytorch.serve.ModelServer",),
    "gateway": ("gateway.app",),
    # The load tools' own servers are found by the PID the run started them with (Endpoints.pids);
    # by name, every floor process counts.
    "floor": ("load_tests.servers.floor",),
}


@dataclass(frozen=True)
class CpuTimes:
    busy: float
    idle: float
    steal: float

    @classmethod
    def now(cls) -> CpuTimes:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        # user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
        idle = fields[3] + fields[4]
        steal = fields[7] if len(fields) > 7 else 0.0
        busy = sum(fields[:8]) - idle - steal
        return cls(busy, idle, steal)


@dataclass(frozen=True)
class MachineShare:
    idle: float  # of all cores together
    steal: float

    @classmethod
    def between(cls, a: CpuTimes, b: CpuTimes) -> MachineShare:
        total = (b.busy - a.busy) + (b.idle - a.idle) + (b.steal - a.steal)
        if total <= 0:
            return cls(1.0, 0.0)
        return cls((b.idle - a.idle) / total, (b.steal - a.steal) / total)


def children_cpu_s() -> float:
    """CPU seconds of every child this process has waited for (the Locust runs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tree_cpu_s(proc: psutil.Process, children: bool = True) -> float:
    """CPU seconds of a process and, unless told otherwise, all its children (TorchServe's workers, uvicorn's)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for p in (proc, *(proc.children(recursive=True) if children else ())):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    return total


def _matches(proc: psutil.Process, needles: Iterable[str]) -> bool:
    with contextlib.suppress(psutil.Error):
        cmd = " ".join(proc.cmdline())
        return any(n in cmd for n in needles)
    return False


def server_processes(server: str, pid: int | None = None) -> list[psutil.Process]:
    """The server's processes and all their children: the tree under ``pid`` when the run knows it
    (it started the server), else every process whose command line names the server (which, on a
    shared machine, may include another run's)."""
    if pid:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        return []
    needles = SERVER_PROCESSES.get(server) or SERVER_PROCESSES[server.split("-")[0]]
    roots = [p for p in psutil.process_iter() if _matches(p, needles)]
    seen: dict[int, psutil.Process] = {}
    for root in roots:
        seen[root.pid] = root
        with contextlib.suppress(psutil.Error):
            for child in root.children(recursive=True):
                seen[child.pid] = child
    return list(seen.values())


def server_cpu_s(server: str, pid: int | None = None) -> float:
    return sum(tree_cpu_s(p, children=False) for p in server_processes(server, pid))


def pinning(cores: int | None = None) -> tuple[list[int], list[int]] | None:
    """(generator cores, server cores) when the machine is big enough, else None. The generator
    gets a quarter of the cores (at least one), from the top."""
    n = cores or os.cpu_count() or 1
    if n < PIN_MIN_CORES:
        return None
    gen = max(1, n // 4)
    return list(range(n - gen, n)), list(range(n - gen))


def pin(pids: Iterable[int], cores: list[int]) -> None:
    """Every thread of these processes on ``cores`` (sched_setaffinity sets one thread's: a server's
    threads started before the call would keep running anywhere)."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            tids = [pid]
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cores)


def pin_tree(proc: psutil.Process, cores: list[int]) -> None:
    """A process and all its children on ``cores``."""
    with contextlib.suppress(psutil.Error):
        pin([p.pid for p in (proc, *proc.children(recursive=True))], cores)
