# -*- test-case-name: tests.unit.test_cluster_broadcast -*-
"""News for every node of the cluster: one Redis channel (``xmppd:broadcast``) every node
listens on, each message ``TOPIC NODE\\nTEXT``.

What goes here changes state that any node may hold (a roster another node keeps in memory,
a PEP notification that contacts on any node may want), so it goes to all of them: one
PUBLISH whatever the number of nodes, and no node needs to know which others care. A node
ignores its own messages (Redis hands them back to the publisher's subscription) and
messages whose topic no handler took (a newer node's news, during an upgrade).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer

from xmppd.cluster.directory import PREFIX
from xmppd.cluster.redis import log_failure
from xmppd.logs import get_logger

log = get_logger(__name__)

BROADCAST_CHANNEL = PREFIX + "broadcast"


class Broadcast:
    """Send news to the other nodes, and hand theirs to the handler of its topic."""

    def __init__(self, redis, node: str) -> None:
        self.redis = redis  # a txredisapi connection handler
        self.node = node
        self._handlers: dict[str, Callable[[str, str], object]] = {}

    def on(self, topic: str, handler: Callable[[str, str], object]) -> Callable[[], None]:
        """``handler(node, text)`` for each message of ``topic`` from another node; returns
        the undo function."""
        if not topic or " " in topic or "\n" in topic:
            raise ValueError(f"bad broadcast topic {topic!r}")
        if topic in self._handlers:
            raise ValueError(f"broadcast topic {topic!r} already has a handler")
        self._handlers[topic] = handler
        return lambda: self._handlers.pop(topic, None)

    def send(self, topic: str, text: str) -> defer.Deferred:
        """Publish; a failure is logged (the news is lost, as on a broken connection)."""
        d = self.redis.publish(BROADCAST_CHANNEL, f"{topic} {self.node}\n{text}")
        d.addErrback(log_failure, f"cluster news ({topic}) not sent")
        return d

    def received(self, message: str) -> None:
        head, newline, text = message.partition("\n")
        topic, _, node = head.partition(" ")
        if not newline or not node:
            log.warn("ignored a malformed cluster broadcast: {text!r}", text=message[:200])
            return
        handler = self._handlers.get(topic)
        if node == self.node or handler is None:
            return
        try:
            result = handler(node, text)
        except Exception:
            log.failure("cluster news ({topic}) from {node} failed", topic=topic, node=node)
            return
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: log.failure(
                "cluster news ({topic}) from {node} failed", failure, topic=topic, node=node))

    def relay(self, bus, topic: str, here: str, elsewhere: str, encode: Callable,
              decode: Callable, what: str) -> list[Callable[[], None]]:
        """Carry the event ``here`` of the server's ``bus`` to the other nodes under
        ``topic`` (``encode(*args)`` to text), and emit theirs on this bus as ``elsewhere``
        (``decode(text)`` to the arguments; ValueError: malformed, logged as ``what``).
        Returns the undo functions."""

        def sent(*args) -> None:
            self.send(topic, encode(*args))

        def arrived(node: str, text: str):
            try:
                args = decode(text)
            except ValueError as error:
                log.warn("ignored a malformed {what} from node {node}: {error}",
                         what=what, node=node, error=str(error))
                return None
            return bus.emit(elsewhere, *args)

        return [bus.on(here, sent), self.on(topic, arrived)]
