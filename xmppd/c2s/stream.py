"""Client-to-server streams (RFC 6120): header checks, STARTTLS, SASL, bind, then stanzas.

The negotiation is a short ladder: ``tls`` (until encrypted, when required) ▸ ``auth`` ▸
``bind`` ▸ ``ready``. Only in ``ready`` do stanzas reach the router, through the session's
IN filters if it has any. Top-level elements that are not stanzas go to the plugin that
claimed them (xmppd.c2s.hooks) or end the stream. A bound session usually ends with its
stream; when the connection is lost, a plugin may keep it for a later stream instead.
"""

from __future__ import annotations

from twisted.internet.protocol import Factory
from twisted.words.xish import domish

from xmppd import events, ns
from xmppd.c2s.hooks import BOUND, ClientHooks, describe_end
from xmppd.c2s.sasl_exchange import SaslExchange
from xmppd.c2s.sessions import ClientSession
from xmppd.errors import StanzaError, StreamError
from xmppd.jid import InvalidJID, domain_or_none, jid_from_parts, parse_jid, prepare_resource
from xmppd.limits.guard import guard_for
from xmppd.limits.stanzas import shape_stanza, stream_limits_feature
from xmppd.logs import get_logger
from xmppd.sasl2 import SASL2
from xmppd.stanza import make_iq_result
from xmppd.stream.version import answer_version
from xmppd.stream.xmlstream import CONNECTION_LOST, XmlStream
from xmppd.xml import StreamHeader

log = get_logger(__name__)

STANZA_NAMES = frozenset(("iq", "message", "presence"))
SASL_NAMESPACES = frozenset((ns.SASL, SASL2))  # RFC 6120 SASL and XEP-0388 SASL2


