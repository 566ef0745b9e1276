"""What a message between two cluster nodes costs the servers, against one within a node.

Starts Redis and PostgreSQL (as the tests do: tests/redis_server.py, tests/storage_engines.py)
and two xmppd nodes; ``--senders`` clients on node a send chat messages to as many clients,
first on node a (same node), then on node b (cross node), in rounds of ``--window`` messages,
each round waited for at the receivers. Reported: the CPU seconds (user + system, the kernel's
counters, so the busy machine's wall clock does not enter) that node a, node b and Redis used
per message, for each case. Wall-clock rates are not reported: the machine is shared.

    PYTHONPATH=. python -m bench.cluster_crossnode --messages 20000

Run it on two trees (before and after a change) one after the other, in the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
from pathlib import Path

from bench.loadgen import PASSWORD, Target, close_all, login
from bench.procstats import cpu_seconds

BODY_END = b"</body>"


class Counter:
    """Counts ``</body>`` in a stream of decrypted chunks (a tag may straddle two chunks)."""

    def __init__(self) -> None:
        self.count = 0
        self._tail = b""

    def __call__(self, data: bytes) -> None:
        data = self._tail + data
        self.count += data.count(BODY_END)
        self._tail = data[-(len(BODY_END) - 1):]


async def run_case(sender_target: Target, receiver_target: Target, senders: int,
                   messages: int, window: int, pids: dict[str, int], domain: str) -> dict:
    out_context, into_context = sender_target.client_context(), receiver_target.client_context()
    out = [await login(sender_target, f"s{i}", out_context, resource="s")
           for i in range(senders)]
    into = [await login(receiver_target, f"r{i}", into_context, resource="r")
            for i in range(senders)]
    counters = [Counter() for _ in into]
    for connection, counter in zip(into, counters, strict=True):
        connection.sink = counter
    for connection in out:
        connection.sink = lambda data: None
    rendered = [(f"<message type='chat' to='r{i}@{domain}/r'><body>hello across the cluster, "
                 f"a message of ordinary length</body></message>").encode()
                for i in range(senders)]
    await asyncio.sleep(2)  # presence and registry traffic of the logins settles
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    sent = 0
    while sent < messages:
        batch = min(window, messages - sent)
        for n in range(batch):
            out[n % senders].send(rendered[n % senders])
        sent += batch
        while sum(c.count for c in counters) < sent:
            await asyncio.sleep(0.002)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    close_all(out + into)
    await asyncio.sleep(1)
    return {name: round((after[name] - before[name]) / messages * 1e6, 1) for name in pids}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--window", type=int, default=200)
    args = parser.parse_args(argv)

    from tests.integration.serverproc import XmppdProcess
    from tests.redis_server import RedisServer
    from tests.storage_engines import postgresql

    with tempfile.TemporaryDirectory(prefix="xmppd-cluster-bench-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root / "redis")
        redis.start()
        dsn = postgresql().fresh_database()
        nodes = {}
        try:
            for name in ("a", "b"):
                nodes[name] = XmppdProcess(root / name, extra=(
                    f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
                    f'[cluster]\nredis = "{redis.url}"\nnode = "{name}"\n'
                    '[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline"]\n'))
            for i in range(args.senders):
                for user in (f"s{i}", f"r{i}"):
                    assert nodes["a"].ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
            for node in nodes.values():
                node.start()
            pids = {"node a": nodes["a"].process.pid, "node b": nodes["b"].process.pid,
                    "redis": redis.process.pid}
            targets = {name: Target("xmppd", "127.0.0.1", node.c2s_port, "localhost",
                                    node.cert, node.process.pid)
                       for name, node in nodes.items()}
            results = {}
            for case, receivers in (("same node", "a"), ("cross node", "b")):
                results[case] = asyncio.run(run_case(
                    targets["a"], targets[receivers], args.senders, args.messages,
                    args.window, pids, "localhost"))
            print(json.dumps({"messages": args.messages, "cpu_us_per_message": results},
                             indent=2))
        finally:
            for node in nodes.values():
                node.stop(signal.SIGTERM)
            redis.stop()


if __name__ == "__main__":
    main()
