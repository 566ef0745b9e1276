# -*- test-case-name: tests.unit.test_http_server -*-
"""One twisted.web server for every plugin, configured by ``[http]``.

Plugins mount a resource under one path segment (``ctx.http_resource("upload", resource)``:
``/upload/...``); the mount goes when the plugin stops. The server listens only once
something is mounted, on the ``[http] listen`` (plain) and ``https`` (with the ``[tls]``
certificate) endpoints, so a server whose plugins serve nothing over HTTP opens no port.
One address holds at most ``[http] max_connections_per_ip`` connections at once (a
``ConnectionGate`` of xmppd.limits, counted from accept to close, WebSockets included, and
refused before any TLS handshake; trusted proxies and ``[limits] exempt`` are not capped),
and a connection idle for ``idle_timeout`` between requests is closed (twisted.web stops
that timer while a request is answered, so a held BOSH request is not cut, and a WebSocket
takes the connection over from a request that never ends).
A mount made while the server runs (a plugin loaded later) starts the listeners then; they
stay open (answering 404) when the last mount goes, until the server stops.

``url(host, path)`` is the address clients are told: ``[http] external_url`` when a proxy
is in front, else ``https://HOST:PORT`` of the first HTTPS listener (``http://`` of the first
plain one without any). There is no access log: URLs and headers can carry tokens.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Iterable
from urllib.parse import unquote_to_bytes

from twisted.internet import defer
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import pages, resource, server

from xmppd.limits.gate import ConnectionGate
from xmppd.logs import get_logger
from xmppd.stream.listen import DEFAULT_BACKLOG, listen

log = get_logger(__name__)

SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*|\.well-known")  # RFC 8615
_PORT = re.compile(r"^(?:tcp6?|ssl):(?:port=)?(\d+)(?::|$)")


class MountTable(resource.Resource):
    """The root: ``/NAME/...`` goes to what is mounted as NAME, anything else is a 404."""

    def __init__(self) -> None:
        super().__init__()
        self.mounts: dict[bytes, resource.Resource] = {}

    def getChild(self, path: bytes, request) -> resource.Resource:  # noqa: N802 (Twisted's name)
        found = self.mounts.get(path)
        return found if found is not None else pages.notFound()

    def render(self, request) -> bytes:
        return pages.notFound().render(request)


class BoundedRequest(server.Request):
    """A request whose body may not exceed the bound of the mount its path names (none:
    no body): refused with 413 as soon as the headers announce more (or a chunked body
    grows past it), before the body is read to a file. Not the largest bound of all the
    mounts: upload's file size would let anyone make BOSH read that much into memory."""

    too_large = False
    max_body = 0

    def gotLength(self, length) -> None:  # noqa: N802 (Twisted's name)
        super().gotLength(length)
        self.max_body = self.channel.site.body_bound(getattr(self.channel, "_path", None))
        if length is not None and length > self.max_body:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        if self.too_large:
            return
        if self.content.tell() + len(data) > self.max_body:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version) -> None:  # noqa: N802
        if not self.too_large:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self.too_large = True
        self.channel.transport.write(b"HTTP/1.1 413 Content Too Large\r\n"
                                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        self.channel.loseConnection()


class QuietSite(server.Site):
    """A Site without the access log (an upload URL or header can hold a token), and with
    a bound on request bodies: the largest any mount asked for."""

    requestFactory = BoundedRequest
    max_body = 0
    bodies: dict[bytes, int] = {}  # each mount's bound, by its path segment

    def log(self, request) -> None:
        pass

    def body_bound(self, path: bytes | None) -> int:
        """The body bound of the mount that the request line's ``path`` names, its first
        segment unquoted as twisted.web does before it finds the resource (0: no mount);
        the largest of all when the path is unknown (not HTTP/1.x)."""
        if path is None:
            return self.max_body
        segment = unquote_to_bytes(path.split(b"?", 1)[0][1:].split(b"/", 1)[0])
        return self.bodies.get(segment, 0)


class GatedFactory(WrappingFactory):
    """Counts each connection at ``gate`` from accept to close, outside any TLS (a refused
    one costs no handshake). The wrapper stays the TCP side's protocol when a WebSocket
    takes the connection over from twisted.web, so its close is still counted."""

    def __init__(self, wrapped, gate: ConnectionGate, reactor) -> None:
        super().__init__(wrapped)
        self.gate = gate
        self.reactor = reactor

    def buildProtocol(self, addr):  # noqa: N802 (Twisted's name)
        host = getattr(addr, "host", "")
        reason = self.gate.enter(host)
        if reason is not None:
            self.gate.note_refusal(host, reason, self.reactor.seconds())
            return None  # the port closes it
        protocol = super().buildProtocol(addr)
        if protocol is None:
            self.gate.leave(host)
        else:
            protocol.gated_host = host
        return protocol

    def unregisterProtocol(self, protocol) -> None:  # noqa: N802
        super().unregisterProtocol(protocol)
        self.gate.leave(protocol.gated_host)


class HttpServer:
    """The mounts and the listeners; started and stopped by the service tree."""

    def __init__(self, config, reactor, backlog: int = DEFAULT_BACKLOG,
                 exempt: Iterable = ()) -> None:
        self.config = config
        self.reactor = reactor
        self.backlog = backlog
        self.root = MountTable()
        self.site = QuietSite(self.root, reactor=reactor, timeout=config.idle_timeout)
        self.gate = ConnectionGate(  # no total of its own: the per-address cap is the point
            "http", config.max_connections_per_ip, sys.maxsize,
            (*exempt, *(ipaddress.ip_network(ip) for ip in config.trusted_proxies)),
            what="HTTP connections")
        self.ports: list = []
        self._bodies: dict[bytes, int] = {}  # each mount's largest request body
        self._tls_context = None
        self._started = False
        self._listening: defer.Deferred | None = None

    # -- mounts

    def mount(self, path: str, web_resource: resource.Resource,
              max_body: int = 0) -> Callable[[], None]:
        """Serve ``web_resource`` at ``/path/``, taking request bodies of up to
        ``max_body`` bytes; returns the function that unmounts it."""
        if not isinstance(path, str) or not SEGMENT.fullmatch(path):
            raise ValueError(f"an HTTP mount is one path segment such as 'upload' "
                             f"(or '.well-known'), not {path!r}")
        key = path.encode("ascii")
        if key in self.root.mounts:
            raise ValueError(f"/{path}/ is already served here")
        self.root.mounts[key] = web_resource
        self._bodies[key] = max_body
        self.site.bodies = self._bodies
        self.site.max_body = max(self._bodies.values())
        if self._started:
            self._listen()

        def unmount() -> None:
            if self.root.mounts.get(key) is web_resource:
                del self.root.mounts[key]
                del self._bodies[key]
                self.site.max_body = max(self._bodies.values(), default=0)

        return unmount

    def url(self, host: str, path: str) -> str:
        """The URL clients use for ``path`` (no leading slash) on our domain ``host``."""
        base = self.config.external_url
        if base is None:
            for scheme, listeners in (("https", self.config.https), ("http", self.config.listen)):
                if listeners:
                    port = listener_port(listeners[0])
                    default = port is None or (scheme, port) in (("https", 443), ("http", 80))
                    base = f"{scheme}://{host}" + ("" if default else f":{port}")
                    break
            else:
                raise ValueError("[http] has no listener: set listen, https or external_url")
        return f"{base}/{path}"

    # -- life

    def start(self, tls_context) -> defer.Deferred:
        """Listen if anything is mounted (a failure fails the server's start); a later
        mount listens then."""
        self._tls_context = tls_context
        self._started = True
        if not self.root.mounts:
            return defer.succeed(None)
        self._listening = defer.ensureDeferred(self._open_ports())
        return self._listening

    def _listen(self) -> None:
        if self._listening is None:
            self._listening = defer.ensureDeferred(self._open_ports())
            self._listening.addErrback(
                lambda failure: log.failure("the web server could not listen", failure))

    async def _open_ports(self) -> None:
        listeners = [(d, GatedFactory(self.site, self.gate, self.reactor))
                     for d in self.config.listen]
        if self.config.https:
            https = TLSMemoryBIOFactory(self._tls_context, False, self.site)
            listeners += [(d, GatedFactory(https, self.gate, self.reactor))
                          for d in self.config.https]
        for description, factory in listeners:
            port = await listen(self.reactor, description, factory, self.backlog)
            self.ports.append(port)

    @defer.inlineCallbacks
    def stop(self):
        self._started = False
        while self.ports:
            yield defer.maybeDeferred(self.ports.pop().stopListening)
        self._listening = None


def listener_port(description: str) -> int | None:
    """The port of a ``tcp:PORT:...`` endpoint string, None for other kinds."""
    match = _PORT.match(description)
    return int(match.group(1)) if match else None
