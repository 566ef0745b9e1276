# -*- test-case-name: tests.unit.test_proxy65 -*-
"""XEP-0065 SOCKS5 bytestreams proxy on ``proxy.DOMAIN``: file transfer between clients that
cannot reach each other (both behind NAT).

The service answers disco (identity proxy/bytestreams), the streamhost request (``<query/>``
get: the ``host`` and ``port`` clients connect to) and the requester's ``<activate/>``; the
SOCKS5 listener (bound to ``bind``:``port``) pairs the two connections of a stream and relays
their bytes (xmppd.proxy65). Only this server's accounts may use it (forbidden otherwise);
the requester's transfers count against its limits: ``max_transfers`` at once and
``max_rate`` bytes per second over all of them (0: no cap). A connection not activated
within ``timeout`` seconds is closed.

Off by default: it needs an address and a port that clients outside can reach (``host``
has no safe default: the machine's name is often not what NAT-ed clients can connect to)
and a firewall opening, and it carries other people's traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTCP
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.errors import StanzaError
from xmppd.interfaces import IXmppdPlugin
from xmppd.jid import InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.proxy65 import Broker, Socks5Factory
from xmppd.proxy65.broker import Limits
from xmppd.stanza import Stanza

log = get_logger(__name__)

NS_BYTESTREAMS = "http://jabber.org/protocol/bytestreams"
MAX_SID = 256


@dataclass(frozen=True)
class Proxy65Settings:
    domain: str
    host: str
    port: int
    bind: str
    limits: Limits


def tcp_reactor(reactor):
    """The server's reactor if it listens (the running server), else Twisted's own (tests
    that give the server a Clock for its timers still listen on real sockets)."""
    if IReactorTCP.providedBy(reactor):
        return reactor
    from twisted.internet import reactor as global_reactor

    return global_reactor


@implementer(IXmppdPlugin)
class Proxy65:
    name = "proxy65"
    requires = ()

    def configure(self, options) -> Proxy65Settings:
        """Checked before the database opens; ``host`` is required."""
        options.known("domain", "host", "port", "bind", "timeout", "max_rate",
                      "max_transfers", "max_waiting_per_ip")
        host = options.option_str("host", "")
        if not host or any(c.isspace() for c in host):
            raise ValueError("[plugins.proxy65] host: required, the address or name clients "
                             "connect to (reachable from outside)")
        defaults = Limits()
        limits = Limits(timeout=float(options.option_int("timeout", int(defaults.timeout),
                                                          minimum=1)),
                        max_rate=options.option_int("max_rate", 10 * 1024 * 1024, minimum=0),
                        max_transfers=options.option_int("max_transfers",
                                                         defaults.max_transfers, minimum=1),
                        max_waiting_per_ip=options.option_int(
                            "max_waiting_per_ip", defaults.max_waiting_per_ip, minimum=1))
        return Proxy65Settings(domain=options.option_str("domain", "proxy"), host=host,
                               port=options.option_int("port", 7777, minimum=1,
                                                       maximum=65535),
                               bind=options.option_str("bind", "0.0.0.0"), limits=limits)

    _closing: defer.Deferred | None = None  # the listener of a stopped run, still closing

    @defer.inlineCallbacks
    def setup(self, ctx):
        settings = ctx.settings if isinstance(ctx.settings, Proxy65Settings) \
            else self.configure(ctx)
        self.ctx = ctx
        self.settings = settings
        if self._closing is not None:  # a reload: the port is free once the old one closed
            yield self._closing
        # The service first: a domain already served fails set-up before anything listens,
        # and a port that cannot be bound fails it with the service undone by the context.
        service = ctx.service(settings.domain, title="SOCKS5 Bytestreams Proxy")
        service.identity("proxy", "bytestreams", "SOCKS5 Bytestreams Proxy")
        service.feature(NS_BYTESTREAMS)
        service.iq("get", NS_BYTESTREAMS, "query", self.on_streamhost)
        service.iq("set", NS_BYTESTREAMS, "query", self.on_activate)
        self.broker = Broker(ctx.reactor, settings.limits)
        self.port = tcp_reactor(ctx.reactor).listenTCP(
            settings.port, Socks5Factory(self.broker), interface=settings.bind)
        log.info("bytestreams proxy listening on {bind}:{port}", bind=settings.bind,
                 port=settings.port)

    def teardown(self) -> None:
        closing = self._closing = defer.maybeDeferred(self.port.stopListening)
        closing.addBoth(self._closed, closing)
        self.broker.close()

    def _closed(self, result, closing: defer.Deferred) -> None:
        if self._closing is closing:
            self._closing = None

    def _requester(self, stanza: Stanza) -> str:
        sender = stanza.sender
        if sender is None or sender.user is None or sender.host not in self.ctx.domains:
            raise StanzaError("forbidden", "this proxy is for the accounts of this server")
        return sender.userhost()

    def on_streamhost(self, stanza: Stanza, origin) -> domish.Element:
        """§6.3.1: the proxy's network address."""
        self._requester(stanza)
        answer = domish.Element((NS_BYTESTREAMS, "query"))
        streamhost = answer.addElement("streamhost")
        streamhost["jid"] = stanza.recipient.host
        streamhost["host"] = self.settings.host
        streamhost["port"] = str(self.settings.port)
        return answer

    def on_activate(self, stanza: Stanza, origin) -> None:
        """§6.3.3: the requester asks to start relaying the stream ``sid`` to ``target``."""
        user = self._requester(stanza)
        query = stanza.payload()
        sid = query.getAttribute("sid")
        activate = next((child for child in query.elements()
                         if child.uri == NS_BYTESTREAMS and child.name == "activate"), None)
        if not sid or len(sid) > MAX_SID or activate is None:
            raise StanzaError("bad-request", "an activation names the sid and the target")
        if query.getAttribute("mode", "tcp") != "tcp":
            raise StanzaError("feature-not-implemented", "only TCP streams are relayed")
        try:
            target = parse_jid(str(activate).strip())
        except InvalidJID:
            raise StanzaError("jid-malformed", "the target is not a JID") from None
        self.broker.activate(sid, stanza.sender.full(), target.full(), user)
        return None


proxy65 = Proxy65()
