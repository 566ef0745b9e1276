# -*- test-case-name: tests.unit.test_blocking -*-
"""The blocking command (XEP-0191, ``urn:xmpp:blocking``): an account stops all traffic
with the JIDs it lists, in both directions, across sessions.

The lists are xmppd.im.blocklist (a map store, all read into memory at start, so no check
ever waits for storage). The commands are IQ answerers for an account's own bare JID;
enforcement is chain links, never a router edit, at priority 1000 so a blocked stanza is
dropped before the archive (50), carbons (0) and delivery (-1000) see it:

* **inbound**, on an account's targets (bare, full), every kind: from a JID the account
  blocked, messages and IQ requests get ``service-unavailable`` (as if there were nobody),
  presence of every type (probes, subscriptions) and IQ answers vanish silently (§3.3), so
  the blocker appears offline. A stanza the server makes *from* an account to a JID that
  account blocked (its presence broadcast, a probe answer, a PEP notification) is dropped
  here too, when the JID is local;
* **outbound**, at 'outgoing' (what a local client sends): a message to a blocked JID gets
  ``not-acceptable`` with ``<blocked xmlns='urn:xmpp:blocking:errors'/>`` (§3.3);
  presence and errors to it are dropped. A client's IQs have no 'outgoing' link (they are
  routed as they are), so an IN session filter refuses those the same way;
* the stanzas between an account's own resources are never blocked (§5, note), nor those
  the server itself sends (its answers, pushes, errors).

Blocking a JID that receives the account's presence sends it unavailable presence from
each available resource first (§3.3, while it still passes); unblocking sends it the
current presence, and probes those whose presence the account is subscribed to, so both
sides see each other again.

Pushes (§3.3–§3.5) go to the account's resources that have asked for the list, as the
XEP says: a client that never asked may not understand them. Unblocking what is not
blocked succeeds and pushes nothing.

* **leaving**, at 'remote' (every stanza for another server): what the server makes from an
  account for a *remote* JID it blocked (its presence broadcast to a remote subscriber) is
  dropped there, as the inbound link drops it for a local one; errors still go.

Not covered: whom a session sent directed presence to is the presence plugin's to know: a
blocked JID that got directed presence (not a subscriber) is not sent unavailable at the
block, though nothing reaches it after.
"""

from __future__ import annotations

import secrets

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.c2s import filters
from xmppd.errors import StanzaError
from xmppd.im.blocklist import STORE, BlockLists, matches
from xmppd.im.presence_stanzas import make_presence, readdressed
from xmppd.interfaces import IRoster, IXmppdPlugin
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stanza import MESSAGE_TYPES, PRESENCE_TYPES, Stanza

log = get_logger(__name__)

PRIORITY = 1000  # agreed across plugins: blocking first, archive 50, carbons 0, delivery -1000


@implementer(IXmppdPlugin)
class Blocking:
    name = "blocking"
    requires = ()

    def setup(self, ctx) -> defer.Deferred:
        reject_unknown_keys(ctx, ("max_items",))
        lists = BlockLists(ctx.open_store(STORE, "map"), ctx.storage.users)
        guard = self._guard = Guard(lists, ctx.domains, ctx.bounce, ctx.sessions)
        commands = Commands(ctx, lists, guard, ctx.option_int("max_items", 1000, minimum=1))
        ctx.feature(ns.BLOCKING)
        ctx.iq("get", ns.BLOCKING, "blocklist", commands.blocklist, to="self")
        ctx.iq("set", ns.BLOCKING, "block", commands.block, to="self")
        ctx.iq("set", ns.BLOCKING, "unblock", commands.unblock, to="self")
        for type, name in (("set", "blocklist"), ("get", "block"), ("get", "unblock")):
            ctx.iq(type, ns.BLOCKING, name, commands.wrong_type, to="self")
        for kind, types in (("message", MESSAGE_TYPES), ("presence", PRESENCE_TYPES)):
            for type in types:
                ctx.stanza(kind, type, ("bare", "full"), guard.inbound, PRIORITY)
                ctx.stanza(kind, type, "outgoing", guard.outbound, PRIORITY)
                ctx.stanza(kind, type, "remote", guard.leaving, PRIORITY)
        for type in ("get", "set"):
            ctx.stanza("iq", type, ("bare", "full"), guard.inbound, PRIORITY)
        for type in ("result", "error"):  # answers to a bare JID go to the IQ tracker
            ctx.stanza("iq", type, "full", guard.inbound, PRIORITY)
        ctx.session_filters(guard.watch)
        ctx.on(events.SESSION_CLOSED, guard.forget)
        ctx.on(events.SESSION_CLOSED, commands.forget_session)
        ctx.on(events.USER_DELETED, lists.forget)
        return defer.ensureDeferred(lists.load(ctx.domains))

    def teardown(self) -> None:
        """Stopping: the IQ filters leave the sessions (the context knows nothing of
        filters added to sessions)."""
        self._guard.release_all()


