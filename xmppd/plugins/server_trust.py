# -*- test-case-name: tests.unit.test_server_trust -*-
"""Server buddies (XEP-0267): subscription presence between our domain and peer domains, and
the server presence of the peers in the server roster.

This module wires xmppd.trust into the server: the ServerTrust service (provided as
IServerTrust, for the admin API, the federation policy and other plugins), the handlers of
subscription presence addressed to one of our domains by a remote bare domain, and the s2s
link events that make a peer available or unavailable.

Nothing is answered automatically: requests wait for an admin (see xmppd.trust.server_roster).
Each peer gets at most ``rate_limit`` subscription stanzas handled per ``rate_period``
seconds; the rest are dropped, with one log line per window. At most ``max_pending``
requests wait for an answer at once. Stanzas from a user of a peer, or from one of our own
domains, are not server subscriptions and are left alone. A presence error from a peer (a
server without XEP-0267 bouncing our request) is logged and changes nothing.

[plugins.server_trust] settings: rate_limit (default 5), rate_period (seconds, 60),
max_pending (100).
"""

from __future__ import annotations

from collections.abc import Callable

from zope.interface import implementer

from xmppd import events, ns
from xmppd.dispatch import consumed
from xmppd.im.presence_stanzas import make_presence
from xmppd.im.subscription import SUBSCRIPTION_TYPES
from xmppd.interfaces import IServerTrust, IXmppdPlugin
from xmppd.jid import parse_jid
from xmppd.logs import get_logger
from xmppd.stanza import Stanza
from xmppd.trust.commands import add_trust_commands
from xmppd.trust.notify import AdminNotifier
from xmppd.trust.ratelimit import RateLimiter
from xmppd.trust.server_roster import is_bare_domain
from xmppd.trust.service import DEFAULT_MAX_PENDING, ServerTrust
from xmppd.trust.settings import read_settings

log = get_logger(__name__)

SETTINGS = {"rate_limit": 5, "rate_period": 60.0, "max_pending": DEFAULT_MAX_PENDING}


@implementer(IXmppdPlugin)
class ServerTrustPlugin:
    name = "server_trust"
    requires = ()
    provides = (IServerTrust,)  # what start-up checks for when the config asks for it

    def configure(self, options) -> dict:
        """The numbers of SETTINGS, checked before the database opens."""
        return read_settings(options, SETTINGS)

    def setup(self, ctx):
        settings = ctx.settings
        trust = ServerTrust(
            ctx.storage.server_roster, ctx.server_config.server.domains,
            send=lambda local, peer, type: send_presence(ctx.route, local, peer, type),
            notify=AdminNotifier(ctx, "Server trust"), now=ctx.reactor.seconds,
            max_pending=settings["max_pending"])
        limiter = RateLimiter(settings["rate_limit"], settings["rate_period"], ctx.reactor.seconds)
        handlers = SubscriptionHandlers(ctx.domains, trust, limiter)
        for type in SUBSCRIPTION_TYPES:
            ctx.stanza("presence", type, "host", handlers.on_subscription)
        ctx.stanza("presence", "error", "host", handlers.on_error)
        ctx.on(events.S2S_LINK_UP, trust.link_up)
        ctx.on(events.S2S_LINK_DOWN, trust.link_down)
        ctx.feature(ns.SERVER_PRESENCE)
        add_trust_commands(ctx, trust)
        d = trust.load()
        d.addCallback(lambda _: ctx.provide(IServerTrust, trust))
        return d


class SubscriptionHandlers:
    """Sorts subscription presence sent to one of our domains: server buddies or not."""

    def __init__(self, domains: frozenset[str], trust: ServerTrust,
                 limiter: RateLimiter) -> None:
        self.domains = domains  # ours
        self.trust = trust
        self.limiter = limiter

    def on_subscription(self, stanza: Stanza, origin):
        if not self._from_a_peer(stanza):
            return False
        if not self._within_limit(stanza.sender.host):
            return True
        return self.trust.received(stanza.recipient.host, stanza.sender.host,
                                   stanza.type).addCallback(consumed)

    def on_error(self, stanza: Stanza, origin):
        """A peer bounced our presence, e.g. a server without XEP-0267 refusing our request:
        the state stays as it is (only the peer's answer or an admin changes it), the log says
        why, for the admin wondering why a request stays pending."""
        if not self._from_a_peer(stanza):
            return False
        if self._within_limit(stanza.sender.host):
            log.warn("server trust: {peer} answered {local} with an error: {condition}",
                     peer=stanza.sender.host, local=stanza.recipient.host,
                     condition=_condition(stanza))
        return True

    def _from_a_peer(self, stanza: Stanza) -> bool:
        """From a remote bare domain to one of ours: not a user's stanza, nor our own."""
        return (is_bare_domain(stanza.sender) and is_bare_domain(stanza.recipient)
                and stanza.sender.host not in self.domains)

    def _within_limit(self, peer: str) -> bool:
        over = self.limiter.hit(peer)
        if over == 1:
            log.warn("server trust: {peer} sends too many subscription stanzas; dropping them "
                     "for up to {period}s", peer=peer, period=self.limiter.period)
        return not over


def _condition(stanza: Stanza) -> str:
    for error in stanza.element.elements():
        if error.name == "error":
            for child in error.elements():
                if child.uri == ns.STANZA_ERRORS and child.name != "text":
                    return child.name
    return "no condition given"


def send_presence(route: Callable, local: str, peer: str, type: str) -> None:
    """Send <presence from='local' to='peer' type='...'/> through federation; ``route`` is
    the plugin context's (or, in the manhole, ``server.router.route``)."""
    sender, recipient = parse_jid(local), parse_jid(peer)
    route(Stanza(make_presence(type, sender, recipient), sender, recipient), None)


server_trust = ServerTrustPlugin()
