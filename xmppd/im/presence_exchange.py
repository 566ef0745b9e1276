# -*- test-case-name: tests.unit.test_presence -*-
"""Presence exchange for local accounts (RFC 6121 §4): broadcasts, probes, directed presence.

A session keeps its own presence state (``available``, ``priority``, its last ``presence``);
this class keeps the one thing sessions do not: whom each session sent directed presence to
(§4.6), so its unavailable presence reaches them as well.

Decisions worth knowing:

* An account is implicitly subscribed to its own presence (§4.2.2): a broadcast goes to every
  available resource of the account, the sender included, with 'to' set to each resource's
  full JID, and a newly available resource is shown the presence of the others at once.
* Directed presence is remembered per recipient as addressed; when the session goes
  unavailable, recipients already reached by the broadcast (their bare JID is a 'from'
  contact, or the account itself) are not sent a second unavailable.
* Directed presence sent while not available is remembered too, so those recipients also
  learn when the session ends.
* A probe from an entity without a 'from' subscription is answered with 'unsubscribed' from
  the account's bare JID (§4.3.2 rule 1), the same answer whether the account exists or not.
  A probe from the account itself is answered like one from a subscriber.
* Presence from remote entities is delivered like any other, and noted in ``remote_seen``
  (xmppd.im.remote_presence) so a lost s2s link can end it.
* In a cluster (``ctx.remote_sessions()``, None on a single node) an account's sessions on
  other nodes count too: presence for them is handed to their session objects, which carry
  it to their node; a probe or a new subscriber they must answer is passed to their node
  (``present``), which holds their last presence. Without a cluster: one call per delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import events
from xmppd.errors import StanzaError
from xmppd.im.contacts import Contacts
from xmppd.im.presence_stanzas import addressed_copy, make_presence, readdressed
from xmppd.im.remote_presence import RemotePresenceBook
from xmppd.interfaces import IRoster
from xmppd.jid import JID, parse_jid
from xmppd.logs import get_logger
from xmppd.stanza import Stanza
from xmppd.xml.stored import stanza_from_text, stanza_to_text

log = get_logger(__name__)

# How many entities one session may have sent directed presence to at once: the memory a
# client can make the server keep is bounded.
MAX_DIRECTED = 1000


class PresenceExchange:
    """Who sees a local account's presence, and what local accounts see of others'."""

    def __init__(self, ctx, roster: Callable[[], IRoster]) -> None:
        """``ctx``: the presence plugin's context (sessions, route, emit, domains); its
        bound methods are kept, so a broadcast pays no look-up per recipient."""
        self._emit = ctx.emit
        self._route = ctx.route
        self._resources = ctx.sessions.resources
        self._session = ctx.sessions.get
        self._domains = ctx.domains
        self._remote = ctx.remote_sessions  # the cluster's other nodes, or None
        self._roster = roster  # looked up on use: the roster plugin may be reloaded
        self._directed: dict[object, set[JID]] = {}  # session -> its directed presence recipients
        self.remote_seen = RemotePresenceBook()

    # -- what a local client sends

    async def broadcast_available(self, session, element: domish.Element, priority: int) -> None:
        """Initial or updated presence (§4.2.2, §4.4.2); ``element`` is already checked."""
        initial = not session.available
        presence = readdressed(element, session.jid, None)
        session.available, session.priority, session.presence = True, priority, presence
        contacts = await self.contacts(session.account)
        if initial and session.available:
            for contact in contacts.subscriptions:
                self.route(make_presence("probe", session.account, contact), session.account,
                           contact)
        if session.presence is presence:  # not superseded or ended while we read the roster
            self._send_to_all(session, presence, contacts.subscribers, echo=True)
        if not (initial and session.available):
            return
        self._show_own_resources(session)
        for request in await self._roster().pending_requests(session.account):
            if session.available:
                session.send(request)  # §3.1.3: stored requests, at every initial presence
        if session.available:
            await self._emit(events.RESOURCE_AVAILABLE, session)

    async def broadcast_unavailable(self, session, element: domish.Element | None = None) -> None:
        """Unavailable presence (§4.5.2), the client's own or, when ``element`` is None because
        the session ended, one the server makes."""
        was_available = session.available
        ended = element is None
        if ended:
            element = make_presence("unavailable", session.jid, None)
        session.available, session.priority, session.presence = False, 0, None
        if not self.available(session.account):
            self.remote_seen.forget_account(session.account)
        directed = self._directed.pop(session, set())
        reached: set[JID] = set()  # bare JIDs the broadcast itself reaches
        if was_available:
            contacts = await self.contacts(session.account)
            self._send_to_all(session, element, contacts.subscribers, echo=not ended)
            reached = {session.account, *contacts.subscribers}
        for recipient in directed:
            if recipient.bare() not in reached:
                self.route(readdressed(element, session.jid, recipient), session.jid, recipient)
        if was_available:
            await self._emit(events.RESOURCE_UNAVAILABLE, session)

    # -- a session moving to another node of a cluster (xmppd.c2s.hooks.add_state_carrier)

    def export_session(self, session) -> dict | None:
        """Its presence and who got its directed presence, for the node it moves to."""
        directed = self._directed.get(session)
        if not session.available and not directed:
            return None
        return {"presence": stanza_to_text(session.presence) if session.available else None,
                "priority": session.priority,
                "directed": sorted(jid.full() for jid in directed or ())}

    async def restore_session(self, session, state: dict) -> None:
        """The state ``export_session`` made, on the session adopted here: available as it
        was (nobody is told again: they saw it available), and RESOURCE_AVAILABLE for this
        node's listeners (the cluster's registry, offline delivery)."""
        directed = {parse_jid(str(jid)) for jid in state.get("directed", ())}
        if directed:
            self._directed[session] = directed
        text = state.get("presence")
        presence = stanza_from_text(str(text)) if text else None
        if presence is None:
            return
        session.available, session.priority = True, int(state.get("priority", 0))
        session.presence = presence
        await self._emit(events.RESOURCE_AVAILABLE, session)

    def forget_session(self, session) -> None:
        """A session that moved to another node: its state goes, nobody is told."""
        self._directed.pop(session, None)

    def directed(self, session, element: domish.Element, recipient: JID) -> None:
        """Directed presence (§4.6): route it, and remember who must see it end.

        Raises StanzaError('resource-constraint') past MAX_DIRECTED recipients.
        """
        recipients = self._directed.setdefault(session, set())
        if element.getAttribute("type") == "unavailable":
            recipients.discard(recipient)
        elif recipient not in recipients:
            if len(recipients) >= MAX_DIRECTED:
                raise StanzaError("resource-constraint",
                                  f"directed presence to more than {MAX_DIRECTED} entities")
            recipients.add(recipient)
        self.route(readdressed(element, session.jid, recipient), session.jid, recipient)

    # -- what arrives for a local account

    async def answer_probe(self, account: JID, prober: JID) -> None:
        """§4.3.2: the last presence of each available resource, to subscribers only."""
        if prober.bare() != account:
            state = await self._roster().get_state(account, prober.bare())
            if not state.has_from:
                self.route(make_presence("unsubscribed", account, prober.bare()), account,
                           prober.bare())
                return
        resources = self.available(account)
        elsewhere = self._remote_available(account)
        if not resources and not elsewhere:
            self.route(make_presence("unavailable", account, prober), account, prober)
        for session in resources:
            self.route(readdressed(session.presence, session.jid, prober), session.jid, prober)
        for session in elsewhere:
            self._remote().present(session, prober)

    def deliver_to_account(self, element: domish.Element, account: JID,
                           sender: JID | None = None) -> None:
        """Presence for a bare JID reaches every available resource (RFC 6121 §8.5.2.1.2);
        with none available it is dropped (§8.5.2.2.2). Give ``sender`` for presence that
        remote entities' presence tracking must see.

        Called once per recipient of every broadcast: kept to one pass over the sessions."""
        shown = False
        for session in self._resources(account):
            if session.available:
                session.send(element)
                shown = True
        remote = self._remote()
        if remote is not None:  # the session's node checks it is available
            for session in remote.resources(account):
                session.send(element)
                shown = shown or session.available
        if sender is not None:
            self._note_remote(element, account, sender, shown)

    def deliver_to_resource(self, element: domish.Element, full_jid: JID,
                            sender: JID | None = None) -> None:
        """Presence for a full JID reaches that resource, or nobody (§8.5.3.2.2)."""
        session = self._session(full_jid)
        if session is None and self._remote() is not None:
            session = self._remote().get(full_jid)
        if session is not None:
            session.send(element)
        shown = session is not None and session.available
        self._note_remote(element, full_jid.bare(), sender, shown)

    # -- what subscription changes show (§3.1.5, §3.2.2, §3.3.3)

    def send_presence(self, account: JID, contact: JID) -> None:
        """A new subscriber sees the current presence of each available resource."""
        for session in self.available(account):
            self.route(readdressed(session.presence, session.jid, contact), session.jid, contact)
        for session in self._remote_available(account):
            self._remote().present(session, contact)

    def send_unavailable(self, account: JID, contact: JID) -> None:
        """A former subscriber sees each available resource go unavailable."""
        for session in self.available(account) + self._remote_available(account):
            self.route(make_presence("unavailable", session.jid, contact), session.jid, contact)

    # -- helpers

    async def contacts(self, account: JID) -> Contacts:
        """From memory while the account is online (the roster plugin keeps it there)."""
        return await self._roster().contacts(account)

    def available(self, account: JID) -> list:
        """The account's sessions that sent available presence."""
        return [s for s in self._resources(account) if s.available]

    def _remote_available(self, account: JID) -> list:
        """The account's available sessions on other nodes of a cluster; [] without one."""
        remote = self._remote()
        if remote is None:
            return []
        return [s for s in remote.resources(account) if s.available]

    def route(self, element: domish.Element, sender: JID, recipient: JID) -> None:
        """Send a stanza the server made for an account on its way (local or remote)."""
        stanza = Stanza(element, sender, recipient)
        result = self._route(stanza, None)
        if isinstance(result, defer.Deferred):
            result.addErrback(lambda failure: log.failure("routing {stanza!r} failed", failure,
                                                          stanza=stanza))

    def _send_to_all(self, session, element: domish.Element, subscribers: Iterable[JID],
                     echo: bool) -> None:
        """A broadcast: to the subscribers, to the account's other available resources and,
        with ``echo``, back to the sender. ``element`` must not change afterwards: the copies
        share its children."""
        sender = session.jid
        sender_text = sender.full()
        route = self.route
        for contact in subscribers:
            route(addressed_copy(element, sender_text, contact.full()), sender, contact)
        own = [s for s in self.available(session.account) if s is not session]
        own += self._remote_available(session.account)
        if echo:
            own.append(session)
        for resource in own:
            resource.send(addressed_copy(element, sender_text, resource.jid.full()))

    def _note_remote(self, element: domish.Element, account: JID, sender: JID | None,
                     shown: bool) -> None:
        """Remember remote available presence an available account was shown; forget it at
        the remote entity's unavailable presence."""
        if sender is None or sender.host in self._domains:
            return
        type = element.getAttribute("type")
        if type == "unavailable":
            self.remote_seen.unavailable(account, sender)
        elif type is None and shown:
            self.remote_seen.available(account, sender)

    def _show_own_resources(self, session) -> None:
        for other in self.available(session.account):
            if other is not session and other.presence is not None:
                session.send(readdressed(other.presence, other.jid, session.jid))
        for other in self._remote_available(session.account):
            self._remote().present(other, session.jid)