def blocked_error(element: domish.Element) -> domish.Element:
    """The §3.3 answer to what an account sent to a JID it blocked."""
    reply = StanzaError("not-acceptable", "you have blocked this JID").to_response(element)
    for child in reply.elements():
        if child.name == "error":
            child.addElement((ns.BLOCKING_ERRORS, "blocked"))
    return reply


class Guard:
    """The enforcement: chain links, and the IQ filter on the sessions of accounts that block
    someone (only those: the others keep the unfiltered, free path)."""

    def __init__(self, lists: BlockLists, domains, bounce, sessions) -> None:
        self._lists = lists
        self._domains = domains
        self._bounce = bounce
        self._resources = sessions.resources
        self._filtered: dict[object, object] = {}  # session -> undo of its IQ filter

    # -- stanzas for our accounts

    def inbound(self, stanza: Stanza, origin):
        if not self._lists:
            return None
        sender = stanza.sender
        if sender is None or (sender.user is None and sender.host in self._domains):
            return None  # the server itself (its answers, pushes, errors) is never blocked
        account = stanza.recipient.bare()
        if sender.bare() == account:
            return None
        if matches(self._lists.lookup(account), sender):
            if stanza.kind != "presence" and stanza.type in ("normal", "chat", "groupchat",
                                                             "headline", "get", "set"):
                self._bounce(stanza, "service-unavailable")
            return True
        if sender.user is None or sender.host not in self._domains or stanza.type == "error":
            return None
        # made by the server for a local account that blocked the recipient; not errors:
        # those the blocked JID must get (this plugin's own bounces among them)
        return True if matches(self._lists.lookup(sender.bare()), stanza.recipient) else None

    # -- what local clients send

    def outbound(self, stanza: Stanza, session):
        if not self._lists:
            return None
        recipient = stanza.recipient
        if recipient is None or recipient.bare() == session.account:
            return None
        if not matches(self._lists.lookup(session.account), recipient):
            return None
        if stanza.kind == "message" and stanza.type != "error":
            session.send(blocked_error(stanza.element))
        return True

    def leaving(self, stanza: Stanza, origin):
        """For another server: from a local account to a JID it blocked, dropped (the
        server's presence broadcast to a remote subscriber); errors go, the blocked JID
        must get them (this plugin's own bounces among them)."""
        if not self._lists or stanza.type == "error":
            return None
        sender = stanza.sender
        if sender is None or sender.user is None or sender.host not in self._domains:
            return None
        return True if matches(self._lists.lookup(sender.bare()), stanza.recipient) else None

    def watch(self, session) -> None:
        """A new session: filtered if its account blocks someone."""
        if self._lists.lookup(session.account) and session not in self._filtered:
            self._filtered[session] = session.filters.add(filters.IN, self.iq_filter)

    def refresh(self, account: JID) -> None:
        """The account's list changed: filter its sessions, or stop when it is empty."""
        for session in self._resources(account):
            if self._lists.lookup(account):
                self.watch(session)
            else:
                undo = self._filtered.pop(session, None)
                if undo is not None:
                    undo()

    def forget(self, session, *ignored) -> None:
        self._filtered.pop(session, None)

    def release_all(self) -> None:
        while self._filtered:
            _, undo = self._filtered.popitem()
            undo()

    def iq_filter(self, element: domish.Element, session):
        """A client's IQ to a JID its account blocked: refused before it is routed."""
        if element.name != "iq":
            return element
        items = self._lists.lookup(session.account)
        to = element.getAttribute("to")
        if not items or not to:
            return element
        try:
            recipient = parse_jid(to)
        except InvalidJID:
            return element  # the router answers jid-malformed
        if recipient.bare() == session.account or (recipient.user is None
                                                   and recipient.host in self._domains):
            return element  # itself, or its own server (ping, disco)
        if not matches(items, recipient):
            return element
        if element.getAttribute("type") in ("get", "set"):
            reply = blocked_error(element)
            reply["to"] = session.jid.full()
            session.send(reply)
        return None


