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

Logouts are written in batches, not one write per logout: an entry waits in memory (where
the answers read it first) for up to ``FLUSH_DELAY`` seconds with the others that came
meanwhile, a later logout of the same account replacing it, and all go out together in one
transaction (``set_many``); the plugin's teardown (a reload, the server's shutdown) writes
what is waiting. A write per logout kept a write pending at all times under a login load,
and a pending write sends every other read of the login path (credentials, roster) to the
database thread behind it (xmppd.storage.sqlite). A crash loses at most the last
``FLUSH_DELAY`` seconds of logout times.
"""

from __future__ import annotations

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IRoster, IXmppdPlugin
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.options import no_options

log = get_logger(__name__)

PRESENCE_PRIORITY = 10  # only reads the presence; any order among the outgoing links will do
FLUSH_DELAY = 2.0  # seconds a logout time may wait in memory for others to be written with


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
        self._waiting: dict[str, dict] = {}  # owner -> its last activity, not written yet
        self._writing: dict[str, dict] = {}  # owner -> its last activity, being written
        self._flush_call = None
        ctx.feature(ns.LAST)
        ctx.iq("get", ns.LAST, "query", self.on_host)
        ctx.iq("get", ns.LAST, "query", self.on_account, to=("bare", "self"))
        ctx.stanza("presence", "unavailable", "outgoing", self.on_unavailable, PRESENCE_PRIORITY)
        ctx.stanza("presence", "available", "outgoing", self.on_available, PRESENCE_PRIORITY)
        ctx.on(events.SESSION_CLOSED, self.on_session_closed)
        ctx.on(events.USER_DELETED, self.on_user_deleted)

    def teardown(self) -> None:
        """Write what is waiting: the store outlives the plugin, and storage closes after
        the plugins, behind the writes already queued."""
        self.flush()

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
        last = await self._last(account.full())
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

    def on_session_closed(self, session, polite: bool = False) -> None:
        status = self._status.pop(session, None)
        if getattr(session, "moved", False):
            return  # it goes on on another node of the cluster
        account = session.account
        if self.ctx.sessions.resources(account):
            return  # another resource is still bound: the account is not gone
        self._waiting[account.full()] = {"at": self.clock.seconds(), "status": status}
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(FLUSH_DELAY, self.flush)

    def on_user_deleted(self, account: JID) -> None:
        """The account is gone with its stored entry: a waiting one must not bring it back."""
        self._waiting.pop(account.userhost(), None)

    async def _last(self, owner: str) -> dict | None:
        """The account's last activity: waiting, being written, or stored."""
        last = self._waiting.get(owner) or self._writing.get(owner)
        return last if last is not None else await self.store.get(owner)

    def flush(self) -> None:
        """Write every waiting entry (each the latest of its account) in one transaction;
        failures logged."""
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        batch, self._waiting = self._waiting, {}
        if not batch:
            return
        self._writing.update(batch)
        d = self.store.set_many(batch)
        d.addErrback(_write_failed)
        d.addBoth(self._written, batch)

    def _written(self, _, batch: dict[str, dict]) -> None:
        for owner, last in batch.items():
            if self._writing.get(owner) is last:
                del self._writing[owner]


def _write_failed(failure) -> None:
    log.failure("could not keep an account's last activity", failure)


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
