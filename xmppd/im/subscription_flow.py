# -*- test-case-name: tests.unit.test_presence -*-
"""Presence subscriptions of local accounts (RFC 6121 §3): the rules of xmppd.im.subscription
applied to the stored rosters, and the stanzas those rules call for.

Every stanza about one (account, contact) pair is handled after the previous one is stored
(KeyedQueue), so no change is lost and a contact's presence never overtakes the 'subscribed'
sent before it.

Decisions worth knowing:

* Subscription stanzas travel between bare JIDs (§3.1.2): what a client sends is re-addressed
  from its account's bare JID to the contact's bare JID, whatever it said.
* A subscription stanza from an account to itself is ignored: the account is implicitly
  subscribed to its own presence (§4.2.2) and has no roster item for itself.
* Inbound subscription stanzas for an account that does not exist, or is being deleted, are
  silently ignored (§8.5.1): nothing is stored for it and nothing reveals whether it exists.
* An inbound 'subscribe' is stored before it is delivered (the other types are delivered
  before their roster push): in a cluster the account's answer may be handled by another
  node, whose per-pair queue knows nothing of this one's, and must find the request.
* When a contact gains the 'from' direction (an approval, or an answered pre-approval) it is
  sent the current presence of each available resource (§3.1.5); when it loses it (the account
  sent 'unsubscribed' or received 'unsubscribe') it is sent unavailable presence from each
  (§3.2.2, §3.3.3).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.im.keyed_queue import KeyedQueue
from xmppd.im.presence_exchange import PresenceExchange
from xmppd.im.presence_stanzas import make_presence, readdressed
from xmppd.im.subscription import SubState, inbound, outbound
from xmppd.interfaces import IRoster
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger

log = get_logger(__name__)


class SubscriptionFlow:
    """Subscription stanzas sent by and to local accounts, one pair at a time."""

    def __init__(self, users, roster: Callable[[], IRoster], exchange: PresenceExchange,
                 queue: KeyedQueue | None = None) -> None:
        self._users = users  # IUserStore: is there such an account?
        self._roster = roster
        self._exchange = exchange
        self._queue = queue or KeyedQueue()
        self._deleting: set[JID] = set()  # accounts whose deletion has begun

    # -- the account's own stanzas (§3.1.2, §3.1.5, §3.2.2, §3.3.2, §3.4.2)

    def send(self, account: JID, contact: JID, type: str,
             element: domish.Element) -> defer.Deferred:
        """``account`` sends a subscription stanza of ``type`` to ``contact`` (bare JIDs)."""
        if account == contact:
            return defer.succeed(None)
        element = readdressed(element, account, contact)
        return self._queue.run((account, contact), self._send, account, contact, type, element)

    async def _send(self, account: JID, contact: JID, type: str,
                    element: domish.Element) -> None:
        roster = self._roster()
        state = await roster.get_state(account, contact)
        outcome = outbound(state, type)
        if outcome.state is not state:
            await roster.set_state(account, contact, outcome.state)
        if outcome.deliver:
            self._exchange.route(element, account, contact)
        self._show_change(account, contact, state, outcome.state)

    # -- stanzas from contacts (§3.1.3, §3.1.6, §3.2.3, §3.3.3)

    def receive(self, account: JID, contact: JID, type: str,
                element: domish.Element) -> defer.Deferred:
        """``contact`` sent local ``account`` a subscription stanza of ``type`` (bare JIDs)."""
        if account == contact or account in self._deleting:
            return defer.succeed(None)
        element = readdressed(element, contact, account)
        return self._queue.run((account, contact), self._receive, account, contact, type,
                               element)

    async def _receive(self, account: JID, contact: JID, type: str,
                       element: domish.Element) -> None:
        if not await self._users.user_exists(account.user, account.host):
            return
        if account in self._deleting:
            return
        roster = self._roster()
        state = await roster.get_state(account, contact)
        outcome = inbound(state, type)
        # Delivered before the roster push (§3.1.6); a subscribe, which changes nothing a
        # client sees (a pending request is no roster item), is stored first: the answer,
        # which another node of a cluster may handle, must find the request
        stored_first = type == "subscribe"
        if outcome.deliver and not stored_first:
            self._exchange.deliver_to_account(element, account)
        if outcome.state is not state:
            request = element if type == "subscribe" and outcome.state.pending_in else None
            await roster.set_state(account, contact, outcome.state, request)
        if outcome.deliver and stored_first:
            self._exchange.deliver_to_account(element, account)
        if outcome.auto_reply:
            reply = make_presence(outcome.auto_reply, account, contact)
            self._exchange.route(reply, account, contact)
        self._show_change(account, contact, state, outcome.state)

    # -- account deletion (§3.2, §3.3: cancel everything in both directions)

    async def cancel_all(self, account: JID) -> None:
        """Unsubscribe from every contact and cancel every subscription and request to the
        account; from here on stanzas for it are ignored (until ``deleted``)."""
        self._deleting.add(account)
        roster = self._roster()
        requesters = _senders(await roster.pending_requests(account))
        for item in await roster.items(account):
            try:
                contact = parse_jid(item.contact)
            except InvalidJID:
                continue
            if item.subscription in ("to", "both") or item.pending_out:
                self._exchange.route(make_presence("unsubscribe", account, contact), account,
                                     contact)
            has_from = item.subscription in ("from", "both")
            if has_from or contact in requesters:
                self._cancel(account, contact, has_from)
            requesters.discard(contact)
        for contact in requesters:
            self._cancel(account, contact, has_from=False)

    def deleted(self, account: JID) -> None:
        self._deleting.discard(account)

    # -- helpers

    def _cancel(self, account: JID, contact: JID, has_from: bool) -> None:
        self._exchange.route(make_presence("unsubscribed", account, contact), account, contact)
        if has_from:
            self._exchange.send_unavailable(account, contact)

    def _show_change(self, account: JID, contact: JID, old: SubState, new: SubState) -> None:
        if new.has_from and not old.has_from:
            self._exchange.send_presence(account, contact)
        elif old.has_from and not new.has_from:
            self._exchange.send_unavailable(account, contact)


def _senders(requests: list[domish.Element]) -> set[JID]:
    """The bare JIDs stored subscription requests came from."""
    senders = set()
    for request in requests:
        try:
            senders.add(parse_jid(request.getAttribute("from", "")).bare())
        except InvalidJID:
            log.warn("stored request with a bad sender skipped: {xml}", xml=request.toXml())
    return senders
