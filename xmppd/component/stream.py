# -*- test-case-name: tests.unit.test_component_stream -*-
"""XEP-0114 external components: the accept stream, its handshake, and the component's
domain served through the services table (xmppd.services) while it is connected.

A component opens a stream to the domain it runs (``[components.secrets]``: domain →
secret; another is ``host-unknown``), answers our stream id with
``<handshake>hex(SHA-1(id + secret))</handshake>`` (checked in constant time; a wrong one is
``not-authorized``, logged without the digest), and is then one of our domains: stanzas to
it, from our clients, other services or federation, are written to its stream. A second
connection for a domain that is connected is ``conflict``. What it sends must come from its
own domain (``anyone@domain/…``; another is ``invalid-from``) and name a recipient (else
``improper-addressing``); it is routed like a stanza of ours.

The stream itself is the shared XmlStream: parse, limits, stream errors, polite close. Its
limits are the s2s class's (xmppd.limits): until its handshake a connection counts at the
listener's gate (``[limits.s2s] unauthenticated_per_ip``), and its output is bounded.
Failed handshakes are counted per address, per domain and per pair, and a handshake is only
checked once the back-off of the recent failures has passed (``[limits] auth_delay``,
``auth_max_delay``, ``auth_window``; xmppd.limits.auth): a secret cannot be guessed at line
rate. Connections that wait at once are checked together when the back-off ends, so many of
them get at most one guess each per ``auth_max_delay``, and how many may wait is the gate's
cap; a correct handshake waits at most that long too, so a guesser cannot lock the
component out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

from twisted.internet import defer, task
from twisted.internet.protocol import Factory
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError, StreamError
from xmppd.jid import InvalidJID, prepare_domain
from xmppd.limits.auth import AuthThrottle
from xmppd.limits.guard import guard_for
from xmppd.logs import get_logger
from xmppd.stanza import KINDS, Stanza, check_type, parse_address
from xmppd.stream.xmlstream import XmlStream
from xmppd.xml import StreamHeader

log = get_logger(__name__)

COMPONENT_ACCEPT = "jabber:component:accept"


def handshake_digest(stream_id: str, secret: str) -> str:
    """XEP-0114 §3: the lower-case hex SHA-1 of the stream id and the secret."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


