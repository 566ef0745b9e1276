# -*- test-case-name: tests.unit.test_proxy65 -*-
"""The proxy's SOCKS5 listener: XEP-0065 §6.3.2's subset of RFC 1928.

The client offers methods; only "no authentication" (0) is accepted, else 0xFF and the
connection ends. Its request must be CONNECT (1) to a DOMAINNAME (3) of 40 hex digits
(the stream's SHA-1) and port 0; the reply (success, or RFC 1928's failure code before
closing) repeats that address and port (§6.3.2: BND = DST). Then the connection waits for
its partner and the requester's activation (xmppd.proxy65.broker), its bytes ignored
(§9), until ``timeout`` seconds after it connected: then it is closed. Once activated,
its bytes go to the relay.
"""

from __future__ import annotations

import re

from twisted.internet import protocol

from xmppd.logs import get_logger
from xmppd.proxy65.broker import Broker

log = get_logger(__name__)

VERSION = 5
NO_AUTHENTICATION = 0
NO_ACCEPTABLE_METHOD = 0xFF
CONNECT = 1
DOMAINNAME = 3
SUCCEEDED = 0
GENERAL_FAILURE = 1
NOT_ALLOWED = 2
COMMAND_NOT_SUPPORTED = 7
ADDRESS_TYPE_NOT_SUPPORTED = 8
HASH = re.compile(rb"[0-9a-fA-F]{40}")
MAX_HANDSHAKE = 2 + 255 + 7 + 255  # the longest greeting and request RFC 1928 allows

GREETING, REQUEST, WAITING, RELAYING, CLOSED = "greeting", "request", "waiting", "relaying", \
    "closed"


class Socks5Protocol(protocol.Protocol):
    """One client connection to the proxy."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.state = GREETING
        self.buffer = b""
        self.digest: str | None = None
        self.relay = None
        self.timer = None

    def connectionMade(self) -> None:
        if not self.broker.admit(self):
            log.warn("bytestreams proxy: too many connections waiting, one refused")
            self.state = CLOSED
            self.transport.abortConnection()
            return
        self.timer = self.broker.clock.callLater(self.broker.limits.timeout, self.expire)

    def dataReceived(self, data: bytes) -> None:
        if self.state == RELAYING:
            self.relay.received(self, data)
            return
        if self.state in (WAITING, CLOSED):
            return  # XEP-0065 §9: bytes before activation are ignored
        self.buffer += data
        if self.state == GREETING:
            self._greeting()
        if self.state == REQUEST:
            self._request()
        if self.state in (GREETING, REQUEST) and len(self.buffer) > MAX_HANDSHAKE:
            self._close()

    def _greeting(self) -> None:
        if len(self.buffer) < 2:
            return
        if self.buffer[0] != VERSION:
            self._close()
            return
        count = self.buffer[1]
        if len(self.buffer) < 2 + count:
            return
        methods, self.buffer = self.buffer[2:2 + count], self.buffer[2 + count:]
        if NO_AUTHENTICATION not in methods:
            self.transport.write(bytes((VERSION, NO_ACCEPTABLE_METHOD)))
            self._close()
            return
        self.transport.write(bytes((VERSION, NO_AUTHENTICATION)))
        self.state = REQUEST

    def _request(self) -> None:
        if len(self.buffer) < 5:
            return
        version, command, _, kind, length = self.buffer[:5]
        if version != VERSION:
            self._close()
            return
        if command != CONNECT:
            self._refuse(COMMAND_NOT_SUPPORTED)
            return
        if kind != DOMAINNAME:
            self._refuse(ADDRESS_TYPE_NOT_SUPPORTED)
            return
        if len(self.buffer) < 5 + length + 2:
            return
        address = self.buffer[5:5 + length]
        port = self.buffer[5 + length:7 + length]
        self.buffer = b""
        if not HASH.fullmatch(address) or port != b"\0\0":
            self._refuse(NOT_ALLOWED, address)
            return
        digest = address.decode("ascii").lower()
        if not self.broker.attach(digest, self):
            self._refuse(NOT_ALLOWED, address)
            return
        self.digest = digest
        self.state = WAITING
        self.transport.write(reply(SUCCEEDED, address))

    def _refuse(self, code: int, address: bytes = b"") -> None:
        self.transport.write(reply(code, address))
        self._close()

    def _close(self) -> None:
        self.state = CLOSED
        self.transport.loseConnection()

    def expire(self) -> None:
        """Not activated in time (XEP-0065 §11: unactivated sessions are a DoS)."""
        self.timer = None
        if self.state != RELAYING:
            log.info("bytestreams proxy: a connection not activated in {timeout} s closed",
                     timeout=self.broker.limits.timeout)
            self._close()

    def activated(self) -> None:
        """The broker joined this connection to its partner; a Relay sets ``relay``."""
        self.state = RELAYING
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        if self.relay is not None:
            self.relay.lost(self)
        else:
            self.broker.lost(self.digest, self)
        self.state = CLOSED


def reply(code: int, address: bytes) -> bytes:
    """RFC 1928 §6's reply with BND.ADDR = the DOMAINNAME asked, BND.PORT = 0."""
    return bytes((VERSION, code, 0, DOMAINNAME, len(address))) + address + b"\0\0"


class Socks5Factory(protocol.ServerFactory):
    """The listener's factory; quiet (no 'Starting factory' in the admins' log)."""

    noisy = False

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def buildProtocol(self, addr) -> Socks5Protocol:
        connection = Socks5Protocol(self.broker)
        connection.factory = self
        return connection
