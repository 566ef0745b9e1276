"""The least an archived message can cost this process: issue 13's 10% bar against it.

``python -m bench.archive_floor [--plain-us 18] [--rate 55000] [--batch-ms 50]``

Issue 13 asks that messages/s fall no more than 10% with the message archive on. On one core
that is a budget of a tenth of a plain message's CPU time (``--plain-us``: 18 µs on a quiet
machine, README's "xmppd and ejabberd on a quiet machine") for everything the archive does
per message. This measures, with xmppd's own code and nothing around it, the parts no
design of an archive on this stack can skip, for a message between two local accounts:

- **ids**: two XEP-0359 ids (the sender's archive and the recipient's), ``EntryIds``;
- **stamp**: the recipient's copy with its ``<stanza-id/>`` (XEP-0313 §5.1.2 says the
  delivered message carries it), ``with_stanza_id`` reusing the delivery's serialization;
- **storage**: the two entries written by ``SQLArchiveLog.append_rows`` on SQLite in batches
  of what ``--rate`` messages/s bring in ``--batch-ms`` (the plugin's default 50 ms), process
  CPU of both threads (the database thread shares the core under ``make bench``).

No preference look-up, no chain link call, no JID comparison is counted: the sum is a floor,
and the real path (bench ``--xmppd-plugins archive``) costs more.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import timeit

from twisted.internet import defer, task

from xmppd.jid import parse_jid
from xmppd.mam.ids import EntryIds
from xmppd.mam.stanza_ids import with_stanza_id
from xmppd.stanza import Stanza
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.storage.stores.archive_log import SQLArchiveLog
from xmppd.xml.parser import StreamParser
from xmppd.xml.serializer import serialize

ACCOUNTS = 100
HEADER = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
          b" to='localhost' version='1.0'>")
MESSAGE = ("<message from='user{n}@localhost/bench' to='user{m}@localhost' type='chat' "
           "id='m{i}'><body>Hello there, this is message {i}.</body></message>")


def parsed_message(i: int) -> Stanza:
    """A chat message as the server holds it after parsing (xmppd's own parser)."""
    elements = []
    parser = StreamParser(lambda _header: None, elements.append, lambda: None)
    parser.feed(HEADER + MESSAGE.format(n=0, m=1, i=i).encode())
    element = elements[0]
    return Stanza(element, parse_jid(element["from"]), parse_jid(element["to"]))


def per_message_us(function, number: int) -> float:
    return timeit.timeit(function, number=number) / number * 1e6


def reactor_floor(number: int) -> tuple[float, float]:
    """(µs for two ids, µs for the stamped copy) per message."""
    ids = EntryIds()
    stanza = parsed_message(1)
    wire = serialize(stanza.element, "jabber:client")
    two_ids = per_message_us(lambda: (ids(), ids()), number)
    entry_id = ids()
    stamp = per_message_us(lambda: with_stanza_id(stanza, entry_id, "user1@localhost", wire),
                           number)
    return two_ids, stamp


@defer.inlineCallbacks
def storage_floor(reactor, messages: int, batches: int):
    """Process CPU µs per message of writing its two entries, ``messages`` per batch."""
    directory = tempfile.mkdtemp(prefix="archive-floor-")
    storage = SQLiteStorage(os.path.join(directory, "floor.sqlite"), reactor=reactor)
    yield storage.open()
    store = SQLArchiveLog(storage, "mam")
    ids = EntryIds()
    spent = 0.0
    try:
        for b in range(batches + 1):  # the first one warms up (tables, caches)
            rows = []
            for i in range(b * messages, (b + 1) * messages):
                n = i % ACCOUNTS
                m = n ^ 1
                text = MESSAGE.format(n=n, m=m, i=i)
                sender, recipient = f"user{n}@localhost", f"user{m}@localhost"
                rows.append((sender, ids(), ids.stamp, recipient, text))
                rows.append((recipient, ids(), ids.stamp, sender, text))
            started = time.process_time()
            yield store.append_rows(rows)
            if b:
                spent += time.process_time() - started
    finally:
        yield storage.close()
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    return spent / (batches * messages) * 1e6


@defer.inlineCallbacks
def run(reactor, args):
    two_ids, stamp = reactor_floor(args.number)
    messages = max(1, int(args.rate * args.batch_ms / 1000))
    storage = yield storage_floor(reactor, messages, args.batches)
    floor = two_ids + stamp + storage
    budget = args.plain_us * 0.10
    print(f"two ids                 {two_ids:6.2f} µs per message")
    print(f"stamped copy            {stamp:6.2f} µs per message")
    print(f"storage, {messages:,} messages a batch {storage:6.2f} µs per message (process CPU)")
    print(f"floor                   {floor:6.2f} µs per message")
    print(f"budget (10% of {args.plain_us:g} µs)   {budget:6.2f} µs per message: the floor is "
          f"{floor / budget:.1f}× the budget")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain-us", type=float, default=18.0,
                        help="server CPU µs per routed message without the archive")
    parser.add_argument("--rate", type=float, default=55_000,
                        help="messages/s the batches are sized for")
    parser.add_argument("--batch-ms", type=float, default=50.0, help="[plugins.mam] batch_ms")
    parser.add_argument("--batches", type=int, default=20, help="batches measured")
    parser.add_argument("--number", type=int, default=200_000, help="timeit repetitions")
    task.react(run, [parser.parse_args(argv)])


if __name__ == "__main__":
    main()
