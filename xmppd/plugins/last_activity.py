"""XEP-0012 last activity: the server's uptime, and when an account was last online.

- To the host (§6): the seconds since this server started (since the plugin was set up, which
  is at start-up; a reload starts the count again).
- To an account's bare JID (§4), answered by the server on the account's behalf: 0 seconds
  while one of its resources is available; otherwise the seconds since its last session ended,
  with the status text of the unavailable presence that ended it, if any. Only those allowed
  to see the account's presence may ask (§4, §8: anything else is a presence leak): the
  account itself and contacts with a 'from' or 'both' subscription. Everyone else gets
  ``forbidden``, which §4 mandates; an account that does not exist is ``service-unavailable``,
  as for any IQ to it (RFC 6121 §8.5.1), asked first so that no one learns more than that.
  An account that has not logged out since this plugin started keeping the times has no
  last activity to tell: ``item-not-found``.
- To a full JID the IQ is the client's to answer; the router delivers it.

What is kept, per account in the keyval store ``last_activity``: the time its last session
ended and that status, written on SESSION_CLOSED when no other resource of it is still bound
(a hibernating session still counts: it can come back). The status comes from the client's own
broadcast unavailable presence, seen on its way out (an outgoing chain link that never stops
it); a session that simply drops has none. Deleting the account deletes the entry with the
rest of its generic data.
"""

from __future__ import annotations

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IRoster, IXmppdPlugin
from xmppd.jid import JID
from xmppd.options import no_options

PRESENCE_PRIORITY = 10  # only reads the presence; any order among the outgoing links will do


@implementer(IXmppdPlugin)
class LastActivity:
    name = "last_activity"
    requires = ("roster",)

    configure = staticmethod(no_options)  # checked before the database opens

    def setup(self, ctx) -> None:
        self.ctx = ctx
        self.clock = ctx.reactor
        self.started = ctx.reactor.seconds()
        self.store = ctx.open_store("last_activity", "keyval")
        self._status: dict[object, str | None] = {}  # session -> its unavailable status text
        ctx.feature(ns.LAST)
        ctx.iq("get", ns.LAST, "query", self.on_host)
        ctx.iq("get", ns.LAST, "query", self.on_account, to=("bare", "self"))
        ctx.stanza("presence", "unavailable", "outgoing", self.on_unavailable, PRESENCE_PRIORITY)
        ctx.stanza("presence", "available", "outgoing", self.on_available, PRESENCE_PRIORITY)
        ctx.on(events.SESSION_CLOSED, self.on_session_closed)

    # -- answers

    def on_host(self, stanza, origin) -> domish.Element:
        return _query(self.clock.seconds() - self.started)

    async def on_account(self, stanza, origin) -> domish.Element:
        account = (stanza.recipient or stanza.sender).bare()
        if not await self.ctx.storage.users.user_exists(account.user, account.host):
            raise StanzaError("service-unavailable")
        if not await self._may_see_presence(account, stanza.sender):
            raise StanzaError("forbidden")
        if any(session.available for session in self.ctx.sessions.resources(account)):
            return _query(0)
        last = await self.store.get(account.full())
        if last is None:
            raise StanzaError("item-not-found", "no logout seen since last activity was kept")
        return _query(self.clock.seconds() - last["at"], last.get("status"))

    async def _may_see_presence(self, account: JID, asker: JID | None) -> bool:
        """XEP-0012 §4: the account itself, or a contact subscribed to its presence."""
        if asker is None or asker.bare() == account:
            return True
        roster = self.ctx.query(IRoster)
        if roster is None:
            return False
        state = await roster.get_state(account, asker.bare())
        return state.has_from

    # -- what is kept

    def on_unavailable(self, stanza, session) -> None:
        if stanza.recipient is None:  # broadcast, not directed
            self._status[session] = _status_text(stanza.element)
        return None

    def on_available(self, stanza, session) -> None:
        if stanza.recipient is None:
            self._status.pop(session, None)
        return None

    def on_session_closed(self, session, polite: bool = False):
        status = self._status.pop(session, None)
        account = session.account
        if self.ctx.sessions.resources(account):
            return None  # another resource is still bound: the account is not gone
        return self.store.set(account.full(), {"at": self.clock.seconds(), "status": status})


def _query(seconds: float, status: str | None = None) -> domish.Element:
    query = domish.Element((ns.LAST, "query"))
    query["seconds"] = str(max(0, int(seconds)))
    if status:
        query.addContent(status)
    return query


def _status_text(presence: domish.Element) -> str | None:
    """The <status/> text of a presence: the one without xml:lang, else the first."""
    found = [child for child in presence.elements() if child.name == "status"]
    if not found:
        return None
    plain = [child for child in found if not child.hasAttribute((ns.XML, "lang"))]
    return str((plain or found)[0]) or None


last_activity = LastActivity()
