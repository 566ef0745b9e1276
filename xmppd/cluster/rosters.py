# -*- test-case-name: tests.unit.test_cluster_relays -*-
"""Roster changes across the cluster (RFC 6121 §2.1.6 roster pushes on every node).

A change stored on one node (a roster set or remove, or a subscription state changed by
presence: subscribe, subscribed, unsubscribe, unsubscribed, whichever node the stanza was
routed on) is told by the roster plugin as ``events.ROSTER_CHANGED``; it goes out as news
(xmppd.cluster.broadcast) with the push's ``<item/>`` and roster version, and every other
node emits it as ``events.ROSTER_CHANGED_ELSEWHERE``: the roster plugin there drops the
account's roster it keeps in memory and pushes the item to its interested resources.

The news is sent after the write landed in the shared database, so a node that hears it
reads the new roster; between the write and the news (a Redis round trip) a node may still
use the roster it had.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.words.xish import domish

from xmppd import events, ns
from xmppd.cluster.broadcast import Broadcast
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.xml.stored import stanza_from_text, stanza_to_text

TOPIC = "roster"


def encode(account: JID, version: int, item: domish.Element) -> str:
    """``ACCOUNT VERSION\\n<item/>`` (the item as a jabber:iq:roster element)."""
    return f"{account.userhost()} {int(version)}\n{stanza_to_text(item)}"


def decode(text: str) -> tuple[JID, int, domish.Element]:
    """The account, version and item of ``encode``'s text; ValueError if it is not that."""
    head, _, xml = text.partition("\n")
    account_text, _, version = head.partition(" ")
    try:
        account = parse_jid(account_text)
    except InvalidJID as error:
        raise ValueError(f"bad account: {error}") from None
    item = stanza_from_text(xml)
    if account.resource is not None or not account.user or item is None \
            or (item.uri, item.name) != (ns.ROSTER, "item") or not item.getAttribute("jid"):
        raise ValueError("not an account and a roster item")
    return account, int(version), item


def relay_rosters(bus, broadcast: Broadcast) -> list[Callable[[], None]]:
    """Wire the server's event ``bus`` to the other nodes; returns the undo functions."""
    return broadcast.relay(bus, TOPIC, events.ROSTER_CHANGED, events.ROSTER_CHANGED_ELSEWHERE,
                           encode, decode,
                           "roster change")
