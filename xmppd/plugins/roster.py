# -*- test-case-name: tests.unit.test_roster -*-
"""Roster management (RFC 6121 §2) and the IRoster service that subscriptions are kept through.

Clients read and edit their roster with jabber:iq:roster; every change reaches each of the
account's interested resources (those that fetched the roster) as a roster push carrying the
new roster version (§2.1.6, §2.6). The presence plugin changes subscription state through
``server.query(IRoster)``, so a change made by either side is stored and pushed the same way.

Decisions worth knowing:

* The answer to a roster set goes out before its pushes, as in RFC 6121 §2.3.2.
* Changes to one account are serialized: a roster set and a subscription change arriving
  together never overwrite each other's half of the item.
* An invalid 'jid' in a roster set is ``jid-malformed`` (RFC 6120 §8.3.3.8), a missing one
  ``bad-request``; a JID with a resource is stored as its bare JID. The account's own bare JID
  is refused with ``not-allowed``: the server handles presence to self (RFC 6121 §4) without a
  roster item, as Prosody does.
* A pending inbound request is no roster item (RFC 6121 §3.1.3); it lives in the requests table.
* Removing an item (§2.5.2) sends the contact 'unsubscribe' (for 'to' or a pending ask),
  'unsubscribed' (for 'from' or a pending request, which is dropped) and, for 'from', unavailable
  presence from each available resource (§3.2.2), in that order.
* ``max_items`` also bounds items created through ``set_state``: it errbacks with the
  StanzaError ``not-allowed`` then, for the caller to answer the client with.
* Roster versioning is offered on every roster get (the result always carries 'ver') and
  announced by the <ver/> stream feature of §2.6.1 (``ctx.stream_feature``).
* The roster of an account with a bound session is kept in memory (xmppd.im.roster_cache), so
  its presence broadcasts and roster gets read no storage: every write below goes through
  ``_put``/``_delete``, which keep it equal to storage, and it goes with the last session.
* In a cluster another node may write the same account's roster: each change stored here is
  told as ``events.ROSTER_CHANGED`` (xmppd.cluster.rosters carries it to the other nodes), and
  one stored elsewhere arrives as ``events.ROSTER_CHANGED_ELSEWHERE``: the kept roster is
  dropped (the next read goes to storage) and the push goes to the interested resources here.
  Changes to one account are serialized across the nodes too (IClusterLocks): each runs,
  pushes and tells the other nodes under the account's lock, from storage.
* Which accounts hold stored subscription requests is known in memory on a single node
  (xmppd.im.holding): the initial presence of an account without any reads only its roster.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.im.contacts import Contacts
from xmppd.im.holding import Holding
from xmppd.im.keyed_queue import KeyedQueue
from xmppd.im.roster_cache import CachedRoster, RosterCache
from xmppd.im.roster_items import item_element, removed_item_element
from xmppd.im.subscription import SubState
from xmppd.interfaces import IClusterLocks, IRoster, IXmppdPlugin
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stanza import Stanza
from xmppd.storage.records import RosterItem
from xmppd.xml.stored import stanza_from_text, stanza_to_text

log = get_logger(__name__)

DEFAULT_MAX_ITEMS = 1000
MAX_TEXT_LENGTH = 1023  # characters in an item's name or in one group name (RFC 6121 §2.3.3)

# What to do once a change is stored (pushes, presence to the contact): run outside the lock.
Effects = list[Callable[[], None]]


# --------------------------------------------------------------------------- reading roster sets


@dataclass(frozen=True)
class RosterSet:
    """A client's roster set, checked (RFC 6121 §2.3.3, §2.5): one item to add, update or remove."""

    contact: JID
    remove: bool
    name: str | None = None
    groups: tuple[str, ...] = ()


