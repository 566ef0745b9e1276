"""The cluster's Redis connections, on txredisapi.

Why txredisapi: it speaks RESP over Twisted's own TCP transport, so every command is a
Deferred on the default reactor and nothing ever blocks it (redis-py's sync client would
need a thread per waiting call, its asyncio client the asyncio reactor, which xmppd does
not run); it reconnects by itself and has a pub/sub protocol. Pure Python, runs on 3.11.

"""

from __future__ import annotations

from collections.abc import Callable

import txredisapi
from twisted.internet import error
from twisted.internet.endpoints import HostnameEndpoint

from xmppd.cluster.address import RedisAddress
from xmppd.logs import get_logger

log = get_logger(__name__)

class _Commands(txredisapi.RedisProtocol):
    def connectionMade(self):
        _no_delay(self.transport)
        return super().connectionMade()


def _no_delay(transport) -> None:
    """Small writes go out at once: with Nagle's algorithm a PUBLISH written while the
    previous one is unanswered waits for the peer's delayed ACK (tens of milliseconds on
    Linux), which made every stanza between nodes that late under load."""
    if hasattr(transport, "setTcpNoDelay"):
        transport.setTcpNoDelay(True)


def connect(address: RedisAddress, reactor=None) -> txredisapi.ConnectionHandler:
    """A command connection that reconnects by itself; commands wait while it is down.
    (txredisapi's lazyConnection, with a protocol that turns Nagle's algorithm off.)"""
    if reactor is None:
        from twisted.internet import reactor
    factory = txredisapi.RedisFactory(str(address), address.db, 1, True,
                                      txredisapi.ConnectionHandler, "utf-8", address.password,
                                      None, True)
    factory.protocol = _Commands
    factory.reconnect = True
    factory.startConnecting(HostnameEndpoint(reactor, address.host, address.port))
    return factory.handler


class _Subscriber(txredisapi.SubscriberProtocol):
    def connectionMade(self):
        _no_delay(self.transport)
        return super().connectionMade()

    def messageReceived(self, pattern, channel, message) -> None:
        self.factory.on_message(channel, message)


class Subscriber(txredisapi.RedisFactory):
    """One connection of its own (pub/sub takes a connection over), reconnected by
    txredisapi; subscribed again to ``channels`` after every reconnection."""

    protocol = _Subscriber

    def __init__(self, address: RedisAddress, channels: tuple[str, ...],
                 on_message: Callable[[str, str], None],
                 on_subscribed: Callable[[], None]) -> None:
        super().__init__(str(address), address.db, 1, isLazy=True, password=address.password)
        self.channels = channels
        self.on_message = on_message
        self.on_subscribed = on_subscribed

    def addConnection(self, conn) -> None:
        super().addConnection(conn)
        if conn.connected and not self.disconnectCalled:
            d = conn.subscribe(list(self.channels))
            d.addCallback(lambda _: self.on_subscribed())
            d.addErrback(log_failure, "redis subscription failed")


def subscribe(reactor, address: RedisAddress, channels: tuple[str, ...],
              on_message: Callable[[str, str], None],
              on_subscribed: Callable[[], None]) -> Subscriber:
    """Listen on ``channels``: ``on_message(channel, message)`` for each message,
    ``on_subscribed()`` each time the subscription holds (again after a reconnection).
    ``stop()`` it with its ``disconnect()``."""
    factory = Subscriber(address, channels, on_message, on_subscribed)
    factory.startConnecting(HostnameEndpoint(reactor, address.host, address.port))
    return factory


def connected(handler: txredisapi.ConnectionHandler) -> bool:
    """Whether a command sent now goes out at once (else it waits for a reconnection)."""
    return bool(handler._factory.size)


LOST = (txredisapi.ConnectionError, ConnectionError, error.ConnectionDone, error.ConnectionLost)


def log_failure(failure, what: str) -> None:
    """A Redis call that failed: a lost connection is an outage the node lives through
    (txredisapi reconnects, the next heartbeat repairs), logged as one line; anything else
    is a bug, logged with its traceback."""
    if failure.check(*LOST):
        log.warn("{what}: Redis connection lost ({error})", what=what,
                 error=failure.getErrorMessage())
    else:
        log.failure("{what}", failure, what=what)