class ClientStream(XmlStream):
    content_ns = ns.CLIENT

    def __init__(self, server, tls_context, direct_tls: bool = False) -> None:
        c2s = server.config.c2s
        super().__init__(server.reactor, server.config.server.max_stanza_size)
        self.server = server
        self.tls_context = tls_context
        self.secure = direct_tls
        self.domain: str | None = None
        self.account = None  # bare JID once SASL succeeded
        self.mechanism: str | None = None
        self.claimed_from: str | None = None  # the header's 'from' before auth (XEP-0388 §5)
        self.session: ClientSession | None = None
        self.sasl: SaslExchange | None = SaslExchange(self, server.auth,
                                                      list(c2s.sasl_mechanisms),
                                                      c2s.require_encryption, server.sasl2)
        self.guard = guard_for(server, self, "c2s")  # connection caps, shapers (xmppd.limits)
        self._auth_timer = None

    @property
    def hooks(self) -> ClientHooks:
        """The server's session hooks; looked up when needed (at bind, on a claimed element,
        at the end), never on the stanza path."""
        return self.server.c2s_hooks

    @property
    def require_encryption(self) -> bool:
        """[c2s] require_encryption (read from the config: one attribute less per stream)."""
        return self.server.config.c2s.require_encryption

    @property
    def state(self) -> str:
        if self.session is not None and self.session.jid is not None:
            return "ready"
        if self.account is not None:
            return "bind"
        return "auth"

    # -- XmlStream hooks

    def connectionMade(self) -> None:
        super().connectionMade()
        self.server.c2s_streams.add(self)
        timeout = self.server.config.c2s.auth_timeout
        self._auth_timer = self.reactor.callLater(timeout, self._auth_timed_out)

    def default_from(self) -> str | None:
        return self.domain or next(iter(sorted(self.server.domains)))

    def header_received(self, header: StreamHeader) -> None:
        requested = header.attributes.get("to")
        domain = domain_or_none(requested)
        if domain is None or domain not in self.server.domains:
            raise StreamError("host-unknown", f"this server does not serve {requested!r}")
        if self.domain is not None and domain != self.domain:
            raise StreamError("host-unknown", "the domain changed across a stream restart")
        self.domain = domain
        version = answer_version(header.attributes.get("version"))
        if not version.supported:
            self.send_header(self.domain, version=version.header)
            raise StreamError("unsupported-version", "only XMPP 1.x streams are supported")
        client = header.attributes.get("from") if self.account is None else None
        self.claimed_from = client
        self.send_header(self.domain, to=client if client and _is_plausible_jid(client) else None)
        self.send(self._features())

    def _features(self) -> domish.Element:
        features = self._negotiation_features()
        if self.secure:  # XEP-0478, last; nothing about us before TLS
            features.addChild(stream_limits_feature(self, self._idle_seconds()))
        return features

    def _idle_seconds(self) -> float:
        """What XEP-0478's idle-seconds promises: before authentication the negotiation's
        deadline (it cuts a silent client); after, the silence before a ping (0: none)."""
        if self.account is None:
            return self.server.config.c2s.auth_timeout
        return self.guard.limits.config.ping_after if self.guard is not None else 0.0

    def _negotiation_features(self) -> domish.Element:
        features = domish.Element((ns.STREAMS, "features"))
        if self.account is not None:
            features.addElement((ns.BIND, "bind"))
            features.addElement((ns.SESSION, "session")).addElement("optional")
            for build in self.server.stream_features:
                feature = build(self)
                if feature is not None:
                    features.addChild(feature)
            return features
        if not self.secure and self.tls_context is not None:
            starttls = features.addElement((ns.TLS, "starttls"))
            if self.require_encryption:
                starttls.addElement("required")
        for feature in self.sasl.features():
            features.addChild(feature)
        if self.secure:
            for feature in self.hooks.pre_auth_features(self):
                features.addChild(feature)
        return features

    def element_received(self, element: domish.Element):
        state = self.state
        if state == "ready":
            return self._stanza(element)
        elif element.uri == ns.TLS and self.account is None:
            self._starttls(element)
        elif element.uri in SASL_NAMESPACES and self.account is None:
            self.sasl.handle(element)
        elif (state == "auth" and self.secure
              and (handler := self.hooks.claimed_before_auth(element)) is not None):
            return handler(element, self)  # e.g. XEP-0077 registration, when a plugin asks
        elif state == "bind" and element.name == "iq" and element.uri == ns.CLIENT:
            self._pre_session_iq(element)
        elif state == "bind" and (handler := self.hooks.claimed(element, state)) is not None:
            return handler(element, self)
        else:
            raise StreamError("not-authorized", "authenticate and bind a resource first")

    def stream_ending(self) -> None:
        if self.session is not None and self.session.jid is not None:
            self._end_session(polite=True)

    def stream_closed(self, polite: bool) -> None:
        self._cancel_auth_timer()
        self.server.c2s_streams.discard(self)
        session = self.session
        if session is None or session.jid is None:
            return
        if not polite and self.end_reason == CONNECTION_LOST and self.hooks.keep(session):
            self.session = None  # kept: it no longer ends with this stream
            return
        self._end_session(polite)

    # -- negotiation steps

    def _starttls(self, element: domish.Element) -> None:
        if element.name != "starttls" or self.secure or self.tls_context is None:
            self.send(domish.Element((ns.TLS, "failure")))
            self.close_stream()
            return
        self.send(domish.Element((ns.TLS, "proceed")))
        self.start_tls(self.tls_context)
        self.secure = True
        self.restart()

    def authenticated(self, localpart: str, mechanism: str, restart: bool = True) -> None:
        """SASL succeeded: the stream restarts (SASL2: it does not) and the account may bind
        a resource."""
        self.account = jid_from_parts(localpart, self.domain, None)
        self.mechanism = mechanism
        if self.guard is not None:  # no longer counted at the gate; back-off forgotten
            self.guard.authenticated(self.account.userhost())
        self.sasl = None  # done with: its state is memory every idle session would keep
        log.info("{account} authenticated with {mechanism} from {peer}", account=self.account,
                 mechanism=mechanism, peer=self.peer_address)
        if restart:
            self.restart()

    def send_features(self) -> None:
        """The features of the stream as it is now (after SASL2, which has no restart)."""
        self.send(self._features())

    def _pre_session_iq(self, element: domish.Element) -> None:
        payload = next(element.elements(), None)
        if payload is not None and (payload.uri, payload.name) == (ns.SESSION, "session"):
            self.send(make_iq_result(element))  # RFC 3921 session: accepted, nothing to do
            return
        if payload is None or (payload.uri, payload.name) != (ns.BIND, "bind"):
            raise StreamError("not-authorized", "bind a resource first")
        if element.getAttribute("type") != "set":
            self.send(StanzaError("bad-request").to_response(element))
            return
        try:
            full_jid = self._bind(payload)
        except StanzaError as error:
            self.send(error.to_response(element))
            return
        result = domish.Element((ns.BIND, "bind"))
        result.addElement("jid", content=full_jid.full())
        self.send(make_iq_result(element, result))
        self.session_bound()
        self.announce_session()

    def _bind(self, bind: domish.Element):
        requested = None
        for child in bind.elements():
            if child.name == "resource":
                try:
                    requested = prepare_resource(str(child))
                except (InvalidJID, ValueError):
                    raise StanzaError("bad-request", "invalid resource") from None
        return self.bind_resource(requested)

    def bind_resource(self, requested: str | None):
        """A session for this stream with ``requested`` (a prepared resource) or another
        (the registry's policy); StanzaError when the account has too many."""
        session = ClientSession(self, self.account)
        full_jid = self.server.sessions.bind(session, requested)
        self.session = session
        return full_jid

    def session_bound(self) -> None:
        """The bound session starts: no auth deadline now, and the plugins' filters."""
        self._cancel_auth_timer()
        self.session.bound_at = self.reactor.seconds()
        self.hooks.session_bound(self.session)

    def announce_session(self) -> None:
        """SESSION_BOUND, once the client has been told its JID."""
        self.server.emit(events.SESSION_BOUND, self.session)

    # -- the bound session

    def _stanza(self, element: domish.Element):
        if element.name not in STANZA_NAMES or element.uri != ns.CLIENT:
            handler = self.hooks.claimed(element, BOUND)
            if handler is None:
                raise StreamError("unsupported-stanza-type", f"unknown element {element.name}")
            return handler(element, self)
        if self.guard is not None:  # stanza rate, subscription budget (xmppd.limits.stanzas)
            return shape_stanza(self, element, self._into_session)
        return self._into_session(element)

    def _into_session(self, element: domish.Element):
        """A stanza within the limits: the session's IN filters, then handle_stanza."""
        inbound = self.session.inbound
        if inbound is not None:
            return inbound(element)  # the session's IN filters, then handle_stanza
        return self.handle_stanza(element)

    def handle_stanza(self, element: domish.Element):
        """A stanza from the bound client, past its filters: answered here or routed."""
        if element.name == "iq" and element.getAttribute("id"):  # no id: the router's
            payload = next(element.elements(), None)  # bad-request (RFC 6120 §8.1.3)
            if payload is not None and payload.uri == ns.SESSION:
                self.session.send(make_iq_result(element))
                return None
            if payload is not None and payload.uri == ns.BIND:
                self.session.send(
                    StanzaError("not-allowed", "already bound").to_response(element))
                return None
        return self.server.router.route_from_client(element, self.session)

    def _end_session(self, polite: bool) -> None:
        session, self.session = self.session, None
        self.hooks.session_ended(session, describe_end(self.end_reason), polite)

    # -- a session moving between streams (xmppd.c2s.hooks.ClientHooks.attach)

    def take_over(self, session: ClientSession) -> None:
        """Carry on ``session`` (bound on an earlier stream) here, as if bound here."""
        self.session = session
        session.stream = self
        self._cancel_auth_timer()

    def release(self, session: ClientSession) -> None:
        """``session`` moved to another stream: its end is no longer this stream's."""
        if self.session is session:
            self.session = None

    # -- timers

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        self.fail(StreamError("connection-timeout", "authentication took too long"))

    def _cancel_auth_timer(self) -> None:
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None


class ClientStreamFactory(Factory):
    def __init__(self, server, tls_context, direct_tls: bool = False) -> None:
        self.server = server
        self.tls_context = tls_context
        self.direct_tls = direct_tls

    def buildProtocol(self, addr) -> ClientStream:
        stream = ClientStream(self.server, self.tls_context, self.direct_tls)
        stream.factory = self
        return stream


def _is_plausible_jid(value: str) -> bool:
    try:
        parse_jid(value)
    except (InvalidJID, ValueError):
        return False
    return True
