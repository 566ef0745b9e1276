# -*- test-case-name: tests.unit.test_roster_cache -*-
"""An account's roster as presence needs it: who gets its presence, and whose it gets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Contacts:
    """An account's roster, split the two ways presence needs it."""

    subscribers: tuple[JID, ...]  # 'from' or 'both': they get the account's presence
    subscriptions: tuple[JID, ...]  # 'to' or 'both': the account gets theirs (probed)


def contacts_of(items: Iterable) -> Contacts:
    """Split RosterItems by direction; an item whose contact does not parse is skipped."""
    subscribers, subscriptions = [], []
    for item in items:
        try:
            contact = parse_jid(item.contact)
        except InvalidJID:
            log.warn("roster item with a bad JID skipped: {contact!r}", contact=item.contact)
            continue
        if item.subscription in ("from", "both"):
            subscribers.append(contact)
        if item.subscription in ("to", "both"):
            subscriptions.append(contact)
    return Contacts(tuple(subscribers), tuple(subscriptions))
