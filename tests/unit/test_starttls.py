"""xmppd.stream.starttls: STARTTLS on a real loopback connection, the way Twisted does it,
with the TLS layer declaring the transport's interfaces at once."""

from __future__ import annotations

from pathlib import Path

from OpenSSL import SSL
from twisted.internet import defer, protocol, reactor, ssl
from twisted.internet.interfaces import ISSLTransport, ITCPTransport
from twisted.trial.unittest import TestCase

from xmppd.stream.selfsigned import make_self_signed
from xmppd.stream.starttls import start_tls
from xmppd.stream.tls import server_context_factory


class _Server(protocol.Protocol):
    """Plain until it reads b"tls" (answered b"ok"), then TLS; echoes what it reads, upper."""

    def __init__(self, context) -> None:
        self.context = context
        self.lost: defer.Deferred = defer.Deferred()

    def connectionLost(self, reason=None) -> None:
        self.lost.callback(None)

    def dataReceived(self, data: bytes) -> None:
        if data == b"tls":  # as <proceed/>: the answer goes out plain, then TLS
            self.transport.write(b"ok")
            start_tls(self.transport, self.context)
            self.transport.write(b"encrypted hello")
        else:
            self.transport.write(data.upper())


class _Client(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.waiting: defer.Deferred | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            waiting.callback(None)

    def wait(self) -> defer.Deferred:
        self.waiting = defer.Deferred()
        return self.waiting


class StartTLSTests(TestCase):
    @defer.inlineCallbacks
    def test_a_tcp_connection_turns_to_tls_and_its_layer_provides_the_transports_interfaces(
            self):
        path = Path(self.mktemp())
        cert, key = path.with_suffix(".crt"), path.with_suffix(".key")
        make_self_signed(cert, key, ["localhost"])
        server = _Server(server_context_factory(cert, key))
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(lambda: server),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = yield protocol.ClientCreator(reactor, _Client).connectTCP(
            "127.0.0.1", port.getHost().port)
        client.transport.write(b"tls")
        yield client.wait()
        self.assertEqual(client.received, b"ok")
        client.received = b""
        client.transport.startTLS(ssl.CertificateOptions())  # no verification: a test peer
        yield client.wait()
        self.assertEqual(client.received, b"encrypted hello")
        client.received = b""
        client.transport.write(b"again")
        yield client.wait()
        self.assertEqual(client.received, b"AGAIN")
        transport = server.transport
        self.assertTrue(transport.TLS)
        self.assertTrue(ISSLTransport.providedBy(transport))
        self.assertIsInstance(transport.getHandle(), SSL.Connection)
        self.assertIsNone(transport.getPeerCertificate())  # the client sent none
        # all of it from the transport's class, nothing set on the object itself
        for name in ("TLS", "getHandle", "getPeerCertificate", "__provides__"):
            self.assertNotIn(name, vars(transport), name)
        layer = transport.protocol
        self.assertIs(layer.wrappedProtocol, server)
        for interface in (ISSLTransport, ITCPTransport):
            self.assertTrue(interface.providedBy(layer), interface)
        client.transport.loseConnection()
        yield server.lost

    @defer.inlineCallbacks
    def test_connections_of_a_context_that_keeps_factories_share_one(self):
        """ServerTLS keeps ``tls_layer_factories``: every connection's layer has the same
        factory, which forgets each layer when its connection goes."""
        path = Path(self.mktemp())
        cert, key = path.with_suffix(".crt"), path.with_suffix(".key")
        make_self_signed(cert, key, ["localhost"])
        context = server_context_factory(cert, key)
        context.tls_layer_factories = {}
        servers = [_Server(context), _Server(context)]
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(lambda: servers.pop(0)),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        connected = list(servers)
        clients = []
        for _ in connected:
            client = yield protocol.ClientCreator(reactor, _Client).connectTCP(
                "127.0.0.1", port.getHost().port)
            client.transport.write(b"tls")
            yield client.wait()
            client.received = b""
            client.transport.startTLS(ssl.CertificateOptions())
            yield client.wait()
            self.assertEqual(client.received, b"encrypted hello")
            clients.append(client)
        layers = [server.transport.protocol for server in connected]
        factory = layers[0].factory
        self.assertIs(layers[1].factory, factory)
        self.assertEqual(context.tls_layer_factories, {False: factory})
        self.assertEqual(set(factory.protocols), set(layers))
        clients[0].transport.loseConnection()
        yield connected[0].lost
        self.assertEqual(set(factory.protocols), {layers[1]})
        clients[1].received = b""
        clients[1].transport.write(b"still")
        yield clients[1].wait()
        self.assertEqual(clients[1].received, b"STILL")
        clients[1].transport.loseConnection()
        yield connected[1].lost
        self.assertEqual(factory.protocols, {})
