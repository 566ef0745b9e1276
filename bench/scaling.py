"""Scaling (issue 18), opt-in: ``--workloads idle_sessions,broadcast``, on their own.

They run with a plan of their own (``SCALE``; ``SCALE_QUICK`` under ``BENCH_QUICK``), which
the other workloads do not share: 50,000 sessions and a 5,000-contact hub make a run of its
own (about 15 minutes for xmppd alone on this 2-core machine).

``idle_sessions``: the server idle, then with each level of sessions (10,000 and 50,000):
authenticated, bound, available, idle TLS sessions, each account logged in from up to
``resources_per_user`` devices (resources ``s<N>``, so 5,000 accounts carry 50,000 sessions;
xmppd's ``[c2s] max_resources`` is 10, and each device sees its account's other devices'
presence, as real ones do). At each level:

* memory: RSS, and KiB per session = (RSS - idle RSS) / sessions;
* CPU at idle: the server's CPU over ``idle_seconds`` in which no client sends anything
  (what the server spends on its own timers: xmppd's idle sweep, pings of silent sessions);
* keepalive cost: every session sends an XEP-0199 ping to its server (what a client does to
  keep a connection through NATs alive) and we wait for every answer: the server's CPU per
  keepalive (µs) and how long the round took. The clients answer the server's own pings too
  (xmppd pings a session silent for ``[limits] ping_after``, 300 s).

Loopback gives one source address some 28,000 ports towards one server port, so sessions
come from ``127.0.1.N``, 20,000 per address. The open-file limit of the bench, and so of the
servers it starts, is raised to fit (bench/run.py, bench/procstats.py).

``broadcast``: the presence fan-out (bench/workloads.py) with ``fanout_contacts`` = 5,000: the
time from the hub's presence change until all 5,000 online contacts have it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict

from bench.accounts import user_names
from bench.loadgen import Connection, Target, close_all, gather_sessions, login, settle
from bench.procstats import CpuMeter, rss_kib
from bench.workloads import Plan, Results, fanout

SESSIONS_PER_SOURCE = 20_000
# The server's XEP-0199 ping to a session, and the answer to our keepalive of round N.
_SERVER_PING = re.compile(rb"<iq\b([^>]*)>\s*<ping xmlns=['\"]urn:xmpp:ping['\"]")
_ATTRIBUTE = re.compile(rb"\b(id|from|type)=(?:'([^']*)'|\"([^\"]*)\")")
_PONG = re.compile(rb"\bid=['\"]ka(\d+)-\d+['\"]")
_ENDS = (b"/>", b"</iq>", b"</presence>", b"</message>")


def source_host(index: int) -> str:
    """The source address of session ``index`` (see the module docstring)."""
    return f"127.0.1.{index // SESSIONS_PER_SOURCE + 1}"


def keepalive_sink(conn: Connection, pong: callable) -> callable:
    """A connection's sink that answers the server's pings and calls ``pong(round)`` for each
    answer to one of our keepalives; other stanzas (presence) are dropped."""
    pending = b""

    def sink(data: bytes) -> None:
        nonlocal pending
        chunk = pending + data
        cut = max(chunk.rfind(end) + len(end) if end in chunk else 0 for end in _ENDS)
        complete, pending = chunk[:cut], chunk[cut:][-65536:]
        for match in _SERVER_PING.finditer(complete):
            attributes = {m.group(1): m.group(2) or m.group(3)
                          for m in _ATTRIBUTE.finditer(match.group(1))}
            if attributes.get(b"type") == b"get":
                conn.send(b"<iq type='result' id='%s' to='%s'/>"
                          % (attributes.get(b"id", b""), attributes.get(b"from", b"")))
        for match in _PONG.finditer(complete):
            pong(int(match.group(1)))

    return sink


class IdleSessions:
    """Sessions logged in level by level, kept answering pings; keepalive rounds on demand."""

    def __init__(self, target: Target, plan: Plan) -> None:
        self.target = target
        self.plan = plan
        self.sessions: list[Connection] = []
        self.users = user_names(plan.users)
        self.context = target.client_context()
        self._answered: dict[int, int] = defaultdict(int)
        self._round = 0

    def _pong(self, number: int) -> None:
        self._answered[number] += 1

    async def grow_to(self, level: int) -> None:
        slots = asyncio.Semaphore(self.plan.memory_concurrency)
        accounts = len(self.users)

        async def one(index: int) -> Connection:
            async with slots:
                conn = await login(self.target, self.users[index % accounts], self.context,
                                   resource=f"s{index}", local_host=source_host(index),
                                   timeout=120.0)
                conn.sink = keepalive_sink(conn, self._pong)
                return conn

        self.sessions += await gather_sessions(one(i) for i in range(len(self.sessions), level))

    async def keepalive_round(self, timeout: float = 300.0):
        """Every session pings the server; (seconds until the last answer, answers missing,
        CpuUse)."""
        self._round += 1
        number = self._round
        domain = self.target.domain.encode()
        meter = CpuMeter(self.target.pid)
        meter.start()
        started = time.perf_counter()
        for index, conn in enumerate(self.sessions):
            conn.send(b"<iq type='get' id='ka%d-%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                      % (number, index, domain))
        deadline = started + timeout
        while self._answered[number] < len(self.sessions) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu = meter.stop()
        return elapsed, len(self.sessions) - self._answered[number], cpu

    def close(self) -> None:
        close_all(self.sessions)


async def idle_sessions(target: Target, plan: Plan) -> Results:
    results: Results = defaultdict(list)
    await settle(plan.settle)
    idle = rss_kib(target.pid)
    results["rss_idle_kib"].append(idle)
    sessions = IdleSessions(target, plan)
    try:
        for level in plan.memory_levels:
            started = time.perf_counter()
            await sessions.grow_to(level)
            results[f"login_{level}_s"].append(round(time.perf_counter() - started, 1))
            await settle(plan.settle)
            rss = rss_kib(target.pid)
            results[f"rss_{level}_kib"].append(rss)
            results[f"kib_per_session_{level}"].append((rss - idle) / level)
            meter = CpuMeter(target.pid)
            meter.start()
            await asyncio.sleep(plan.idle_seconds)
            quiet = meter.stop()
            results[f"idle_cpu_{level}"].append(round(quiet.server, 4))
            results[f"idle_others_cpu_{level}"].append(round(quiet.others, 3))
            elapsed, missing, cpu = await sessions.keepalive_round()
            answered = max(level - missing, 1)
            results[f"keepalive_us_{level}"].append(1e6 * cpu.server * cpu.wall / answered)
            results[f"keepalive_round_ms_{level}"].append(1000 * elapsed)
            results[f"keepalive_missing_{level}"].append(missing)
            await settle(plan.settle)
    finally:
        sessions.close()
        await settle(plan.settle)
    return results


WORKLOADS = {"idle_sessions": idle_sessions, "broadcast": fanout}
SCALE = Plan(reps=1, warmup=1.0, settle=5.0, login_concurrency=16, login_seconds=4.0, pairs=50,
             window=16, message_seconds=4.0, latency_rate=1000, latency_seconds=4.0,
             memory_levels=(10_000, 50_000), memory_concurrency=64, fanout_contacts=5000,
             fanout_reps=5, resources_per_user=10, idle_seconds=20.0, scaling=True)
SCALE_QUICK = Plan(reps=1, warmup=0.3, settle=0.5, login_concurrency=2, login_seconds=1.0,
                   pairs=3, window=4, message_seconds=1.0, latency_rate=100,
                   latency_seconds=1.0, memory_levels=(20, 40), memory_concurrency=4,
                   fanout_contacts=10, fanout_reps=2, resources_per_user=2, idle_seconds=1.0,
                   scaling=True)