def read_roster_set(query: domish.Element) -> RosterSet:
    """The one item of a roster set, or the StanzaError the RFC names for what is wrong with it.

    'ask', 'approved' and any 'subscription' but "remove" are ignored: clients manage those
    with presence stanzas (RFC 6121 §2.1.2.1, §2.1.2.2, §2.1.2.5).
    """
    items = [child for child in query.elements() if (child.uri, child.name) == (ns.ROSTER, "item")]
    if len(items) != 1:
        raise StanzaError("bad-request", "a roster set carries exactly one <item/>")
    (item,) = items
    contact = _item_contact(item)
    if item.getAttribute("subscription") == "remove":
        return RosterSet(contact, remove=True)
    name = item.getAttribute("name") or None
    if name is not None and len(name) > MAX_TEXT_LENGTH:
        raise StanzaError("not-acceptable", f"the name is longer than {MAX_TEXT_LENGTH} characters")
    groups: list[str] = []
    for group in item.elements():
        if (group.uri, group.name) != (ns.ROSTER, "group"):
            continue
        text = _text(group)
        if not text:
            raise StanzaError("not-acceptable", "a group name may not be empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise StanzaError("not-acceptable",
                              f"a group name is longer than {MAX_TEXT_LENGTH} characters")
        if text in groups:
            raise StanzaError("bad-request", f"the group {text!r} is named twice")
        groups.append(text)
    return RosterSet(contact, remove=False, name=name, groups=tuple(groups))


def _item_contact(item: domish.Element) -> JID:
    text = item.getAttribute("jid")
    if not text:
        raise StanzaError("bad-request", "a roster item needs a 'jid'")
    try:
        return parse_jid(text).bare()
    except InvalidJID as error:
        raise StanzaError("jid-malformed", f"bad roster item 'jid': {error}") from None


def _text(element: domish.Element) -> str:
    """All the character data directly inside ``element`` (domish's str() gives only the first
    text node, and the parser may split text into several)."""
    return "".join(child for child in element.children if isinstance(child, str))


# --------------------------------------------------------------------------- writing roster XML


def roster_push(to: JID, version: int, item: domish.Element) -> domish.Element:
    """A push (RFC 6121 §2.1.6): no 'from', so it comes from the account itself."""
    iq = domish.Element((ns.CLIENT, "iq"))
    iq["type"] = "set"
    iq["id"] = "push-" + secrets.token_hex(8)
    iq["to"] = to.full()
    query = iq.addElement((ns.ROSTER, "query"))
    query["ver"] = str(version)
    query.addChild(item)
    return iq


def presence(type: str, sender: JID, recipient: JID) -> Stanza:
    element = domish.Element((ns.CLIENT, "presence"))
    element["type"] = type
    element["id"] = secrets.token_hex(8)
    element["from"] = sender.full()
    element["to"] = recipient.full()
    return Stanza(element, sender, recipient)


def parse_stored_stanza(xml: str) -> domish.Element | None:
    """A stored subscription request back as an element; None (logged) if it is broken."""
    element = stanza_from_text(xml)
    if element is None:
        log.error("a stored subscription request does not parse: {xml!r}", xml=xml)
    return element


# --------------------------------------------------------------------------- subscription states


def state_of(item: RosterItem | None, pending_in: bool) -> SubState:
    """The SubState of a stored item plus its pending request, whatever the database holds."""
    if item is None:
        return SubState(pending_in=pending_in)
    try:
        return SubState(item.subscription, item.pending_out, pending_in, item.approved)
    except ValueError:
        # Never written by us; keep what the roster shows and drop what cannot go with it.
        log.warn("inconsistent roster state for {contact}: {item!r} pending_in={pending_in}",
                 contact=item.contact, item=item, pending_in=pending_in)
        pending_out = item.pending_out and item.subscription in ("none", "from")
        return SubState(item.subscription, pending_out, False,
                        item.approved and item.subscription in ("none", "to"))


def _visible(state: SubState) -> tuple[str, bool, bool]:
    """What a client sees of a state: the item's subscription, ask and approved."""
    return (state.subscription, state.pending_out, state.approved)


_NOTHING_VISIBLE = ("none", False, False)


# --------------------------------------------------------------------------- the plugin


