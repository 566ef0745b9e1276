# -*- test-case-name: tests.unit.test_roster -*-
"""Roster items as XML (RFC 6121 §2.1.2): what the roster plugin pushes and answers, and
what an XEP-0227 export writes, from one definition."""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.storage.records import RosterItem


def item_element(item: RosterItem) -> domish.Element:
    """An item as clients see it (RFC 6121 §2.1.2): no trace of a pending inbound request."""
    element = domish.Element((ns.ROSTER, "item"))
    element["jid"] = item.contact
    if item.name:
        element["name"] = item.name
    element["subscription"] = item.subscription
    if item.pending_out:
        element["ask"] = "subscribe"
    if item.approved:
        element["approved"] = "true"
    for group in item.groups:
        element.addElement("group", content=group)
    return element


def removed_item_element(contact: str) -> domish.Element:
    """The item of a roster push that removes ``contact`` (RFC 6121 §2.5)."""
    element = domish.Element((ns.ROSTER, "item"))
    element["jid"] = contact
    element["subscription"] = "remove"
    return element