class Commands:
    """The IQ answerers (§3.2–§3.5), pushes, and the presence a change shows or hides."""

    def __init__(self, ctx, lists: BlockLists, guard: Guard, max_items: int) -> None:
        self._lists = lists
        self._guard = guard
        self._sessions = ctx.sessions
        self._route = ctx.route
        self._query = ctx.query
        self._max_items = max_items
        self.asked: set = set()  # sessions that requested the list: they get pushes

    def forget_session(self, session, *ignored) -> None:
        self.asked.discard(session)

    def wrong_type(self, stanza: Stanza, origin) -> None:
        raise StanzaError("bad-request", "blocklist is an IQ get; block and unblock are sets")

    def blocklist(self, stanza: Stanza, origin):
        session = self._sessions.get(stanza.sender) if stanza.sender.resource else None
        if session is not None:
            self.asked.add(session)
        return _blocklist_element(self._lists.lookup(stanza.sender.bare()))

    def block(self, stanza: Stanza, origin) -> defer.Deferred:
        jids = _items(stanza.payload())
        if not jids:
            raise StanzaError("bad-request", "<block/> needs at least one <item/>")
        return defer.ensureDeferred(self._block(stanza.sender.bare(), jids))

    def unblock(self, stanza: Stanza, origin) -> defer.Deferred:
        jids = _items(stanza.payload())
        return defer.ensureDeferred(self._unblock(stanza.sender.bare(), jids or None))

    async def _block(self, account: JID, jids: list[JID]) -> None:
        before = self._lists.lookup(account)
        new = [jid for jid in jids if jid.full() not in before]
        if len(before) + len(new) > self._max_items:
            raise StanzaError("resource-constraint",
                              f"a block list holds at most {self._max_items} JIDs")
        await self._hide_from(account, new)  # while it still passes (the links drop it after)
        added, _ = await self._lists.change(account, add=[jid.full() for jid in new])
        self._guard.refresh(account)
        self._push(account, "block", added)

    async def _unblock(self, account: JID, jids: list[JID] | None) -> None:
        _, removed = await self._lists.change(
            account, remove=None if jids is None else [jid.full() for jid in jids])
        self._guard.refresh(account)
        if removed:
            self._push(account, "unblock", None if jids is None else removed)
            await self._show_to(account, removed)

    # -- pushes

    def _push(self, account: JID, name: str, items: list[str] | None) -> None:
        """``items`` None: the empty <unblock/> of unblock-all (§3.5)."""
        if items is not None and not items:
            return
        for session in self._sessions.resources(account):
            if session not in self.asked:
                continue
            push = domish.Element((None, "iq"))
            push["type"] = "set"
            push["id"] = f"block-{secrets.token_hex(6)}"
            push["from"] = account.full()
            push["to"] = session.jid.full()
            command = push.addElement((ns.BLOCKING, name))
            for item in items or ():
                command.addElement("item")["jid"] = item
            session.send(push)

    # -- presence

    async def _hide_from(self, account: JID, jids: list[JID]) -> None:
        """§3.3: unavailable from every available resource to the newly blocked JIDs that
        receive the account's presence."""
        available = [s for s in self._sessions.resources(account) if s.available]
        if not available or not jids:
            return
        for contact in await self._receivers(account, jids):
            for session in available:
                self._send(make_presence("unavailable", session.jid, contact), session.jid,
                           contact)

    async def _show_to(self, account: JID, removed: list[str]) -> None:
        """§3.4: the current presence to the unblocked JIDs that receive it, and a probe to
        those whose presence the account receives (it missed their changes)."""
        roster = self._query(IRoster)
        if roster is None:
            return
        still = self._lists.lookup(account)
        items = frozenset(removed)
        contacts = await roster.contacts(account)
        available = [s for s in self._sessions.resources(account)
                     if s.available and s.presence is not None]
        for contact in contacts.subscribers:
            if matches(items, contact) and not matches(still, contact):
                for session in available:
                    self._send(readdressed(session.presence, session.jid, contact),
                               session.jid, contact)
        if available:
            for contact in contacts.subscriptions:
                if matches(items, contact) and not matches(still, contact):
                    self._send(make_presence("probe", account, contact), account, contact)

    async def _receivers(self, account: JID, jids: list[JID]) -> list[JID]:
        """The subscribers (and full JIDs of subscribers) among ``jids``'s matches."""
        roster = self._query(IRoster)
        if roster is None:
            return []
        contacts = await roster.contacts(account)
        items = frozenset(jid.full() for jid in jids)
        subscribers = set(contacts.subscribers)
        found = [contact for contact in contacts.subscribers if matches(items, contact)]
        found += [jid for jid in jids
                  if jid.resource is not None and jid.user is not None
                  and jid.bare() in subscribers]
        return found

    def _send(self, element: domish.Element, sender: JID, recipient: JID) -> None:
        result = self._route(Stanza(element, sender, recipient), None)
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: log.failure("blocking presence to {to} failed",
                                                          failure, to=recipient))


def _items(payload: domish.Element) -> list[JID]:
    """The JIDs of a command's items: one without 'jid' is bad-request, one that is not a
    JID jid-malformed (XEP-0191 §3.3: the standard stanza errors apply)."""
    jids = []
    for item in payload.elements():
        if item.name != "item":
            continue
        text = item.getAttribute("jid")
        if text is None:
            raise StanzaError("bad-request", "an <item/> without 'jid'")
        try:
            jids.append(parse_jid(text))
        except InvalidJID as error:
            raise StanzaError("jid-malformed", f"{text!r}: {error}") from None
    return jids


def _blocklist_element(items: frozenset[str]) -> domish.Element:
    blocklist = domish.Element((ns.BLOCKING, "blocklist"))
    for item in sorted(items):
        blocklist.addElement("item")["jid"] = item
    return blocklist


blocking = Blocking()