@implementer(IXmppdPlugin)
class Roster:
    name = "roster"
    requires = ()
    provides = (IRoster,)

    def configure(self, options) -> int:
        """max_items, checked before the database opens."""
        reject_unknown_keys(options, ("max_items",))
        return options.option_int("max_items", DEFAULT_MAX_ITEMS, minimum=1)

    def setup(self, ctx) -> None:
        # exact on a single node only: a cluster's other nodes store requests too
        requesters = Holding("subscription requests", lambda: ctx.remote_sessions() is None)
        service = RosterService(ctx.sessions, ctx.route, ctx.storage.roster, ctx.settings,
                                changed=lambda *change: ctx.emit(events.ROSTER_CHANGED, *change),
                                requesters=requesters,
                                cluster_locks=lambda: ctx.query(IClusterLocks))
        requesters.load(ctx.storage.roster.accounts_with_requests)
        ctx.iq("get", ns.ROSTER, "query", service.on_get, to="bare")
        ctx.iq("set", ns.ROSTER, "query", service.on_set, to="bare")
        # after the other listeners: the presence plugin's unavailable broadcast still finds
        # the roster in memory
        ctx.on(events.SESSION_CLOSED, service.on_session_closed, priority=-100)
        ctx.carry_session_state("roster", service.export_interest, service.restore_interest)
        ctx.on(events.USER_DELETED, service.on_user_deleted)
        ctx.on(events.ROSTER_CHANGED_ELSEWHERE, service.on_changed_elsewhere)
        ctx.provide(IRoster, service)
        ctx.stream_feature(lambda stream: domish.Element((ns.ROSTER_VER, "ver")))


