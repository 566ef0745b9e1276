"""``make cluster``: a local xmppd cluster to try — PostgreSQL, Redis and three nodes on
loopback, in a temporary directory, until Ctrl-C stops them all.

It reuses the test suite's throw-away servers (tests/storage_engines.py for PostgreSQL,
tests/redis_server.py for Redis, tests/integration/serverproc.py for a node with its own
self-signed certificate and free ports), so it needs what ``make install-test`` installs
and Debian's postgresql and redis-server. Accounts alice, bob and carol exist on the
domain ``localhost``, with the password printed; log in to any node's port.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import PASSWORD  # noqa: E402
from tests.integration.serverproc import XmppdProcess  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.storage_engines import postgresql  # noqa: E402

USERS = ("alice", "bob", "carol")
PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", '
           '"offline", "carbons", "muc"]\n')


def node_config(dsn: str, redis_url: str, node: str) -> str:
    return (f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
            f'[cluster]\nredis = "{redis_url}"\nnode = "{node}"\n' + PLUGINS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    directory = Path(tempfile.mkdtemp(prefix="xmppd-cluster-"))
    redis = RedisServer(directory / "redis")
    nodes: list[XmppdProcess] = []
    database = None
    try:
        database = postgresql()  # started on first use, stopped below
        dsn = database.fresh_database()
        redis.start()
        for number in range(1, args.nodes + 1):
            name = f"node{number}"
            nodes.append(XmppdProcess(directory / name,
                                      extra=node_config(dsn, redis.url, name)))
        for user in USERS:
            result = nodes[0].ctl("adduser", f"{user}@localhost", PASSWORD)
            if result.returncode != 0:
                raise RuntimeError(f"xmppdctl adduser {user}: {result.stderr}")
        for node in nodes:
            node.start(timeout=60)
        print(f"PostgreSQL on 127.0.0.1:{database.port}, Redis at {redis.url}")
        for node in nodes:
            print(f"{node.directory.name}: c2s 127.0.0.1:{node.c2s_port} (STARTTLS), "
                  f"log {node.log_path}")
        print(f"accounts: {', '.join(f'{u}@localhost' for u in USERS)}; "
              f"password: {PASSWORD!r}")
        print("Ctrl-C stops the cluster.", flush=True)
        while not stop.wait(1.0):
            for node in nodes:
                if node.process is not None and node.process.poll() is not None:
                    print(f"{node.directory.name} exited ({node.process.returncode}); "
                          f"see {node.log_path}", flush=True)
                    stop.set()
        return 0
    except Exception as error:  # a clear line, not a traceback, for a newcomer
        print(f"the cluster did not start: {error}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        for node in reversed(nodes):
            try:
                node.stop(signal.SIGTERM)
            except Exception as error:
                print(f"{node.directory.name} did not stop cleanly: {error}", file=sys.stderr)
        redis.stop()
        if database is not None:
            database.stop()


if __name__ == "__main__":
    sys.exit(main())
