"""XmlStream turns Nagle's algorithm off on TCP (bench/ measured ~40 ms per login without)."""

from __future__ import annotations

import socket

from twisted.internet import defer, protocol, reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from xmppd.stream.xmlstream import XmlStream


class _Stream(XmlStream):
    """The smallest XmlStream: reports when it is connected and when it is gone."""

    def __init__(self) -> None:
        super().__init__(reactor, 65536)
        self.made: defer.Deferred = defer.Deferred()
        self.lost: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.made.callback(self.transport)

    def connectionLost(self, reason=None) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)

    def header_received(self, header) -> None:
        pass

    def element_received(self, element) -> None:
        pass


class _Client(protocol.Protocol):
    def __init__(self) -> None:
        self.lost: defer.Deferred = defer.Deferred()

    def connectionLost(self, reason=None) -> None:
        self.lost.callback(None)


class NoDelayTests(TestCase):
    @defer.inlineCallbacks
    def test_a_real_tcp_stream_has_tcp_nodelay_set(self):
        stream = _Stream()
        factory = protocol.Factory.forProtocol(lambda: stream)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = yield protocol.ClientCreator(reactor, _Client).connectTCP(
            "127.0.0.1", port.getHost().port)
        transport = yield stream.made
        try:
            option = transport.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            self.assertTrue(option)
        finally:
            client.transport.loseConnection()
            yield defer.gatherResults([client.lost, stream.lost])

    def test_a_transport_without_tcp_options_still_starts_the_stream(self):
        stream = _Stream()
        stream.makeConnection(StringTransport())
        self.assertIsNotNone(stream.parser)
        self.assertTrue(stream.made.called)
