# -*- test-case-name: tests.unit.test_presence -*-
"""Presence (RFC 6121 §3, §4 and the presence rules of §8.5): subscriptions and presence
exchange for local accounts.

This module only sorts stanzas and events to where they are handled:
xmppd.im.subscription_flow for subscription stanzas and xmppd.im.presence_exchange for the
rest. Subscription state lives in the roster plugin, reached through ``IRoster``.

Decisions worth knowing:

* A client's presence probe is routed (from its full JID, so the answer comes back to that
  resource, as in XEP-0318) only to a contact it has a 'to' subscription with, or to its own
  account. To anyone else it is dropped without an answer: the contact's server would answer
  'unsubscribed' (§4.3.2), and that would cancel a subscription request still pending.
* Presence errors are not handled here: the router delivers one addressed to a connected
  resource and drops the rest, as §8.5 says.
* Pre-approval (§3.4) is offered and advertised as a stream feature.
* Stanzas from remote servers reach the same inbound handlers as those from local accounts;
  none of them looks at the origin. Available and unavailable presence for a full JID is
  delivered here too (not left to the router), so remote presence is always tracked and a
  lost s2s link can end it (xmppd.im.remote_presence).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.dispatch import consumed
from xmppd.errors import StanzaError
from xmppd.im.keyed_queue import KeyedQueue
from xmppd.im.presence_exchange import PresenceExchange
from xmppd.im.presence_stanzas import check_presence
from xmppd.im.remote_presence import LinkPresence
from xmppd.im.subscription import SUBSCRIPTION_TYPES
from xmppd.im.subscription_flow import SubscriptionFlow
from xmppd.interfaces import IRoster, IXmppdPlugin
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.options import no_options
from xmppd.stanza import Stanza

log = get_logger(__name__)

BROADCAST_TYPES = ("available", "unavailable")


@implementer(IXmppdPlugin)
class Presence:
    name = "presence"
    requires = ("roster",)

    configure = staticmethod(no_options)  # checked before the database opens

    def setup(self, ctx) -> None:
        handlers = PresenceHandlers(ctx)
        for type in BROADCAST_TYPES:
            ctx.stanza("presence", type, "outgoing", handlers.on_client_presence)
            ctx.stanza("presence", type, "bare", handlers.on_presence_to_account)
            ctx.stanza("presence", type, "full", handlers.on_presence_to_resource)
        for type in SUBSCRIPTION_TYPES:
            ctx.stanza("presence", type, "outgoing", handlers.on_client_subscription)
            for target in ("bare", "full"):  # §8.5.3.2.2: as if sent to the bare JID
                ctx.stanza("presence", type, target, handlers.on_subscription)
        ctx.stanza("presence", "probe", "outgoing", handlers.on_client_probe)
        for target in ("bare", "full"):
            ctx.stanza("presence", "probe", target, handlers.on_probe)
        ctx.on(events.SESSION_CLOSED, handlers.on_session_closed)
        ctx.carry_session_state("presence", handlers.exchange.export_session,
                                handlers.on_session_arrived)
        ctx.on(events.USER_DELETING, handlers.on_user_deleting)
        ctx.on(events.USER_DELETED, handlers.on_user_deleted)
        ctx.on(events.S2S_LINK_DOWN, handlers.links.link_down)
        ctx.on(events.S2S_LINK_UP, handlers.on_link_up)
        ctx.stream_feature(lambda stream: domish.Element((ns.PRE_APPROVAL, "sub")))


class PresenceHandlers:
    """The handlers of one loaded plugin: they own its per-session and per-pair state."""

    def __init__(self, ctx) -> None:
        self._query = ctx.query
        self.queue = KeyedQueue()
        self.exchange = PresenceExchange(ctx, self._roster)
        self.flow = SubscriptionFlow(ctx.storage.users, self._roster, self.exchange, self.queue)
        self.links = LinkPresence(ctx.sessions, self.exchange)

    def _roster(self) -> IRoster:
        roster = self._query(IRoster)
        if roster is None:
            raise RuntimeError("the presence plugin needs the roster plugin's IRoster")
        return roster

    # -- what local clients send ('outgoing': before routing, consumed here)

    def on_client_presence(self, stanza: Stanza, session) -> bool | defer.Deferred:
        try:
            priority = check_presence(stanza.element)
            if stanza.recipient is not None:
                self.exchange.directed(session, stanza.element, stanza.recipient)
                return True
        except StanzaError as error:
            session.send(error.to_response(stanza.element))
            return True
        if stanza.type == "available":
            work = self.exchange.broadcast_available(session, stanza.element, priority)
        else:
            work = self.exchange.broadcast_unavailable(session, stanza.element)
        return _reporting(defer.ensureDeferred(work), stanza, session)

    def on_client_subscription(self, stanza: Stanza, session) -> bool | defer.Deferred:
        contact = _required_recipient(stanza, session)
        if contact is None:
            return True
        work = self.flow.send(session.account, contact.bare(), stanza.type, stanza.element)
        return _reporting(work, stanza, session)

    def on_client_probe(self, stanza: Stanza, session) -> bool | defer.Deferred:
        contact = _required_recipient(stanza, session)
        if contact is None:
            return True
        if contact.bare() == session.account:
            self.exchange.route(stanza.element, session.jid, contact)
            return True
        d = self._roster().get_state(session.account, contact.bare())

        def decided(state) -> None:
            if state.has_to:
                self.exchange.route(stanza.element, session.jid, contact)

        return _reporting(d.addCallback(decided), stanza, session)

    # -- what arrives for local accounts

    def on_presence_to_account(self, stanza: Stanza, origin) -> bool | defer.Deferred:
        return self._in_pair_order(stanza, self.exchange.deliver_to_account)

    def on_presence_to_resource(self, stanza: Stanza, origin) -> bool | defer.Deferred:
        return self._in_pair_order(stanza, self.exchange.deliver_to_resource)

    def _in_pair_order(self, stanza: Stanza, deliver) -> bool | defer.Deferred:
        """Deliver ``stanza`` to its recipient, queued behind the pair's subscription changes
        so presence never overtakes them. Delivery itself never waits, so with nothing queued
        for the pair (every copy of a broadcast, as a rule) it happens at once, without the
        queue's Deferreds."""
        if stanza.sender is None:
            deliver(stanza.element, stanza.recipient)
            return True
        key = (stanza.recipient.bare(), stanza.sender.bare())
        if key not in self.queue:
            try:
                deliver(stanza.element, stanza.recipient, stanza.sender)
            except Exception:  # as the queue would: logged, never answered with an error
                log.failure("delivering {stanza!r} failed", stanza=stanza)
            return True
        return self.queue.run(key, deliver, stanza.element, stanza.recipient,
                              stanza.sender).addCallback(consumed)

    def on_subscription(self, stanza: Stanza, origin) -> bool | defer.Deferred:
        if stanza.sender is not None:
            return self.flow.receive(stanza.recipient.bare(), stanza.sender.bare(), stanza.type,
                                     stanza.element).addCallback(consumed)
        return True

    def on_probe(self, stanza: Stanza, origin) -> bool | defer.Deferred:
        if stanza.sender is None:
            return True
        account = stanza.recipient.bare()
        return self.queue.run((account, stanza.sender.bare()), self.exchange.answer_probe,
                              account, stanza.sender).addCallback(consumed)

    # -- server events

    def on_session_closed(self, session, polite: bool = False) -> defer.Deferred:
        """Polite or not, everyone who saw the session available sees it go (§4.5.2); after
        the client's own unavailable presence there is nobody left to tell. A session
        that moved to another node of a cluster has not gone: nobody is told."""
        if getattr(session, "moved", False):  # ISession.moved; drop-ins may lack it
            self.exchange.forget_session(session)
            return defer.succeed(None)
        return defer.ensureDeferred(self.exchange.broadcast_unavailable(session))

    def on_session_arrived(self, session, state: dict) -> defer.Deferred:
        """A session moved here from another node: its presence as it was there."""
        return defer.ensureDeferred(self.exchange.restore_session(session, state))

    def on_link_up(self, domain: str) -> defer.Deferred:
        return defer.ensureDeferred(self.links.link_up(domain))

    def on_user_deleting(self, account: JID) -> defer.Deferred:
        return defer.ensureDeferred(self.flow.cancel_all(account.bare()))

    def on_user_deleted(self, account: JID) -> None:
        self.flow.deleted(account.bare())


def _required_recipient(stanza: Stanza, session) -> JID | None:
    """Subscription stanzas and probes name a contact; without one they are bad-request."""
    if stanza.recipient is None:
        error = StanzaError("bad-request", f"a presence of type {stanza.type!r} needs a 'to'")
        session.send(error.to_response(stanza.element))
    return stanza.recipient


def _reporting(work: defer.Deferred, stanza: Stanza, session) -> defer.Deferred:
    """The client hears of a failure (the roster's own error, e.g. a full roster's
    not-allowed, else internal-server-error) instead of silence."""

    def failed(failure) -> bool:
        if failure.check(StanzaError):
            error = failure.value
        else:
            log.failure("presence handling failed for {stanza!r}", failure, stanza=stanza)
            error = StanzaError("internal-server-error")
        session.send(error.to_response(stanza.element))
        return True  # consumed: a refused stanza goes no further

    return work.addCallbacks(consumed, failed)


presence = Presence()
