"""The four workloads of issue 6, each bounded in time, each run against one fresh server.

Every workload returns ``{metric: [value per repetition]}``; bench/run.py takes the medians.
CPU use (the server's and ours, as a share of one core) is measured over each timed interval,
so a reader can tell when the load generator, not the server, was the limit.

1. login: ``login_concurrency`` clients log in (see bench/loadgen.py), log out and start
   again: logins completed per second. Then one client alone: the time a login takes.
   Accounts with empty rosters, so a login is the stream, TLS, SASL, bind and presence.
   ``login_scram_notls``: the same without TLS (SCRAM on the plain TCP stream).
2. messages: ``pairs`` pairs of available sessions chat to each other's bare JID.
   Saturated: each direction keeps ``window`` messages in flight (a new one goes out as each
   arrives), so the server always has work and never an unbounded queue; messages delivered per
   second. Latency: an open loop at ``latency_rate`` messages/s in total, each stamped with
   its send time; p50/p99 of send → delivery.
3. memory: the server's RSS idle, then with each level of authenticated, bound, available,
   idle TLS sessions; KiB per session = (RSS - idle RSS) / sessions.
4. fan-out: the hub and ``fanout_contacts`` users are mutual contacts, all online; the hub
   changes its presence, and we time until every contact has it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bench.accounts import HUB, user_names
from bench.loadgen import (
    PLAIN,
    SCRAM_SHA_256,
    Connection,
    LoginError,
    Target,
    close_all,
    login,
    login_many,
    settle,
)
from bench.procstats import CpuMeter, rss_kib
from bench.stats import percentile

Results = dict[str, list[float]]

BODY = "Hello! This is a benchmark message, about as long as a short chat line."
MESSAGE_END = b"</message>"
_STAMP = re.compile(rb"\bid=['\"]t(\d+)['\"]")


@dataclass(frozen=True)
class Plan:
    """How big and how long each workload is."""

    reps: int  # repetitions of each timed measurement
    warmup: float  # seconds of load before a measurement starts
    settle: float  # seconds of quiet before memory readings and between repetitions
    login_concurrency: int
    login_seconds: float
    pairs: int
    window: int
    message_seconds: float
    latency_rate: int
    latency_seconds: float
    memory_levels: tuple[int, ...]
    memory_concurrency: int
    fanout_contacts: int
    fanout_reps: int
    # bench/scaling.py's plans: sessions per account (devices), seconds of measured silence
    resources_per_user: int = 1
    idle_seconds: float = 0.0
    scaling: bool = False

    @property
    def users(self) -> int:
        """Accounts u0... the plan needs (the hub comes on top)."""
        return max(2 * self.pairs, -(-max(self.memory_levels) // self.resources_per_user),
                   self.fanout_contacts + 4 * self.login_concurrency)


FULL = Plan(reps=3, warmup=1.5, settle=3.0, login_concurrency=32, login_seconds=8.0, pairs=50,
            window=16, message_seconds=8.0, latency_rate=1000, latency_seconds=8.0,
            memory_levels=(2000, 5000), memory_concurrency=32, fanout_contacts=1000,
            fanout_reps=5)
QUICK = Plan(reps=1, warmup=0.3, settle=0.5, login_concurrency=2, login_seconds=1.0, pairs=3,
             window=4, message_seconds=1.0, latency_rate=100, latency_seconds=1.0,
             memory_levels=(10, 20), memory_concurrency=4, fanout_contacts=10, fanout_reps=2)


# ---------------------------------------------------------------------------------- 1. logins


async def logins(target: Target, plan: Plan, mechanism: str, connect=login) -> Results:
    """Each repetition: a saturated round (logins/s, and login times under that load, which
    are mostly queueing), then a round of one login at a time (the login time a user sees
    on an idle server). ``connect``: loadgen.login, or another transport's (bench/websocket.py)."""
    results: Results = defaultdict(list)
    context = target.client_context()
    # Accounts with empty rosters: the hub's contacts would make a login also load the hub's
    # 1,000-item roster (to answer their probe), which is the fan-out's business, not this one.
    users = user_names(plan.users)[plan.fanout_contacts:]
    for _ in range(plan.reps):
        durations, errors, cpu = await _login_round(target, users, context, mechanism,
                                                    plan.login_concurrency, plan.warmup,
                                                    plan.login_seconds, connect)
        results["logins_per_s"].append(len(durations) / cpu.wall)
        # The steadier figure on a shared machine: the server's CPU time per login.
        results["server_cpu_ms_per_login"].append(
            1000 * cpu.server * cpu.wall / max(1, len(durations)))
        results["loaded_p50_ms"].append(1000 * percentile(durations, 50))
        results["loaded_p99_ms"].append(1000 * percentile(durations, 99))
        _add_cpu(results, cpu)
        await settle(plan.settle)
        alone, alone_errors, _ = await _login_round(target, users, context, mechanism, 1,
                                                    plan.warmup / 3, plan.login_seconds / 2,
                                                    connect)
        results["login_p50_ms"].append(1000 * percentile(alone, 50))
        results["login_p99_ms"].append(1000 * percentile(alone, 99))
        results["errors"].append(errors + alone_errors)
        await settle(plan.settle / 3)
    return results


