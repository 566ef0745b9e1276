"""STARTTLS on a TCP connection, as Twisted's own ``startTLS`` does it, one cost less.

Twisted's TLS layer copies the interfaces of the transport it wraps onto itself with one
``directlyProvides`` per interface, each replacing the declaration the one before made (so
only the last one stays) after walking the transport's whole interface tree: about 5% of the
server's CPU for a login over STARTTLS (py-spy, ``make bench``). Nothing in xmppd asks the
TLS layer for those interfaces; here it gets all of them in one declaration (zope keeps it),
the list read once per transport class. Everything else is as in Twisted's startTLS
(twisted.internet._newtls) and TLSMemoryBIOProtocol.makeConnection.

What a TLS connection keeps is kept per class where it can be, not per connection (an idle
client session is mostly what its connection holds; ``make bench``'s memory workload):
Twisted's startTLS sets ``TLS``, ``getHandle``, ``getPeerCertificate`` and the interface
declaration on the TCP transport object itself (two bound methods, and a resize of its full
instance dict: about 1 KiB); here the transport's class becomes a subclass that has them,
made once per transport class, as xmppd.stream.eager does. The TLS layer's interfaces are
its class's too, and a context factory that keeps ``tls_layer_factories`` (ServerTLS) gives
every connection the same layer factory instead of a new one each (0.7 KiB).
"""

from __future__ import annotations

from twisted.internet._newtls import _BypassTLS
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import classImplements, providedBy

_LAYERS: dict[type, type] = {}  # transport class -> its TLS layer's class
_TRANSPORTS: dict[type, type] = {}  # transport class -> the class it has once TLS is on


class _TLSLayer(TLSMemoryBIOProtocol):
    """Twisted's TLS protocol; its subclass per transport class (``_layer_class``) declares
    the interfaces of the transport it wraps."""

    def makeConnection(self, transport) -> None:
        self._tlsConnection = self.factory._creatorCallable(self)
        self._appSendBuffer = []
        # The rest as TLSMemoryBIOProtocol.makeConnection.
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        if self._connectWrapped:
            ProtocolWrapper.makeConnection(self, transport)
        self._checkHandshakeStatus()


class _Factory(TLSMemoryBIOFactory):
    protocol = _TLSLayer


class _TLSTransport:
    """Mixed into a TCP transport's class once TLS is on: what Twisted's startTLS sets on
    each transport object (the layer is the transport's protocol from then on)."""

    TLS = True

    def getHandle(self):
        return self.protocol.getHandle()

    def getPeerCertificate(self):
        return self.protocol.getPeerCertificate()


def _transport_class(cls: type) -> type:
    """``cls`` with TLS on (a subclass providing ISSLTransport), made once per class."""
    tls_class = _TRANSPORTS.get(cls)
    if tls_class is None:
        tls_class = type(f"{cls.__name__}WithTLS", (_TLSTransport, cls), {})
        classImplements(tls_class, ISSLTransport)
        _TRANSPORTS[cls] = tls_class
    return tls_class


def _layer_class(bypass: _BypassTLS) -> type:
    """The TLS layer class that provides what the transport under ``bypass`` (which passes
    everything on to it) provides, made once per transport class."""
    key = type(bypass._connection)
    layer_class = _LAYERS.get(key)
    if layer_class is None:
        layer_class = type(f"_TLSLayerOver{key.__name__}", (_TLSLayer,), {})
        classImplements(layer_class, *providedBy(bypass))
        _LAYERS[key] = layer_class
    return layer_class


def _layer_factory(context, client: bool) -> _Factory:
    """The factory of a new TLS layer: the context's own when it keeps them (a dict
    ``tls_layer_factories``, as ServerTLS does), else a new one."""
    kept = getattr(context, "tls_layer_factories", None)
    if kept is None:
        return _Factory(context, client, None)
    factory = kept.get(client)
    if factory is None:
        factory = kept[client] = _Factory(context, client, None)
    return factory


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
    factory = _layer_factory(context, client)
    transport.__class__ = _transport_class(type(transport))
    bypass = _BypassTLS(FileDescriptor, transport)
    layer = _layer_class(bypass)(factory, transport.protocol, False)
    transport.protocol = layer
    layer.makeConnection(bypass)
    if producer:
        transport.registerProducer(producer, streaming)
