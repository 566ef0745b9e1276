"""STARTTLS on a TCP connection, as Twisted's own ``startTLS`` does it, one cost less.

Twisted's TLS layer copies the interfaces of the transport it wraps onto itself with one
``directlyProvides`` per interface, each replacing the declaration the one before made (so
only the last one stays) after walking the transport's whole interface tree: about 5% of the
server's CPU for a login over STARTTLS (py-spy, ``make bench``). Nothing in xmppd asks the
TLS layer for those interfaces; here it gets all of them in one declaration (zope keeps it),
the list read once per transport class. Everything else is as in Twisted's startTLS
(twisted.internet._newtls) and TLSMemoryBIOProtocol.makeConnection.
"""

from __future__ import annotations

from twisted.internet._newtls import _BypassTLS
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import directlyProvides, providedBy

_INTERFACES: dict[type, tuple] = {}  # transport class -> the interfaces its TLS layer gets


class _TLSLayer(TLSMemoryBIOProtocol):
    """Twisted's TLS protocol with the transport's interfaces declared at once."""

    def makeConnection(self, transport) -> None:
        self._tlsConnection = self.factory._creatorCallable(self)
        self._appSendBuffer = []
        directlyProvides(self, *_interfaces(transport))
        # The rest as TLSMemoryBIOProtocol.makeConnection.
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        if self._connectWrapped:
            ProtocolWrapper.makeConnection(self, transport)
        self._checkHandshakeStatus()


class _Factory(TLSMemoryBIOFactory):
    protocol = _TLSLayer


def _interfaces(transport) -> tuple:
    """What ``transport`` (a _BypassTLS: it passes everything on to the connection under it)
    provides, kept per connection class (a reactor's TCP connection provides its class's
    interfaces and the ISSLTransport that start_tls gives each)."""
    key = type(getattr(transport, "_connection", transport))
    interfaces = _INTERFACES.get(key)
    if interfaces is None:
        interfaces = _INTERFACES[key] = tuple(providedBy(transport))
    return interfaces


def start_tls(transport, context) -> None:
    """``transport.startTLS(context)`` for a TCP connection of the reactor's (one with
    ``_tlsClientDefault``); any other transport's own startTLS."""
    if not hasattr(transport, "_tlsClientDefault") or getattr(transport, "TLS", True):
        transport.startTLS(context)
        return
    client = transport._tlsClientDefault
    producer, streaming = None, None
    if transport.producer is not None:
        producer, streaming = transport.producer, transport.streamingProducer
        transport.unregisterProducer()
    factory = _Factory(context, client, None)
    layer = factory.protocol(factory, transport.protocol, False)
    transport.protocol = layer
    transport.getHandle = layer.getHandle
    transport.getPeerCertificate = layer.getPeerCertificate
    directlyProvides(transport, ISSLTransport)
    transport.TLS = True
    layer.makeConnection(_BypassTLS(FileDescriptor, transport))
    if producer:
        transport.registerProducer(producer, streaming)
