# -*- test-case-name: tests.unit.test_pubsub_protocol -*-
"""Reading the parts of a ``<pubsub/>`` request: node names, JIDs, items, forms, flags.

Every malformed part is the error XEP-0060 gives for it (``nodeid-required``,
``invalid-jid``, ``item-required``, ``invalid-payload``, ...), so the operations get values
they can trust."""

from __future__ import annotations

import re

from twisted.words.xish import domish

from xmppd.forms import Form, find_form
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.pubsub.errors import PubSubError, shown

_POSITIVE = re.compile(r"[1-9][0-9]{0,8}")
_TRUE, _FALSE = frozenset(("1", "true")), frozenset(("0", "false"))


def children(parent: domish.Element, name: str) -> list[domish.Element]:
    """The child elements ``name`` in ``parent``'s own namespace."""
    return [child for child in parent.elements() if child.name == name
            and child.uri == parent.uri]


def child(parent: domish.Element, name: str) -> domish.Element | None:
    found = children(parent, name)
    if len(found) > 1:
        raise PubSubError("bad-request", text=f"more than one <{name}/>")
    return found[0] if found else None


def node_name(action: domish.Element) -> str:
    """The 'node' an action names; ``nodeid-required`` without one (XEP-0060 §7.2.3.3)."""
    name = action.getAttribute("node")
    if not name:
        raise PubSubError("bad-request", "nodeid-required")
    return name


def optional_node(action: domish.Element) -> str | None:
    return action.getAttribute("node") or None


def jid_attribute(element: domish.Element) -> JID:
    """The 'jid' of a subscribe, unsubscribe, affiliation or subscription element."""
    text = element.getAttribute("jid")
    if not text:
        raise PubSubError("bad-request", "jid-required")
    try:
        return parse_jid(text)
    except InvalidJID:
        raise PubSubError("bad-request", "invalid-jid", f"bad JID '{shown(text)}'") from None


def item_ids(action: domish.Element) -> tuple[str, ...]:
    """The ids of the ``<item/>``s of a retract or items request, in order, once each."""
    ids = []
    for item in children(action, "item"):
        item_id = item.getAttribute("id")
        if not item_id:
            raise PubSubError("bad-request", "item-required", "an <item/> without an id")
        ids.append(item_id)
    return tuple(dict.fromkeys(ids))


def published_item(publish: domish.Element) -> tuple[bool, str | None, domish.Element | None]:
    """(whether there is an ``<item/>``, its id, its payload) of a ``<publish/>``: one item
    at most (no batches here), with one payload element at most (§7.1.3.5)."""
    items = children(publish, "item")
    if not items:
        return False, None, None
    if len(items) > 1:
        raise PubSubError("bad-request", text="one item per publish")
    payloads = list(items[0].elements())
    if len(payloads) > 1:
        raise PubSubError("bad-request", "invalid-payload", "one payload element per item")
    return True, items[0].getAttribute("id") or None, payloads[0] if payloads else None


def form_in(parent: domish.Element | None) -> Form | None:
    """The data form inside ``<configure/>`` or ``<publish-options/>``, if any."""
    return None if parent is None else find_form(parent)


def boolean_attribute(element: domish.Element, name: str) -> bool | None:
    text = element.getAttribute(name)
    if text is None:
        return None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise PubSubError("bad-request", text=f"'{name}' is a boolean, not '{shown(text)}'")


def max_items(element: domish.Element) -> int | None:
    """The 'max_items' of an items request: a positive integer (XEP-0060 §12)."""
    text = element.getAttribute("max_items")
    if text is None:
        return None
    if not _POSITIVE.fullmatch(text):
        raise PubSubError("bad-request", text=f"max_items is a positive integer, "
                          f"not '{shown(text)}'")
    return int(text)