class ComponentStream(XmlStream):
    content_ns = COMPONENT_ACCEPT
    listener = "component"  # its own gate for connections before the handshake

    def __init__(self, factory: ComponentFactory) -> None:
        super().__init__(factory.reactor, factory.max_stanza_size)
        self.factory = factory
        # before its handshake a connection is anyone's: the s2s class's caps and shapers
        self.guard = guard_for(factory.server, self, "s2s")
        self.domain: str | None = None  # the domain the header asked for
        self.authenticated = False
        self._remove_service: Callable[[], None] | None = None
        self._timer = None

    # -- life

    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.streams.add(self)
        self._timer = self.reactor.callLater(self.factory.auth_timeout, self._auth_timeout)

    def _auth_timeout(self) -> None:
        if not self.authenticated:
            self.fail(StreamError("connection-timeout", "no handshake in time"))

    def stream_closed(self, polite: bool) -> None:
        self.factory.streams.discard(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._remove_service is not None:
            self._remove_service()
            self._remove_service = None
            log.info("component {domain} disconnected ({why})", domain=self.domain,
                     why=self.end_reason)

    def default_from(self) -> str | None:
        return self.domain

    # -- the handshake

    def header_received(self, header: StreamHeader) -> None:
        to = header.attributes.get("to")
        try:
            domain = prepare_domain(to) if to else None
        except InvalidJID:
            domain = None
        if domain is None or domain not in self.factory.secrets:
            raise StreamError("host-unknown", f"no component is configured for {to!r}")
        self.domain = domain
        if domain in self.factory.served:
            raise StreamError("conflict", f"{domain} is already connected or served here")
        self.send_header(domain, version=None)  # XEP-0114 streams have no version

    def element_received(self, element: domish.Element):
        if self.authenticated:
            return self._stanza(element)
        if element.uri == COMPONENT_ACCEPT and element.name == "handshake":
            return self._handshake(str(element).strip())
        raise StreamError("not-authorized", "complete the handshake before sending stanzas")

    def _handshake(self, digest: str) -> defer.Deferred | None:
        """Check the handshake now, or once the back-off of recent failures from this address
        or for this domain has passed (xmppd.limits.auth); meanwhile the stream reads nothing
        and what follows waits in order (XmlStream)."""
        throttle = self._throttle()
        wait = throttle.wait(self.guard.ip, self.domain) if throttle is not None else 0.0
        if wait <= 0:
            self._check(digest)
            return None
        # at most half the deadline: a component that answers at once is checked in time,
        # whatever auth_max_delay says, so a guesser can slow it but never lock it out
        wait = min(wait, self.factory.auth_timeout / 2)
        return task.deferLater(self.reactor, wait, self._check_later, digest)

    def _check_later(self, digest: str) -> None:
        if not (self.disconnected or self.close_sent):
            self.handle_input(self._check, digest)  # its stream error ends the stream

    def _throttle(self) -> AuthThrottle | None:
        """The component handshakes' back-off (None for streams without limits)."""
        return self.guard.limits.handshakes if self.guard is not None else None

    def _check(self, digest: str) -> None:
        expected = handshake_digest(self.stream_id, self.factory.secrets[self.domain])
        throttle = self._throttle()
        if not hmac.compare_digest(digest.lower().encode("utf-8", "replace"),
                                   expected.encode("ascii")):
            if throttle is not None:
                throttle.failed(self.guard.ip, self.domain)
            # logged by XmlStream.fail with the domain and the peer, never the digest
            raise StreamError("not-authorized", "wrong handshake for " + self.domain)
        if throttle is not None:
            throttle.succeeded(self.guard.ip, self.domain)  # the domain starts afresh
        try:
            self._remove_service = self.factory.add_service(self.domain, self._deliver)
        except ValueError:  # connected on another stream since our header
            raise StreamError("conflict", f"{self.domain} is already connected") from None
        self.authenticated = True
        self._timer.cancel()
        if self.guard is not None:
            self.guard.authenticated()  # it leaves the gate
        self.send(domish.Element((COMPONENT_ACCEPT, "handshake")))
        log.info("component {domain} connected from {peer}", domain=self.domain,
                 peer=self.peer_address)

    # -- stanzas

    def _deliver(self, stanza: Stanza, origin) -> None:
        """The service's handler: everything for the component's domain is written here."""
        self.send(stanza.element)

    def _stanza(self, element: domish.Element):
        if element.name not in KINDS or element.uri != COMPONENT_ACCEPT:
            raise StreamError("unsupported-stanza-type", f"<{element.name}/> is no stanza")
        if not element.hasAttribute("from") or not element.hasAttribute("to"):
            raise StreamError("improper-addressing", "a component's stanzas need from and to")
        try:
            sender = parse_address(element, "from")
        except StanzaError:
            raise StreamError("invalid-from", "a malformed 'from'") from None
        if sender.host != self.domain:
            raise StreamError("invalid-from", f"this stream speaks for {self.domain} only")
        as_server_stanza(element)
        try:
            stanza = Stanza(element, sender, parse_address(element, "to"))
            check_type(stanza)
        except StanzaError as error:
            if element.getAttribute("type") != "error":
                self.send(error.to_response(element))
            return None
        return self.factory.route(stanza, self)


def as_server_stanza(element: domish.Element) -> None:
    """Move a component's stanza into jabber:server, the namespace the rest of the server
    knows for stanzas that did not come from a client (message bodies, errors, ...); our
    serializer writes it back in each stream's own content namespace."""
    if element.uri == COMPONENT_ACCEPT:
        element.uri = ns.SERVER
    if element.defaultUri == COMPONENT_ACCEPT:
        element.defaultUri = ns.SERVER
    for child in element.elements():
        as_server_stanza(child)


class ComponentFactory(Factory):
    """The listener's factory: the configured secrets and the server parts a component
    stream uses (the services table and the router)."""

    def __init__(self, server, secrets: Mapping[str, str]) -> None:
        self.server = server  # for the limits (xmppd.limits.guard)
        self.reactor = server.reactor
        self.max_stanza_size = server.config.server.max_stanza_size
        self.auth_timeout = server.config.c2s.auth_timeout
        self.secrets = secrets
        self.served = server.router.served
        self.route = server.router.route
        self._services = server.services
        self.streams: set[ComponentStream] = set()  # for shutdown

    def add_service(self, domain: str, handler: Callable) -> Callable[[], None]:
        _service, remove = self._services.add(domain, handler)
        return remove

    def buildProtocol(self, addr) -> ComponentStream:  # noqa: N802 (Twisted's name)
        stream = ComponentStream(self)
        stream.factory = self
        return stream
