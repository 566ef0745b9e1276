# -*- test-case-name: tests.unit.test_presence_remote -*-
"""Remote presence that local accounts were shown, so that a lost s2s link can end it.

When the link to a domain drops, nothing more will come from its entities, not even their
unavailable presence: without help, a client would show them online for ever (the stale
presence XEP-0310 describes). So the server remembers which remote full JIDs each local account
currently sees available, and when the domain's link goes down it tells the account they are
gone. When a link to that domain comes back, the accounts probe their contacts there again.

Decisions worth knowing:

* Only what is currently available is kept: unavailable presence from a full JID forgets it,
  from a bare JID forgets all of its resources, and an account with no available resource left
  forgets everything (it would not be shown the unavailable presence anyway).
* Tracking is per account, not per resource: at link loss every available resource of the
  account gets the unavailable presence, even one a directed presence never reached (for it the
  unavailable is news of nothing, which clients ignore).
* Memory is bounded: at most MAX_PER_ACCOUNT remote full JIDs per account (presence past that
  is still delivered, only not remembered), and the domains awaiting a re-probe are at most
  MAX_LOST_DOMAINS (the oldest is dropped).
* Every link drop counts, incoming or outgoing: either way the domain's presence can no longer
  be trusted. Only the first link up after a drop re-probes, once per (account, contact) pair:
  the link-up that a login's own probes cause, or the second link of a pair coming up, does not
  probe again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xmppd.im.presence_stanzas import make_presence
from xmppd.jid import JID
from xmppd.logs import get_logger

if TYPE_CHECKING:  # the exchange keeps a RemotePresenceBook: no import at run time
    from xmppd.im.presence_exchange import PresenceExchange

log = get_logger(__name__)

MAX_PER_ACCOUNT = 10_000
MAX_LOST_DOMAINS = 1_000


class RemotePresenceBook:
    """Which remote full JIDs each local account has been shown available, by domain."""

    def __init__(self, limit: int = MAX_PER_ACCOUNT) -> None:
        self.limit = limit
        self._seen: dict[JID, dict[str, set[JID]]] = {}  # account -> domain -> full JIDs

    def available(self, account: JID, sender: JID) -> bool:
        """Remember that ``account`` was shown ``sender`` available; False past the limit."""
        domains = self._seen.setdefault(account, {})
        known = domains.get(sender.host, ())
        if sender in known:
            return True
        if self.count(account) >= self.limit:
            log.warn("{account} sees more than {limit} remote entities; {sender} is not "
                     "remembered", account=account, limit=self.limit, sender=sender)
            return False
        domains.setdefault(sender.host, set()).add(sender)
        return True

    def unavailable(self, account: JID, sender: JID) -> None:
        """Forget ``sender``; a bare JID stands for all of its resources."""
        domains = self._seen.get(account)
        known = domains.get(sender.host) if domains else None
        if not known:
            return
        if sender.is_bare():
            known.difference_update([jid for jid in known if jid.bare() == sender])
        else:
            known.discard(sender)
        if not known:
            del domains[sender.host]
            if not domains:
                del self._seen[account]

    def forget_account(self, account: JID) -> None:
        self._seen.pop(account, None)

    def lost(self, domain: str) -> dict[JID, set[JID]]:
        """Forget and return, per account, the full JIDs at ``domain`` it saw available."""
        lost = {}
        for account, domains in list(self._seen.items()):
            jids = domains.pop(domain, None)
            if jids:
                lost[account] = jids
            if not domains:
                del self._seen[account]
        return lost

    def count(self, account: JID) -> int:
        return sum(len(jids) for jids in self._seen.get(account, {}).values())


class LinkPresence:
    """What the presence plugin does when an s2s link to a domain goes down or comes up."""

    def __init__(self, sessions, exchange: PresenceExchange,
                 max_lost_domains: int = MAX_LOST_DOMAINS) -> None:
        self._sessions = sessions  # the plugin context's read-only view
        self._exchange = exchange
        self._max_lost = max_lost_domains
        self._lost: dict[str, None] = {}  # domains down since their last re-probe, oldest first

    def link_down(self, domain: str) -> None:
        """Each remote full JID at ``domain`` goes unavailable for the accounts that saw it."""
        for account, jids in self._exchange.remote_seen.lost(domain).items():
            for session in self._exchange.available(account):
                for jid in sorted(jids, key=JID.full):
                    session.send(make_presence("unavailable", jid, session.jid))
        self._lost.pop(domain, None)
        self._lost[domain] = None
        if len(self._lost) > self._max_lost:
            del self._lost[next(iter(self._lost))]

    async def link_up(self, domain: str) -> None:
        """After a drop, available accounts probe their 'to'/'both' contacts at ``domain``."""
        if domain not in self._lost:
            return
        del self._lost[domain]
        accounts = {session.account for session in self._sessions.all()
                    if session.available}
        for account in sorted(accounts, key=JID.full):
            contacts = (await self._exchange.contacts(account)).subscriptions
            if not self._exchange.available(account):
                continue  # gone while the roster was read
            for contact in contacts:
                if contact.host == domain:
                    self._exchange.route(make_presence("probe", account, contact), account,
                                         contact)
