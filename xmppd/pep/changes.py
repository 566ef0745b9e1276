# -*- test-case-name: tests.unit.test_pep_account -*-
"""What an account's own client changed on its PEP nodes, told to other plugins as
``events.PEP_CHANGED`` so that conversions (bookmarks, avatars) react to it.

Only a client's publish and retract are told, read from its IQ once the service accepted
it: what the server publishes on the account's behalf (``IPep``) is not, so one conversion
writing a node another conversion reads can never start a loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.jid import JID


@dataclass(frozen=True)
class PepChange:
    """One item published (``payload`` its payload, None for an item without one) or
    retracted (``retracted`` True) on ``node`` of ``account``'s PEP service; retracted
    with no ``item_id``: every item went (the node purged or deleted, XEP-0060 §8.4, §8.5)."""

    account: JID
    node: str
    item_id: str | None
    payload: domish.Element | None = None
    retracted: bool = False


def _child(element: domish.Element | None, name: str) -> domish.Element | None:
    if element is None:
        return None
    return next((c for c in element.elements() if c.name == name), None)


def changes_of(account: JID, request: domish.Element,
               reply: domish.Element | None) -> list[PepChange]:
    """The changes an accepted ``<pubsub/>`` set made: a publish (its item id from the
    reply when the service made one up), the items of a retract, a purge or a delete;
    nothing for the rest."""
    if request.uri == ns.PUBSUB_OWNER:
        emptied = next((c for c in request.elements() if c.name in ("purge", "delete")), None)
        if emptied is None:
            return []
        return [PepChange(account, emptied["node"], None, retracted=True)]
    if request.uri != ns.PUBSUB:
        return []
    publish = _child(request, "publish")
    if publish is not None:
        item = _child(publish, "item")
        answered = _child(_child(reply, "publish"), "item")
        named = answered if answered is not None else item
        item_id = named.getAttribute("id") if named is not None else None
        payload = next(item.elements(), None) if item is not None else None
        return [PepChange(account, publish["node"], item_id, payload)]
    retract = _child(request, "retract")
    if retract is not None:
        return [PepChange(account, retract["node"], item["id"], retracted=True)
                for item in retract.elements() if item.name == "item"]
    return []
