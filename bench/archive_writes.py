"""What one batch of archive appends costs: CPU and wall time of ``append_many`` on SQLite.

``python -m bench.archive_writes`` writes batches shaped like the MAM plugin's (every message
archived twice, in the sender's and the recipient's archive; 100 accounts chatting in pairs;
fresh ids made beforehand, as xmppd.mam makes them) into a fresh database file, and reports the
CPU time of the whole process (the reactor thread preparing the batch and the database thread
writing it: under ``make bench`` both share one core with the server) and the wall time per
batch, first into an empty archive, then with ``--rows`` entries already there. It is the
micro view of what the ``messages`` workload with ``--xmppd-plugins archive`` pays per
message; the file lives in a temporary directory on the same disk as the benchmark's.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from twisted.internet import defer, task

from xmppd.mam.ids import EntryIds
from xmppd.storage.records import ArchiveEntry
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.storage.stores.archive_log import SQLArchiveLog

ACCOUNTS = 100
PAYLOAD = ("<message xmlns='jabber:client' from='user{n}@localhost/bench' to='user{m}@localhost'"
           " type='chat' id='m{i}'><body>Hello there, this is message {i}.</body>"
           "<stanza-id xmlns='urn:xmpp:sid:0' by='user{m}@localhost' id='{id}'/></message>")


def random_ids() -> str:
    """96 random bits, as MAM's ids were before they were made in time order."""
    return base64.urlsafe_b64encode(os.urandom(12)).decode("ascii")


def ordered_ids() -> str:
    """An id whose first characters are the time in ns (then 80 random bits): what entry ids
    would cost if they sorted in the order they are made (``--ordered-ids``)."""
    prefix = time.time_ns().to_bytes(8, "big")[1:]
    return base64.urlsafe_b64encode(prefix + os.urandom(10)).decode("ascii")


def mam_batch(size: int, start: int, ids: Callable[[], str]) -> list[tuple[str, ArchiveEntry]]:
    """``size`` entries (``size // 2`` messages, each in both archives), as MAM queues them."""
    batch = []
    now = time.time()
    for i in range(start, start + size // 2):
        n = i % ACCOUNTS
        m = n ^ 1  # pairs: 0-1, 2-3, ...
        sender, recipient = f"user{n}@localhost", f"user{m}@localhost"
        payload = PAYLOAD.format(n=n, m=m, i=i, id="x" * 16)
        batch.append((sender, ArchiveEntry(now, recipient, payload, ids())))
        batch.append((recipient, ArchiveEntry(now, sender, payload, ids())))
    return batch


@defer.inlineCallbacks
def measure(store, batches: int, size: int, start: int, ids: Callable[[], str]):
    """CPU and wall seconds of each of ``batches`` appends of ``size`` entries."""
    cpu, wall = [], []
    for b in range(batches):
        batch = mam_batch(size, start + b * size, ids)
        c0, w0 = time.process_time(), time.perf_counter()
        yield store.append_many(batch)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return cpu, wall


def report(label: str, cpu: list[float], wall: list[float]) -> None:
    def ms(values):
        median, mean = statistics.median(values) * 1000, statistics.mean(values) * 1000
        return f"{median:6.2f} ms (mean {mean:6.2f}, p90 {_p90(values) * 1000:6.2f})"
    print(f"{label:<28} CPU {ms(cpu)}  wall {ms(wall)}", flush=True)


def _p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9)]


@defer.inlineCallbacks
def run(reactor, args):
    directory = tempfile.mkdtemp(prefix="archive-writes-", dir=args.dir)
    path = os.path.join(directory, "bench.sqlite")
    storage = SQLiteStorage(path, reactor=reactor)
    yield storage.open()
    if args.generic:  # the generic archive store MAM used before migration 0005
        store = storage.open_store("mam", "archive")
        ids = ordered_ids if args.ordered_ids else random_ids
    else:
        store = SQLArchiveLog(storage, "mam")
        ids = EntryIds()
    try:
        cpu, wall = yield measure(store, args.batches, args.size, 0, ids)
        report(f"{args.size} entries, empty", cpu, wall)
        written = args.batches * args.size
        fill = 10_000
        while written < args.rows:
            yield store.append_many(mam_batch(fill, written, ids))
            written += fill
        cpu, wall = yield measure(store, args.batches, args.size, written, ids)
        report(f"{args.size} entries, {written:,} rows", cpu, wall)
    finally:
        yield storage.close()
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="entries per batch")
    parser.add_argument("--batches", type=int, default=30, help="batches measured per size")
    parser.add_argument("--rows", type=int, default=300_000, help="rows before the second run")
    parser.add_argument("--generic", action="store_true",
                        help="the generic archive store (store_archive), as MAM had before "
                             "migration 0005, instead of its own (packed, migration 0006)")
    parser.add_argument("--ordered-ids", action="store_true",
                        help="with --generic: time-ordered ids instead of random ones")
    parser.add_argument("--dir", default=None, help="where the temporary database goes")
    task.react(run, [parser.parse_args(argv)])


if __name__ == "__main__":
    main()
