"""CPU and memory of the server under test and of the load generator, and who runs on which core.

psutil when it is installed (``pip install -e '.[bench]'``), else Linux's /proc: both read the
same kernel counters. Pinning uses sched_setaffinity on every thread of a process, which is
what ``taskset -a -p -c CORES PID`` does, so threads a server started before it was pinned
(Twisted's database thread, say) move too.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

try:
    import psutil
except ImportError:  # the /proc readers below do the same job on Linux
    psutil = None

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    if psutil is not None:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields we want follow its closing ')'.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def rss_kib(pid: int) -> int:
    """Resident set size in KiB."""
    if psutil is not None:
        return psutil.Process(pid).memory_info().rss // 1024
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_KIB


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from psutil or from
    the ``children`` lists in /proc."""
    if psutil is not None:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in os.listdir(f"/proc/{parent}/task"):
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    kids = [int(kid) for kid in children.read().split()]
            except OSError:  # the thread or the process just ended
                continue
            found.extend(kids)
            pending.extend(kids)
    return found


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has spent so far (user + nice + system, all
    cores; interrupt time left out, as it is from a process's own counters)."""
    with open("/proc/stat") as stat:
        user, nice, system = stat.readline().split()[1:4]
    return (int(user) + int(nice) + int(system)) / _CLOCK_TICKS


def pin(pid: int, cores: set[int]) -> None:
    """Run every thread of ``pid`` (0: this process) on ``cores`` only."""
    pid = pid or os.getpid()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), cores)
        except ProcessLookupError:  # a thread that just ended
            pass


def plan_cores() -> tuple[set[int], set[int]] | None:
    """(server cores, load generator cores): the first usable core for the server, the rest
    for us; None on a one-core machine, where pinning would only make both fight."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None
    return {usable[0]}, set(usable[1:])


def raise_open_files(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE towards ``wanted`` (children inherit it, which is
    the ``ulimit -n`` of the servers we start); returns the limit now in force. The hard
    limit too when we may (root: 50,000 sessions need more than a default hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, wanted))
            hard = wanted
        except (ValueError, OSError):  # not root, or above fs.nr_open: as far as we may
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return wanted if soft == resource.RLIM_INFINITY else soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


@dataclass(frozen=True)
class CpuUse:
    """What one measured interval cost: wall time and each side's share of one core."""

    wall: float  # seconds
    server: float  # the server's CPU seconds / wall seconds (1.0 = one core busy)
    loadgen: float  # the same for this process
    others: float  # the same for every other process: anything above ~0.05 is interference


class CpuMeter:
    """``start()`` then ``stop()`` around a measured interval."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start: tuple[float, float, float] | None = None

    def _now(self) -> tuple[float, float, float, float]:
        return (time.perf_counter(), cpu_seconds(self.server_pid), time.process_time(),
                machine_cpu_seconds())

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> CpuUse:
        if self._start is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        wall, server, own, machine = (b - a for a, b in zip(self._start, self._now(),
                                                              strict=True))
        wall = max(wall, 1e-9)
        return CpuUse(wall, server / wall, own / wall, max(0.0, machine - server - own) / wall)
