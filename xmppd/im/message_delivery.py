# -*- test-case-name: tests.unit.test_router -*-
"""Message delivery for local accounts (RFC 6121 §8.5.2, §8.5.3): the last link of the chain.

Every other link (archive, copies to other resources, blocking) runs before these; what
reaches them is delivered to sessions, kept for an offline account through
``IOfflineDelivery`` (the offline plugin), or refused. The recipient choice makes one pass
over an account's sessions per message: it is on the benchmarked path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer

from xmppd.interfaces import IOfflineDelivery
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.stanza import Stanza

log = get_logger(__name__)

STORABLE = frozenset(("normal", "chat", "headline"))  # to an account; groupchat is not


class MessageDelivery:
    """The delivery links, one per target; each consumes the message (True or a Deferred)."""

    def __init__(self, sessions, query: Callable, bounce: Callable,
                 deliver_to_all: bool = False) -> None:
        self.sessions = sessions  # get(full_jid), resources(bare_jid)
        self.query = query  # the server's provider look-up, for IOfflineDelivery
        self.bounce = bounce  # bounce(stanza, condition)
        self.deliver_to_all = deliver_to_all

    def links(self) -> tuple[tuple[str, Callable], ...]:
        """(target, link) for every target a message may have; one registration per type."""
        return (("full", self.to_full), ("bare", self.to_bare), ("host", self.to_host))

    def to_full(self, stanza: Stanza, origin):
        """§8.5.3.1: to a connected resource, available or not; §8.5.3.2.1: else, for
        normal, chat and headline, as if to the bare JID; anything else is refused."""
        session = self.sessions.get(stanza.recipient)
        if session is not None:
            session.send(stanza.element)
            return True
        if stanza.type in STORABLE:
            return self._to_account(stanza, stanza.recipient.bare())
        if stanza.type != "error":
            self.bounce(stanza, "service-unavailable")
        return True

    def to_bare(self, stanza: Stanza, origin):
        """§8.5.2: normal, chat and headline go to the account; groupchat is refused and
        errors are dropped."""
        type = stanza.type
        if type in STORABLE:
            return self._to_account(stanza, stanza.recipient)
        if type == "groupchat":
            self.bounce(stanza, "service-unavailable")
        return True

    def to_host(self, stanza: Stanza, origin) -> bool:
        """§8.5.1: a message to the server itself that no plugin took is refused (errors and
        headlines are dropped)."""
        if stanza.type not in ("error", "headline"):
            self.bounce(stanza, "service-unavailable")
        return True

    def _to_account(self, stanza: Stanza, account: JID):
        chosen = recipients(self.sessions.resources(account),
                            self.deliver_to_all or stanza.type == "headline")
        if chosen:
            element = stanza.element
            for session in chosen:
                session.send(element)
            return True
        if stanza.type == "headline":
            return True  # headlines are not kept (§8.5.2.2.1)
        return self._store_offline(stanza)

    def _store_offline(self, stanza: Stanza):
        offline = self.query(IOfflineDelivery)
        if offline is None:
            self.bounce(stanza, "service-unavailable")
            return True
        d = defer.maybeDeferred(offline.store, stanza)

        def stored(kept: bool) -> bool:
            if not kept:
                self.bounce(stanza, "service-unavailable")
            return True

        def failed(failure) -> bool:
            log.failure("offline storage failed for {stanza!r}", failure, stanza=stanza)
            self.bounce(stanza, "internal-server-error")
            return True

        return d.addCallbacks(stored, failed)


def recipients(resources: Iterable, everyone: bool) -> list:
    """§8.5.2.1.1: of an account's ``resources``, the available ones of non-negative
    priority; unless ``everyone``, only those of the highest priority. Public so that
    plugins that must know who gets a message to a bare JID (carbons) ask the same rule
    instead of copying it. One pass, on every message."""
    chosen: list = []
    top = 0
    for session in resources:
        if not session.available:
            continue
        priority = session.priority
        if priority < 0:
            continue
        if everyone or (chosen and priority == top):
            chosen.append(session)
        elif not chosen or priority > top:
            chosen = [session]
            top = priority
    return chosen


def message_recipients(sessions, stanza: Stanza, deliver_to_all: bool = False) -> list:
    """The sessions MessageDelivery hands ``stanza`` (a message to one of our accounts) to,
    by the same rules as ``to_full`` and ``to_bare``, without delivering: for plugins that
    act on the account's other sessions (carbons). Empty when it would be stored offline or
    refused."""
    recipient = stanza.recipient
    if recipient.resource is not None:
        session = sessions.get(recipient)
        if session is not None:
            return [session]
    if stanza.type not in STORABLE:
        return []
    return recipients(sessions.resources(recipient.bare()),
                      deliver_to_all or stanza.type == "headline")
