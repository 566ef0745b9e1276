# -*- test-case-name: tests.unit.test_pubsub_service -*-
"""Event notifications (XEP-0060 §7.1.2, §7.2.2, §8.2.5.3, §8.4.2, §8.5.2): each event is
built once, as a ``<message/>`` without addresses, and the wiring sends one addressed copy
per recipient (``xmppd.im.presence_stanzas.addressed_copy`` shares the children)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.forms import Form
from xmppd.jid import JID
from xmppd.pubsub.model import Node

# What goes inside an <item/>: the payload element as published, or a stored payload as
# text (domish.SerializedXML, written out as it is, never parsed again), or nothing.
Payload = domish.Element | domish.SerializedXML | None


@dataclass(frozen=True)
class Notification:
    """One event of ``node`` for the wiring to deliver.

    ``subscribers`` are the JIDs (as subscribed, bare or full) that get it and may still
    read the node. On a PEP service the wiring adds the account's own available resources
    and the contacts whose caps say ``<node>+notify`` and which ``service.audience`` lets
    through: ``node`` is the node as it was when the event happened, for that check.
    ``kind`` is 'items', 'retract', 'purge', 'delete' or 'configuration'.
    """

    kind: str
    node: Node
    message: domish.Element
    subscribers: tuple[JID, ...] = ()


def item_element(item_id: str | None, payload: Payload) -> domish.Element:
    item = domish.Element((None, "item"))
    if item_id is not None:
        item["id"] = item_id
    if payload is not None:
        item.addChild(payload)
    return item


def items_event(node: str, items: Iterable[domish.Element]) -> domish.Element:
    """``<items node=...>`` with these ``<item/>``s: a publication, or the last item sent on
    subscription or presence."""
    event, child = _event("items", node)
    for item in items:
        child.addChild(item)
    return event


def retract_event(node: str, item_ids: Iterable[str]) -> domish.Element:
    event, child = _event("items", node)
    for item_id in item_ids:
        child.addElement("retract")["id"] = item_id
    return event


def purge_event(node: str) -> domish.Element:
    return _event("purge", node)[0]


def delete_event(node: str, redirect: str | None = None) -> domish.Element:
    event, child = _event("delete", node)
    if redirect is not None:
        child.addElement("redirect")["uri"] = redirect
    return event


def configuration_event(node: str, form: Form | None) -> domish.Element:
    """With the form for nodes that deliver payloads, empty otherwise (§8.2.5.3)."""
    event, child = _event("configuration", node)
    if form is not None:
        child.addChild(form.to_element())
    return event


def _event(name: str, node: str) -> tuple[domish.Element, domish.Element]:
    message = domish.Element((None, "message"))
    message["type"] = "headline"  # pubsub#notification_type's default
    child = message.addElement((ns.PUBSUB_EVENT, "event")).addElement(name)
    child["node"] = node
    return message, child
