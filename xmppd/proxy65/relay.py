# -*- test-case-name: tests.unit.test_proxy65 -*-
"""The bytes of one activated bytestream, relayed both ways between two SOCKS5 connections.

Nothing is buffered here: what one side reads is written to the other side's transport at
once, and each transport is registered as the streaming consumer of the other side's
reading (IPushProducer), so a slow reader's full socket buffer pauses the fast writer's
reading instead of growing memory (Twisted's transports pause their producer above their
buffer size). The requester's token bucket pauses reading too, for as long as the bytes
already read take at the user's rate. A reading side is paused while any reason holds.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from xmppd.proxy65.bucket import TokenBucket


@implementer(IPushProducer)
class Reading:
    """The reading of one connection, paused for reasons: 'consumer' (the other side's
    transport is full), 'rate' (the bandwidth cap)."""

    def __init__(self, transport) -> None:
        self.transport = transport
        self.reasons: set[str] = set()

    def pause(self, reason: str) -> None:
        if not self.reasons:
            self.transport.pauseProducing()
        self.reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.reasons:
            self.reasons.discard(reason)
            if not self.reasons:
                self.transport.resumeProducing()

    # IPushProducer, as the other side's transport calls it
    def pauseProducing(self) -> None:
        self.pause("consumer")

    def resumeProducing(self) -> None:
        self.resume("consumer")

    def stopProducing(self) -> None:
        self.transport.loseConnection()


class Relay:
    """Two connections (xmppd.proxy65.socks5.Socks5Protocol) joined; ``on_end()`` once,
    when either side is gone (the other is closed after what it still has to write)."""

    def __init__(self, one, other, bucket: TokenBucket | None, clock,
                 on_end: Callable[[], None]) -> None:
        self.sides = {one: other, other: one}
        self.reading = {one: Reading(one.transport), other: Reading(other.transport)}
        self.bucket = bucket
        self.clock = clock
        self.on_end = on_end
        self.relayed = 0
        self._waits: dict[object, object] = {}
        self.ended = False
        for side, peer in self.sides.items():
            peer.transport.registerProducer(self.reading[side], True)
            side.relay = self

    def received(self, side, data: bytes) -> None:
        """Bytes ``side`` read: to its peer, then the toll."""
        if self.ended:
            return
        self.sides[side].transport.write(data)
        self.relayed += len(data)
        if self.bucket is not None:
            delay = self.bucket.take(len(data))
            if delay > 0 and side not in self._waits:
                self.reading[side].pause("rate")
                self._waits[side] = self.clock.callLater(delay, self._paid, side)

    def _paid(self, side) -> None:
        del self._waits[side]
        self.reading[side].resume("rate")

    def lost(self, side) -> None:
        """``side``'s connection is gone: so is the stream; its peer is closed once its
        buffered bytes are written."""
        if self.ended:
            return
        self.ended = True
        for wait in self._waits.values():
            if wait.active():
                wait.cancel()
        self._waits.clear()
        peer = self.sides[side]
        peer.transport.unregisterProducer()
        peer.transport.loseConnection()
        self.on_end()

    def close(self) -> None:
        """Abort both sides (the plugin stops)."""
        for side in list(self.sides):
            side.transport.abortConnection()
