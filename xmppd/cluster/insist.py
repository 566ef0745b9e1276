# -*- test-case-name: tests.unit.test_cluster_insist -*-
"""News that must reach every node even across a Redis outage: sent again until heard.

Pub/sub keeps nothing: a PUBLISH made while a node's subscription is down (Redis restarting,
a connection being made again) is lost for that node. But PUBLISH answers how many
subscriptions got the message, so the sender can tell: news under a key (for PEP, the
account's node) is sent again at every heartbeat until as many subscriptions heard it as
there were nodes that needed it when it was first sent (this node's own and every node that
had a session), or until ``TRIES`` heartbeats passed (then it is logged as lost). Only the
last news of each key is kept: a newer one replaces it (for PEP, the latest item is what
counts).

A node that already heard it gets it again with the others: each news carries its id
(``NODE SEQUENCE``) on its first line, and a receiver drops an id it has seen among the
last ``REMEMBERED``.

What this cannot see: the count is a number, not names, so a node that joined meanwhile may
stand in for one that missed the news; news lost longer than ``TRIES`` heartbeats is lost.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import task

from xmppd.cluster.broadcast import Broadcast
from xmppd.logs import get_logger

log = get_logger(__name__)

TRIES = 60  # heartbeats a news is sent again before it is given up
REMEMBERED = 4096  # ids of news heard, to drop a second copy


@dataclass
class _Pending:
    sequence: int
    text: str  # with its id line
    needed: int  # subscriptions that must hear it
    tries: int = 0
    in_flight: bool = True


class Insistent:
    """Send ``topic``'s news through ``broadcast`` until heard (``send``), and hand the
    other nodes' news to ``handler(node, text)`` once each (``start``)."""

    def __init__(self, broadcast: Broadcast, topic: str, handler: Callable[[str, str], object],
                 receivers: Callable[[], int], connected: Callable[[], bool],
                 reactor, interval: float) -> None:
        """``receivers()``: how many subscriptions need news now (this node's included);
        ``connected()``: whether a command goes out now; ``interval``: seconds between
        the tries (the heartbeat)."""
        self.broadcast = broadcast
        self.topic = topic
        self.handler = handler
        self.receivers = receivers
        self.connected = connected
        self.reactor = reactor
        self.interval = interval
        self.pending: dict[object, _Pending] = {}
        self._sequence = itertools.count(1)
        self._heard: OrderedDict[str, None] = OrderedDict()
        self._loop: task.LoopingCall | None = None

    def start(self) -> Callable[[], None]:
        """Listen for the topic and start the tries; returns the undo function."""
        undo = self.broadcast.on(self.topic, self._arrived)
        if self.reactor is not None:  # None: sent once (tests of what travels)
            self._loop = task.LoopingCall(self._again)
            self._loop.clock = self.reactor
            self._loop.start(self.interval, now=False)

        def stop() -> None:
            undo()
            if self._loop is not None and self._loop.running:
                self._loop.stop()

        return stop

    def send(self, key, text: str) -> None:
        """Publish ``text`` as the news of ``key`` (replacing any still being tried)."""
        sequence = next(self._sequence)
        pending = _Pending(sequence, f"{self.broadcast.node} {sequence}\n{text}",
                           self.receivers())
        self.pending[key] = pending
        self._publish(key, pending)

    def _publish(self, key, pending: _Pending) -> None:
        pending.in_flight = True
        d = self.broadcast.send(self.topic, pending.text)  # a failure: logged, None
        d.addCallback(self._answered, key, pending.sequence)

    def _answered(self, count, key, sequence: int) -> None:
        pending = self.pending.get(key)
        if pending is None or pending.sequence != sequence:
            return  # a newer news replaced it
        if count is not None and count >= pending.needed:
            del self.pending[key]
            if pending.tries:
                log.info("cluster news ({topic}) heard by every node after {tries} more "
                         "tries", topic=self.topic, tries=pending.tries)
            return
        pending.in_flight = False

    def _again(self) -> None:
        if not self.pending or not self.connected():
            return
        for key, pending in list(self.pending.items()):
            if pending.in_flight:
                continue
            if pending.tries >= TRIES:
                del self.pending[key]
                log.warn("cluster news ({topic}) given up after {tries} tries: a node may "
                         "have missed it", topic=self.topic, tries=pending.tries)
                continue
            pending.tries += 1
            self._publish(key, pending)

    def _arrived(self, node: str, message: str):
        news_id, newline, text = message.partition("\n")
        if not newline or not news_id.startswith(node + " "):
            log.warn("ignored cluster news ({topic}) without its id from node {node}",
                     topic=self.topic, node=node)
            return None
        if news_id in self._heard:
            self._heard.move_to_end(news_id)
            return None
        self._heard[news_id] = None
        if len(self._heard) > REMEMBERED:
            self._heard.popitem(last=False)
        return self.handler(node, text)