async def _login_round(target, users, context, mechanism, concurrency, warmup, seconds,
                       connect=login):
    """Logins by ``concurrency`` clients for warmup + seconds; the durations of the logins
    that completed inside the measured interval, the failures, and the CpuUse."""
    loop = asyncio.get_running_loop()
    meter = CpuMeter(target.pid)
    begin = loop.time() + warmup
    end = begin + seconds
    numbers = itertools.count()
    durations: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        while loop.time() < end:
            number = next(numbers)
            started = loop.time()
            try:
                conn = await connect(target, users[number % len(users)], context,
                                     mechanism=mechanism, resource=f"l{number}")
            except (LoginError, OSError):
                errors += 1
                await asyncio.sleep(0.05)
                continue
            finished = loop.time()
            conn.close()
            if begin <= finished <= end:
                durations.append(finished - started)

    clients = [asyncio.ensure_future(client()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    meter.start()
    await asyncio.sleep(seconds)
    cpu = meter.stop()
    await asyncio.gather(*clients)
    return durations, errors, cpu


async def login_scram(target: Target, plan: Plan) -> Results:
    return await logins(target, plan, SCRAM_SHA_256)


async def login_plain(target: Target, plan: Plan) -> Results:
    return await logins(target, plan, PLAIN)


async def login_scram_notls(target: Target, plan: Plan) -> Results:
    """SCRAM-SHA-256 on the plain TCP stream, no STARTTLS: the login's own cost without the
    TLS handshake's. The servers allow authentication without TLS for this workload only
    (``WITHOUT_TLS``, read by bench/servers.py and bench/ejabberd.py)."""
    return await logins(replace(target, starttls=False), plan, SCRAM_SHA_256)


# The runs (a workload's name, or "profile-" and a py-spy load's) for which the servers let
# clients authenticate without TLS; every other run requires TLS first.
WITHOUT_TLS = frozenset({"login_scram_notls", "profile-logins_notls"})


# -------------------------------------------------------------------------------- 2. messages


class Chat:
    """``pairs`` pairs of sessions; session i talks with session i ^ 1."""

    def __init__(self, target: Target, sessions: Sequence[Connection]) -> None:
        self.target = target
        self.sessions = sessions
        self.delivered = [0] * len(sessions)

    def partner(self, index: int) -> int:
        return index ^ 1

    def to_partner(self, index: int, stamp: bool) -> str:
        """The message session ``index`` sends, with ``%d`` for the stamp when asked."""
        to = self.target.jid(self.sessions[self.partner(index)].user)
        id_attribute = " id='t%d'" if stamp else ""
        return f"<message to='{to}' type='chat'{id_attribute}><body>{BODY}</body></message>"

    async def saturate(self, warmup: float, seconds: float, window: int,
                       stop: asyncio.Event | None = None):
        """Closed loop (see the module docstring); (messages/s, CpuUse) over ``seconds``,
        or until ``stop`` is set."""
        messages = [self.to_partner(i, stamp=False).encode() for i in range(len(self.sessions))]
        running = True
        sent = 0

        def sink_for(index: int):
            sender = self.sessions[self.partner(index)]
            refill = messages[self.partner(index)]
            tail = b""

            def sink(data: bytes) -> None:
                nonlocal tail, sent
                chunk = tail + data
                tail = chunk[-(len(MESSAGE_END) - 1):]
                arrived = chunk.count(MESSAGE_END)
                if arrived:
                    self.delivered[index] += arrived
                    if running:
                        sender.send(refill * arrived)
                        sent += arrived

            return sink

        for index, session in enumerate(self.sessions):
            session.sink = sink_for(index)
        for index, session in enumerate(self.sessions):
            session.send(messages[index] * window)
            sent += window
        await asyncio.sleep(warmup)
        meter = CpuMeter(self.target.pid)
        before = sum(self.delivered)
        meter.start()
        try:
            await asyncio.wait_for((stop or asyncio.Event()).wait(), seconds)
        except TimeoutError:
            pass
        after = sum(self.delivered)
        cpu = meter.stop()
        running = False
        await self._drain(lambda: sent, timeout=30.0)
        return (after - before) / cpu.wall, cpu

    async def latencies(self, warmup: float, seconds: float, rate: int):
        """Open loop at ``rate`` messages/s; (latencies in s, messages lost, CpuUse)."""
        loop = asyncio.get_running_loop()
        templates = [self.to_partner(i, stamp=True) for i in range(len(self.sessions))]
        measured: list[float] = []
        measure_from = time.perf_counter_ns() + int(warmup * 1e9)

        def sink_for(index: int):
            pending = b""

            def sink(data: bytes) -> None:
                nonlocal pending
                arrived_ns = time.perf_counter_ns()
                pending += data
                end = pending.rfind(MESSAGE_END)
                if end < 0:
                    return
                end += len(MESSAGE_END)
                complete, pending = pending[:end], pending[end:]
                for match in _STAMP.finditer(complete):
                    sent_ns = int(match.group(1))
                    self.delivered[index] += 1
                    if sent_ns >= measure_from:
                        measured.append((arrived_ns - sent_ns) / 1e9)

            return sink

        for index, session in enumerate(self.sessions):
            session.sink = sink_for(index)
        self.delivered = [0] * len(self.sessions)
        total = int(rate * (warmup + seconds))
        sent = 0
        started = loop.time()
        meter = CpuMeter(self.target.pid)
        metered = False
        while sent < total:
            if not metered and loop.time() >= started + warmup:
                meter.start()
                metered = True
            due = min(total, int((loop.time() - started) * rate) + 1)
            while sent < due:
                index = sent % len(self.sessions)
                self.sessions[index].send((templates[index] % time.perf_counter_ns()).encode())
                sent += 1
            await asyncio.sleep(0.0005)
        if not metered:
            meter.start()
        cpu = meter.stop()
        delivered = await self._drain(lambda: total, timeout=10.0)
        return measured, total - delivered, cpu

    async def _drain(self, sent, timeout: float) -> int:
        """Wait until every message sent has arrived (or ``timeout``); how many arrived.
        The counts start again from zero."""
        deadline = time.monotonic() + timeout
        while sum(self.delivered) < sent() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        delivered = sum(self.delivered)
        self.delivered = [0] * len(self.sessions)
        return delivered


async def messages(target: Target, plan: Plan, connect_many=login_many) -> Results:
    """``connect_many``: loadgen.login_many, or another transport's (bench/websocket.py)."""
    results: Results = defaultdict(list)
    sessions = await connect_many(target, user_names(2 * plan.pairs), plan.memory_concurrency)
    chat = Chat(target, sessions)
    try:
        for _ in range(plan.reps):
            rate, cpu = await chat.saturate(plan.warmup, plan.message_seconds, plan.window)
            results["msgs_per_s"].append(rate)
            # The steadier figure on a shared machine: the server's CPU time per message.
            results["server_cpu_us_per_msg"].append(1e6 * cpu.server / max(rate, 1e-9))
            _add_cpu(results, cpu)
            await settle(plan.settle / 3)
        for _ in range(plan.reps):
            latencies, lost, cpu = await chat.latencies(plan.warmup, plan.latency_seconds,
                                                        plan.latency_rate)
            results["latency_p50_ms"].append(1000 * percentile(latencies, 50))
            results["latency_p99_ms"].append(1000 * percentile(latencies, 99))
            results["latency_lost"].append(lost)
            results["latency_server_cpu"].append(round(cpu.server, 3))
            results["latency_others_cpu"].append(round(cpu.others, 3))
            await settle(plan.settle / 3)
    finally:
        close_all(sessions)
        await settle(plan.settle)
    return results


# ---------------------------------------------------------------------------------- 3. memory


async def memory(target: Target, plan: Plan) -> Results:
    results: Results = defaultdict(list)
    await settle(plan.settle)
    idle = rss_kib(target.pid)
    results["rss_idle_kib"].append(idle)
    users = user_names(max(plan.memory_levels))
    context = target.client_context()
    sessions: list[Connection] = []
    try:
        for level in plan.memory_levels:
            started = time.perf_counter()
            sessions += await login_many(target, users[len(sessions):level],
                                         plan.memory_concurrency, context=context)
            results[f"login_{level}_s"].append(round(time.perf_counter() - started, 2))
            await settle(plan.settle)
            rss = rss_kib(target.pid)
            results[f"rss_{level}_kib"].append(rss)
            results[f"kib_per_session_{level}"].append((rss - idle) / level)
    finally:
        close_all(sessions)
        await settle(plan.settle)
    return results


# -------------------------------------------------------------------------------- 4. fan-out


class FanOut:
    """The hub and its contacts, all online (``start()``); ``round(n)`` times one presence
    change of the hub until every contact has it."""

    def __init__(self, target: Target, plan: Plan) -> None:
        self.target = target
        self.plan = plan
        self.contacts: list[Connection] = []
        self.hub: Connection | None = None

    async def start(self) -> None:
        self.contacts = await login_many(self.target, user_names(self.plan.fanout_contacts),
                                         self.plan.memory_concurrency)
        self.hub = await login(self.target, HUB, self.target.client_context(), resource="hub")
        self.hub.sink = lambda data: None  # the contacts' presence and our own echoes
        await settle(self.plan.settle)

    def close(self) -> None:
        close_all(self.contacts + ([self.hub] if self.hub is not None else []))

    async def round(self, number: int, timeout: float = 30.0):
        """The hub's presence with status ``fanout-N``; (seconds until the last contact had
        it, contacts that never did, CpuUse)."""
        loop = asyncio.get_running_loop()
        marker = b"fanout-%d<" % number
        waiting = len(self.contacts)
        all_arrived = loop.create_future()
        last_arrival = 0.0

        def arrived() -> None:
            nonlocal waiting, last_arrival
            last_arrival = time.perf_counter()
            waiting -= 1
            if waiting == 0 and not all_arrived.done():
                all_arrived.set_result(None)

        for contact in self.contacts:
            contact.sink = marker_sink(marker, arrived)
        meter = CpuMeter(self.target.pid)
        meter.start()
        sent = time.perf_counter()
        self.hub.send(b"<presence><show>away</show><status>fanout-%d</status></presence>"
                      % number)
        try:
            await asyncio.wait_for(all_arrived, timeout)
        except TimeoutError:
            pass
        cpu = meter.stop()
        return max(last_arrival - sent, 1e-6), waiting, cpu


async def fanout(target: Target, plan: Plan) -> Results:
    results: Results = defaultdict(list)
    hub = FanOut(target, plan)
    try:
        await hub.start()
        for number in range(plan.fanout_reps + 1):  # round 0 warms up
            elapsed, missing, cpu = await hub.round(number)
            if number:
                results["fanout_all_ms"].append(1000 * elapsed)
                results["deliveries_per_s"].append((plan.fanout_contacts - missing) / elapsed)
                results["missing"].append(missing)
                _add_cpu(results, cpu)
            await settle(plan.settle / 3)
    finally:
        hub.close()
        await settle(plan.settle)
    return results


def _add_cpu(results: Results, cpu) -> None:
    results["server_cpu"].append(round(cpu.server, 3))
    results["loadgen_cpu"].append(round(cpu.loadgen, 3))
    results["others_cpu"].append(round(cpu.others, 3))


WORKLOADS = {
    "login_scram": login_scram,
    "login_plain": login_plain,
    "login_scram_notls": login_scram_notls,
    "messages": messages,
    "memory": memory,
    "fanout": fanout,
}


def marker_sink(marker: bytes, seen: Callable[[], None]) -> Callable[[bytes], None]:
    """A connection's sink that calls ``seen`` once, when ``marker`` first arrives (also when
    a read splits it): how a round times the last of many recipients."""
    tail = b""
    done = False

    def sink(data: bytes) -> None:
        nonlocal tail, done
        if done:
            return
        chunk = tail + data
        if marker not in chunk:
            tail = chunk[-len(marker):]
            return
        done = True
        seen()

    return sink