@implementer(IRoster)
class RosterService:
    """One server's rosters: the IQ handlers, the pushes and the IRoster service."""

    def __init__(self, sessions, route: Callable, store,
                 max_items: int = DEFAULT_MAX_ITEMS, changed: Callable | None = None,
                 requesters: Holding | None = None,
                 cluster_locks: Callable[[], IClusterLocks | None] = lambda: None) -> None:
        """``requesters``: which accounts hold stored requests (None: read them every time);
        ``cluster_locks()``: the cluster's locks, None on a single node (asked at each change:
        the cluster starts after the plugins)."""
        self._resources = sessions.resources  # sessions: read-only, as plugins see them
        self._route_stanza = route  # the server's route(stanza, origin)
        self.store = store  # IRosterStore
        self.max_items = max_items
        self.locks = KeyedQueue()  # per account: read-modify-write of a roster is atomic
        self.interested: weakref.WeakSet = weakref.WeakSet()  # sessions that fetched the roster
        self.cache = RosterCache(self._online)
        self._changed = changed  # changed(account, version, item): told after each push
        if requesters is None:
            requesters = Holding("subscription requests", lambda: False)
        self.requesters = requesters
        self._cluster_locks = cluster_locks

    # -- jabber:iq:roster

    def on_get(self, stanza: Stanza, origin) -> defer.Deferred:
        account = _owner(stanza, origin)
        return defer.ensureDeferred(self._get(account, stanza.payload(), origin))

    async def _get(self, account: JID, query: domish.Element, session) -> domish.Element | None:
        roster = await self._roster(account)
        self.interested.add(session)
        version = str(roster.version)
        if query.getAttribute("ver") == version:
            return None  # RFC 6121 §2.6.3: the client's cached roster is current
        result = domish.Element((ns.ROSTER, "query"))
        result["ver"] = version
        for item in roster.items:
            result.addChild(item_element(item))
        return result

    def on_set(self, stanza: Stanza, origin) -> defer.Deferred:
        account = _owner(stanza, origin)
        request = read_roster_set(stanza.payload())
        if request.contact == account and not request.remove:
            raise StanzaError("not-allowed", "your own address is not a roster item")
        if request.remove:
            return self._answer_first(account, self._remove, account, request.contact)
        return self._answer_first(account, self._update, account, request)

    def _answer_first(self, account: JID, work, *args) -> defer.Deferred:
        """The Deferred the dispatcher answers the IQ from: it fires once ``work`` stored the
        change, and its effects run right after it."""
        answered: defer.Deferred = defer.Deferred()

        def failed(failure) -> None:
            if not answered.called:
                answered.errback(failure)
            else:
                log.failure("a roster change failed after its answer", failure)

        self._exclusive(account, work, *args,
                        stored=lambda: answered.callback(None)).addErrback(failed)
        return answered

    async def _update(self, account: JID, request: RosterSet) -> Effects:
        contact = request.contact.userhost()
        old = await self._item(account, contact)
        if old is None:
            await self._check_room(account)
            state = SubState()
        else:
            state = state_of(old, False)
        item = _item(contact, state, request.name, request.groups)
        version = await self._put(account, item)
        return [lambda: self._push(account, version, item_element(item))]

    async def _remove(self, account: JID, contact_jid: JID) -> Effects:
        contact = contact_jid.userhost()
        old = await self._item(account, contact)
        if old is None:
            raise StanzaError("item-not-found", f"{contact} is not in the roster")
        pending_in = await self._pending_in(account, contact)
        state = state_of(old, pending_in)
        version = await self._delete(account, contact)
        if version is None:
            raise StanzaError("item-not-found", f"{contact} is not in the roster")
        if pending_in:
            await self.store.remove_request(account.user, account.host, contact)
        return [lambda: self._push(account, version, removed_item_element(contact)),
                lambda: self._say_goodbye(account, contact_jid, state)]

    def _say_goodbye(self, account: JID, contact: JID, state: SubState) -> None:
        """RFC 6121 §2.5.2: end both directions of the subscription for the removed contact.

        With 'from' gone the contact also learns that the user's resources are unavailable
        (§3.2.2). A pending request is denied like a subscription is cancelled.
        """
        if state.has_to or state.pending_out:
            self._route(presence("unsubscribe", account, contact))
        if state.has_from or state.pending_in:
            self._route(presence("unsubscribed", account, contact))
        if state.has_from:
            for session in self._resources(account):
                if session.available:
                    self._route(presence("unavailable", session.jid, contact))

    # -- IRoster

    def get_state(self, account: JID, contact: JID) -> defer.Deferred:
        return defer.ensureDeferred(self._get_state(account.bare(), contact.bare().userhost()))

    async def _get_state(self, account: JID, contact: str) -> SubState:
        item = await self._item(account, contact)
        return state_of(item, await self._pending_in(account, contact))

    def set_state(self, account: JID, contact: JID, state: SubState,
                  request: domish.Element | None = None) -> defer.Deferred:
        if not isinstance(state, SubState):
            raise TypeError(f"expected a SubState, not {state!r}")
        account, contact = account.bare(), contact.bare()
        return self._exclusive(account, self._set_state, account, contact, state, request)

    async def _set_state(self, account: JID, contact_jid: JID, state: SubState,
                         request: domish.Element | None) -> Effects:
        contact = contact_jid.userhost()
        old = await self._item(account, contact)
        was_pending = await self._pending_in(account, contact)
        effects: Effects = []
        old_visible = _visible(state_of(old, False)) if old else _NOTHING_VISIBLE
        if _visible(state) != old_visible:
            if old is None:
                await self._check_room(account)
            item = _item(contact, state, old.name if old else None, old.groups if old else ())
            version = await self._put(account, item)
            effects.append(lambda: self._push(account, version, item_element(item)))
        if state.pending_in and not was_pending:
            if request is None:
                request = presence("subscribe", contact_jid, account).element
            self.requesters.adding(account)
            await self.store.add_request(account.user, account.host, contact,
                                         stanza_to_text(request))
        elif was_pending and not state.pending_in:
            await self.store.remove_request(account.user, account.host, contact)
        return effects

    def items(self, account: JID) -> defer.Deferred:
        return self._roster(account.bare()).addCallback(lambda roster: list(roster.items))

    def contacts(self, account: JID) -> defer.Deferred:
        return self._roster(account.bare()).addCallback(_contacts_of)

    def pending_requests(self, account: JID) -> defer.Deferred:
        account = account.bare()
        if not self.requesters.may_hold(account):
            return defer.succeed([])
        self.requesters.taking(account)  # what the read finds is marked again below
        d = self.store.get_requests(account.user, account.host)
        d.addBoth(self._requests_read, account)
        d.addCallback(lambda requests: [element for element in
                                        (parse_stored_stanza(xml) for _contact, xml in requests)
                                        if element is not None])
        return d

    def _requests_read(self, requests, account: JID):
        """Requests stay stored until answered: an account that has any still holds them
        (and so does one whose read failed)."""
        if not isinstance(requests, list) or requests:
            self.requesters.left(account)
        return requests

    # -- sessions

    def export_interest(self, session) -> bool | None:
        """A session moving to another node gets roster pushes there if it did here."""
        return True if session in self.interested else None

    def restore_interest(self, session, interested: bool) -> None:
        if interested:
            self.interested.add(session)

    def on_session_closed(self, session, polite=None) -> None:
        self.interested.discard(session)
        if not self._online(session.account):
            self.cache.forget(session.account)

    def on_user_deleted(self, account: JID) -> None:
        """Storage dropped the roster without us: so do we (a session may still be closing)."""
        self.cache.forget(account.bare())

    def on_changed_elsewhere(self, account: JID, version: int, item: domish.Element) -> None:
        """Another node stored a change (a cluster): what is kept here is stale, and the
        resources here that fetched the roster get the push."""
        account = account.bare()
        self.cache.forget(account)
        self._push_here(account, version, item)

    # -- helpers

    def _exclusive(self, account: JID, work, *args,
                   stored: Callable[[], None] | None = None) -> defer.Deferred:
        """Run the coroutine function ``work(*args)``, then ``stored()`` and the effects it
        returns (pushes, news for the other nodes, presence), once no other change to
        ``account`` runs: on this node, and in a cluster on any node (IClusterLocks; the
        roster kept here may miss the last node's change, so it is read again)."""

        async def change() -> None:
            effects = await work(*args)
            if stored is not None:
                stored()
            self._run(effects)

        def clustered() -> defer.Deferred:
            cluster = self._cluster_locks()
            if cluster is None:
                return defer.ensureDeferred(change())

            def locked() -> defer.Deferred:
                self.cache.forget(account)
                return defer.ensureDeferred(change())

            return cluster.run(f"roster:{account.userhost()}", locked)

        return self.locks.run(account, clustered)

    def _online(self, account: JID) -> bool:
        return bool(self._resources(account))

    def _roster(self, account: JID) -> defer.Deferred:
        """Deferred firing the CachedRoster of bare JID ``account``, from memory if it can."""
        return self.cache.load(account, lambda: self.store.get_roster(account.user, account.host))

    async def _item(self, account: JID, contact: str) -> RosterItem | None:
        cached = self.cache.get(account)
        if cached is not None:
            return cached.item(contact)
        return await self.store.get_item(account.user, account.host, contact)

    async def _put(self, account: JID, item: RosterItem) -> int:
        """Store ``item``: every item write goes through here (or ``_delete``), so the cached
        roster follows storage exactly."""
        try:
            version = await self.store.put_item(account.user, account.host, item)
        except BaseException:
            self.cache.forget(account)
            raise
        self.cache.stored(account, version, item)
        return version

    async def _delete(self, account: JID, contact: str) -> int | None:
        """Remove the item of ``contact``; the new version, or None if there was none."""
        try:
            version = await self.store.remove_item(account.user, account.host, contact)
        except BaseException:
            self.cache.forget(account)
            raise
        if version is None:
            self.cache.forget(account)  # storage had no such item: trust storage
        else:
            self.cache.removed(account, version, contact)
        return version

    async def _pending_in(self, account: JID, contact: str) -> bool:
        if not self.requesters.may_hold(account):
            return False
        requests = await self.store.get_requests(account.user, account.host)
        return any(requester == contact for requester, _xml in requests)

    async def _check_room(self, account: JID) -> None:
        if len(await self._roster(account)) >= self.max_items:
            raise StanzaError("not-allowed", "roster is full")

    def _push(self, account: JID, version: int, item: domish.Element) -> None:
        self._push_here(account, version, item)
        if self._changed is not None:
            self._changed(account, version, item)

    def _push_here(self, account: JID, version: int, item: domish.Element) -> None:
        for session in self._resources(account):
            if session in self.interested:
                session.send(roster_push(session.jid, version, item))

    def _route(self, stanza: Stanza) -> None:
        result = self._route_stanza(stanza, None)
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: log.failure("routing {stanza!r} failed", failure,
                                                          stanza=stanza))

    @staticmethod
    def _run(effects: Effects) -> None:
        for effect in effects:
            try:
                effect()
            except Exception:
                log.failure("a roster change was stored but not passed on")


def _contacts_of(roster: CachedRoster) -> Contacts:
    return roster.contacts


def _owner(stanza: Stanza, origin) -> JID:
    """The account whose roster a client IQ is about; only its own resources may touch it."""
    account = getattr(origin, "account", None)
    if account is None or (stanza.recipient is not None and stanza.recipient != account):
        raise StanzaError("forbidden", "you may only see and change your own roster")
    return account


def _item(contact: str, state: SubState, name: str | None, groups: tuple[str, ...]) -> RosterItem:
    return RosterItem(contact=contact, name=name, groups=tuple(groups),
                      subscription=state.subscription, pending_out=state.pending_out,
                      approved=state.approved)


roster = Roster()
