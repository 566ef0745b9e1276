"""The message path alone, in one process: what routing one message costs, without TLS or sockets.

``python -m bench.message_path [--plugins plain|default] [--payload chat|rich|omemo]
[--messages N] [--callgrind]`` starts a real Server (real SQLite in memory, the plugins as
``make bench`` names them), logs in two accounts on in-memory transports, and feeds
``a``'s stream chat messages to ``b``'s bare JID, 16 per read as a busy client's reads
carry them: parse, the client's limits and filters, routing, the delivery chain, and
serializing into ``b``'s write batch. It prints the CPU time per message (median of 5
rounds). On a shared machine that figure moves with the neighbours; ``--callgrind`` gives
one that does not: run under ``valgrind --tool=callgrind --dump-before=os_getppid``, the
measured loop (only) is bracketed by two ``os.getppid()`` calls, so the instruction count
of the second dump part (``callgrind.out.N.2``, its ``summary:`` line) divided by N is the
instructions per message.

Payloads: ``chat`` is the bench's message (a body); ``rich`` adds what today's clients
send with one (chat state, receipt request, chat marker, origin-id); ``omemo`` an
end-to-end encrypted one (XEP-0384: a header with keys, a payload) and a storage hint.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from twisted.internet import defer, reactor, task

from bench.servers import PLAIN_PLUGINS
from bench.workloads import BODY
from tests.helpers import ServerFixture, StreamHarness
from xmppd.registry import PluginRegistry

PASSWORD = "pencil and paper"
PAYLOADS = {
    "chat": "",
    "rich": ("<active xmlns='http://jabber.org/protocol/chatstates'/>"
             "<request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/>"
             "<origin-id xmlns='urn:xmpp:sid:0' id='3c6a9d6e-5b1e-4c1f-9a6e-0d0c2f7e4b11'/>"),
    "omemo": ("<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='123456'>"
              "<key rid='654321'>MwohBXsHBh3T3Gn5dB0zY0cC6W8Y1b9rXy2m2oNoxVyeWd5xEAAYACIwu6b"
              "x0Vq7mT3d8n1xv2l0Q1Kq9Yp</key><key rid='777' prekey='true'>MwohBXsHBh3T3Gn5dB0"
              "</key><iv>pT9lr3hMc7tVbE3y</iv></header><payload>c2VjcmV0IG1lc3NhZ2U=</payload>"
              "</encrypted><store xmlns='urn:xmpp:hints'/>"),
}
# No stanza shaping: the server's clock here never moves, so a shaped stream would wait.
UNSHAPED = ("require_encryption = false\n[limits.c2s]\nstanzas_per_second = 0\n"
            "bytes_per_second = 0\n")


async def _online(fixture: ServerFixture, user: str) -> StreamHarness:
    harness = StreamHarness(fixture.server)
    await harness.login(user, PASSWORD, "r")
    harness.feed("<presence/>")
    for _ in range(20):  # the presence exchange's storage reads answer from a thread
        await task.deferLater(reactor, 0.01, lambda: None)
    harness.events()
    return harness


async def measure(plugins: str, payload: str, messages: int, callgrind: bool) -> None:
    fixture = ServerFixture(Path(tempfile.mkdtemp(prefix="message-path-")), c2s=UNSHAPED)
    if plugins == "plain":
        fixture.registry = PluginRegistry(fixture.server, PLAIN_PLUGINS,
                                          fixture.server.config.plugins.sections)
    await fixture.start()
    try:
        for user in ("a", "b"):
            await fixture.add_user(user, PASSWORD)
        sender, recipient = [await _online(fixture, user) for user in ("a", "b")]
        batch = "".join(f"<message to='b@localhost' type='chat' id='m{n}'><body>{BODY}</body>"
                        f"{PAYLOADS[payload]}</message>" for n in range(16)).encode()
        sender.feed(batch)
        delivered = recipient.transport.value()
        if delivered.count(b"<message") != 16:
            raise SystemExit(f"messages not delivered: {delivered[:300]!r}")
        for _ in range(50):  # warm up
            sender.feed(batch)
            recipient.transport.clear()
        rounds = 1 if callgrind else 5
        results = []
        for _ in range(rounds):
            if callgrind:
                os.getppid()  # callgrind --dump-before=os_getppid: the loop is one part
            started = time.process_time()
            for _ in range(messages // 16):
                sender.feed(batch)
                recipient.transport.clear()
            results.append((time.process_time() - started) / messages * 1e6)
            if callgrind:
                os.getppid()
        print(f"{plugins} {payload}: {statistics.median(results):.2f} µs CPU per message "
              f"(rounds: {', '.join(f'{r:.2f}' for r in results)})")
    finally:
        await fixture.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", choices=("plain", "default"), default="plain")
    parser.add_argument("--payload", choices=sorted(PAYLOADS), default="chat")
    parser.add_argument("--messages", type=int, default=16000)
    parser.add_argument("--callgrind", action="store_true",
                        help="one round, bracketed by os.getppid() for callgrind")
    args = parser.parse_args()
    task.react(lambda _reactor: defer.ensureDeferred(
        measure(args.plugins, args.payload, args.messages, args.callgrind)))


if __name__ == "__main__":
    main()
