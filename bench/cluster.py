"""``make bench-cluster``: xmppd as a cluster of one, two and three nodes on this machine.

    python -m bench.cluster [--nodes 1,2,3] [--quick] [--no-pin] [--output FILE]

For each node count: a fresh PostgreSQL database (tests/storage_engines.py) seeded with the
bench accounts (bench/accounts.py), one Redis (tests/redis_server.py, emptied between
counts) and the nodes (twistd, ``[cluster]``, the "plain" IM plugins of bench/servers.py).
The load generator spreads its clients over the nodes round-robin and measures:

- logins: ``login_concurrency`` clients log in (STARTTLS, SCRAM-SHA-256, bind, presence),
  log out and start again: logins/s, and CPU per login;
- messages between pairs of sessions on the same node ("same"), and with two or more
  nodes between pairs whose sessions are on different nodes ("cross": each message goes
  through Redis), saturated as bench/workloads.py's messages (a window of messages in
  flight per session): messages/s, and CPU per message.

CPU is what the measured interval cost each side, read from /proc (bench/procstats.py):
the nodes summed, Redis, and PostgreSQL (its postmaster and backends), per operation; the
rates are wall-clock and depend on whatever else the machine runs, the CPU per operation
much less. Pinning (unless ``--no-pin``): node i runs on usable core i mod the number of
cores; the load generator, Redis and PostgreSQL are left to the OS (on a two-core machine
there is no core to spare for them: the rates of two and three nodes cannot grow much
beyond one node's, which is why the CPU per operation is the figure to read).
The table goes to the terminal, everything (every repetition) to
bench/results/cluster-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench import procstats
from bench.accounts import seed_xmppd, user_names
from bench.loadgen import LoginError, Target, close_all, login
from bench.servers import DOMAIN, PLAIN_PLUGINS
from bench.stats import summarize
from bench.workloads import BODY
from tests.integration.serverproc import XmppdProcess
from tests.redis_server import RedisServer
from tests.storage_engines import postgresql
from xmppd.stream.selfsigned import make_self_signed

RESULTS = Path(__file__).resolve().parent / "results"
END = b"</message>"


@dataclass(frozen=True)
class Plan:
    reps: int
    warmup: float
    seconds: float  # of each measured interval
    login_concurrency: int
    pairs: int
    window: int  # messages in flight per session

    @property
    def users(self) -> int:
        return 2 * self.pairs + 4 * self.login_concurrency


FULL = Plan(reps=3, warmup=1.5, seconds=8.0, login_concurrency=24, pairs=48, window=16)
QUICK = Plan(reps=1, warmup=0.3, seconds=1.0, login_concurrency=2, pairs=6, window=4)


# ------------------------------------------------------------------------------ CPU meters


def postgres_pids(server) -> list[int]:
    """The postmaster and its children (the backends of the nodes' connection pools)."""
    with open(os.path.join(server.data, "postmaster.pid")) as pidfile:
        postmaster = int(pidfile.readline())
    return [postmaster, *procstats.descendants(postmaster)]


class Meter:
    """CPU seconds of groups of processes (the nodes, Redis, PostgreSQL) over an interval;
    a process that ended meanwhile counts for nothing."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start: dict[int, float] = {}
        self._wall = 0.0

    def _read(self, pid: int) -> float | None:
        try:
            return procstats.cpu_seconds(pid)
        except Exception:  # it ended (psutil.NoSuchProcess, or OSError from /proc)
            return None

    def start(self) -> None:
        self._wall = time.perf_counter()
        self._start = {pid: self._read(pid) for pids in self.groups.values() for pid in pids}

    def stop(self) -> tuple[float, dict[str, float]]:
        """(wall seconds, CPU seconds per group)."""
        wall = time.perf_counter() - self._wall
        used = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids:
                before, after = self._start.get(pid), self._read(pid)
                if before is not None and after is not None:
                    total += after - before
            used[name] = total
        return wall, used


# ------------------------------------------------------------------------------ workloads


async def logins(targets: list[Target], plan: Plan, meter: Meter) -> dict[str, float]:
    """Saturated logins spread over the nodes: logins/s and CPU ms per login."""
    loop = asyncio.get_running_loop()
    contexts = [target.client_context() for target in targets]
    users = user_names(plan.users)[2 * plan.pairs:]
    numbers = itertools.count()
    begin = loop.time() + plan.warmup
    end = begin + plan.seconds
    done = errors = 0

    async def client() -> None:
        nonlocal done, errors
        while loop.time() < end:
            number = next(numbers)
            node = number % len(targets)
            try:
                conn = await login(targets[node], users[number % len(users)], contexts[node],
                                   resource=f"l{number}")
            except (LoginError, OSError):
                errors += 1
                await asyncio.sleep(0.05)
                continue
            conn.close()
            if begin <= loop.time() <= end:
                done += 1

    clients = [asyncio.ensure_future(client()) for _ in range(plan.login_concurrency)]
    await asyncio.sleep(plan.warmup)
    meter.start()
    await asyncio.sleep(plan.seconds)
    wall, cpu = meter.stop()
    await asyncio.gather(*clients)
    return {"logins_per_s": done / wall, "errors": errors,
            **{f"{name}_ms_per_login": 1000 * used / max(done, 1) for name, used in cpu.items()}}


def placement(pairs: int, nodes: int, cross: bool) -> list[int]:
    """The node of each session: pair p's first on node p mod n, its second there too
    (same) or on the next node (cross)."""
    return [(pair + (cross and side)) % nodes for pair in range(pairs) for side in (0, 1)]


async def messages(targets: list[Target], plan: Plan, meter: Meter, cross: bool,
                   ) -> list[dict[str, float]]:
    """Pairs chatting to each other's bare JID, saturated; per repetition: messages/s and
    CPU µs per message."""
    nodes = placement(plan.pairs, len(targets), cross)
    users = user_names(2 * plan.pairs)
    contexts = [target.client_context() for target in targets]
    slots = asyncio.Semaphore(8)

    async def one(index: int):
        async with slots:
            return await login(targets[nodes[index]], users[index], contexts[nodes[index]],
                               resource=f"m{index}")

    sessions = list(await asyncio.gather(*(one(i) for i in range(len(users)))))
    texts = [(f"<message to='{users[i ^ 1]}@{DOMAIN}' type='chat'><body>{BODY}</body>"
              f"</message>").encode() for i in range(len(users))]
    delivered = [0] * len(sessions)
    running = True

    def sink_for(index: int):
        sender, refill, tail = sessions[index ^ 1], texts[index ^ 1], b""

        def sink(data: bytes) -> None:
            nonlocal tail
            chunk = tail + data
            tail = chunk[-(len(END) - 1):]
            arrived = chunk.count(END)
            delivered[index] += arrived
            if running and arrived:
                sender.send(refill * arrived)

        return sink

    await asyncio.sleep(1.0)  # the registry's news reached every node
    for index, session in enumerate(sessions):
        session.sink = sink_for(index)
    for index, session in enumerate(sessions):
        session.send(texts[index] * plan.window)
    rounds = []
    try:
        await asyncio.sleep(plan.warmup)
        for _ in range(plan.reps):
            before = sum(delivered)
            meter.start()
            await asyncio.sleep(plan.seconds)
            wall, cpu = meter.stop()
            count = sum(delivered) - before
            rounds.append({"msgs_per_s": count / wall,
                           **{f"{name}_us_per_msg": 1e6 * used / max(count, 1)
                              for name, used in cpu.items()}})
    finally:
        running = False
        await asyncio.sleep(1.0)
        close_all(sessions)
        await asyncio.sleep(1.0)
    return rounds


# ------------------------------------------------------------------------------ one count


def node_extra(dsn: str, redis_url: str, name: str) -> str:
    return (f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
            f'[cluster]\nredis = "{redis_url}"\nnode = "{name}"\n'
            f'[plugins]\nenabled = {list(PLAIN_PLUGINS)!r}\n')


async def measure(targets: list[Target], plan: Plan, meter: Meter) -> dict[str, list]:
    results: dict[str, list] = defaultdict(list)
    for _ in range(plan.reps):
        for key, value in (await logins(targets, plan, meter)).items():
            results[key].append(value)
        await asyncio.sleep(1.0)
    placements = ("same", "cross") if len(targets) > 1 else ("same",)
    for where in placements:
        for round in await messages(targets, plan, meter, cross=where == "cross"):
            for key, value in round.items():
                results[f"{where}_{key}"].append(value)
    return results


def run_count(count: int, plan: Plan, workdir: Path, certificate, redis: RedisServer,
              database, cores: list[int] | None, problems: list[str]) -> dict[str, list]:
    dsn = database.fresh_database()
    seed = XmppdProcess(workdir / f"seed{count}", DOMAIN,
                        extra=node_extra(dsn, redis.url, "seed"), certificate=certificate)
    seed_xmppd(seed.config, plan.users, 0)
    procs = [XmppdProcess(workdir / f"n{count}-{i}", DOMAIN,
                          extra=node_extra(dsn, redis.url, f"node{i}"), auth_timeout=60.0,
                          certificate=certificate) for i in range(count)]
    try:
        for index, proc in enumerate(procs):
            proc.start(timeout=90)
            if cores:
                procstats.pin(proc.process.pid, {cores[index % len(cores)]})
        targets = [Target("xmppd", "127.0.0.1", proc.c2s_port, DOMAIN, certificate[0],
                          proc.process.pid) for proc in procs]
        meter = Meter({"nodes": [proc.process.pid for proc in procs],
                       "redis": [redis.process.pid], "postgres": postgres_pids(database)})
        return asyncio.run(measure(targets, plan, meter))
    finally:
        for proc in procs:
            code = proc.stop(timeout=60)
            if code != 0:
                problems.append(f"{proc.directory.name}: exit status {code}")
            if "Traceback" in proc.log():
                problems.append(f"{proc.directory.name}: traceback in {proc.log_path}")
        redis.command("FLUSHALL")


# ------------------------------------------------------------------------------ report

COLUMNS = (("logins_per_s", "logins/s", "{:.1f}"),
           ("nodes_ms_per_login", "nodes ms/login", "{:.2f}"),
           ("same_msgs_per_s", "same-node msgs/s", "{:.0f}"),
           ("same_nodes_us_per_msg", "nodes µs/msg", "{:.0f}"),
           ("same_redis_us_per_msg", "redis µs/msg", "{:.1f}"),
           ("cross_msgs_per_s", "cross-node msgs/s", "{:.0f}"),
           ("cross_nodes_us_per_msg", "nodes µs/msg", "{:.0f}"),
           ("cross_redis_us_per_msg", "redis µs/msg", "{:.1f}"))


def table(results: dict[int, dict[str, list]]) -> str:
    """Medians (bench/stats.py), one row per node count, as a Markdown table."""
    header = ["nodes", *(title for _, title, _ in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for count, metrics in sorted(results.items()):
        cells = [str(count)]
        for key, _, shape in COLUMNS:
            values = metrics.get(key)
            cells.append(shape.format(summarize(values)["median"]) if values else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="1,2,3", help="node counts, comma-separated")
    parser.add_argument("--quick", action="store_true", help="tiny: a smoke test of the tool")
    parser.add_argument("--no-pin", action="store_true", help="leave CPU placement to the OS")
    parser.add_argument("--output", type=Path, help="the JSON file (default: bench/results/)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick or os.environ.get("BENCH_QUICK") == "1" else FULL
    counts = [int(word) for word in args.nodes.split(",")]
    cores = None if args.no_pin else sorted(os.sched_getaffinity(0))
    procstats.raise_open_files(4096)
    workdir = Path(tempfile.mkdtemp(prefix="xmppd-bench-cluster-"))
    cert, key = workdir / "tls" / f"{DOMAIN}.crt", workdir / "tls" / f"{DOMAIN}.key"
    make_self_signed(cert, key, [DOMAIN])
    database = postgresql()
    redis = RedisServer(workdir / "redis")
    redis.start()
    results: dict[int, dict[str, list]] = {}
    problems: list[str] = []
    try:
        for count in counts:
            print(f"{count} node(s)...", file=sys.stderr)
            results[count] = run_count(count, plan, workdir, (cert, key), redis, database,
                                       cores, problems)
    finally:
        redis.stop()
    print(table(results))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    output = args.output or RESULTS / (
        f"cluster-{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({
        "plan": plan.__dict__, "cores": cores, "machine": platform.platform(),
        "cpus": os.cpu_count(), "load_after": os.getloadavg(), "results": results,
        "problems": problems, "quick": plan is QUICK,
        "table": table(results)}, indent=1))
    print(f"written: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
