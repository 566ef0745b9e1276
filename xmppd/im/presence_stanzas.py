# -*- test-case-name: tests.unit.test_presence -*-
"""Presence stanzas as the presence plugin reads and writes them (RFC 6121 §4.7).

Pure functions: checking what a client put in its presence, and making the copies a broadcast
sends out, each with its own addresses, so no two recipients ever share (and mutate) one element.
A broadcast makes one copy per recipient: ``addressed_copy`` makes them cheap by sharing the
child elements (show, status, ...) of a source that nobody changes once it is sent.
"""

from __future__ import annotations

import re

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID

SHOW_VALUES = frozenset(("away", "chat", "dnd", "xa"))  # RFC 6121 §4.7.2.1
MIN_PRIORITY, MAX_PRIORITY = -128, 127  # RFC 6121 §4.7.2.3: an xs:byte
_INTEGER = re.compile(r"[+-]?[0-9]{1,4}")  # digits only: int() would also take "1_0" or "٣"
_CONTENT_NAMESPACES = (None, ns.CLIENT, ns.SERVER)


def check_presence(element: domish.Element) -> int:
    """The priority of an available or unavailable presence, after checking its <show/> and
    <priority/>; 0 when it has none. Anything RFC 6121 §4.7 forbids is ``bad-request``,
    including type='available': available presence has no 'type' (§4.7.1)."""
    if element.getAttribute("type") == "available":
        raise StanzaError("bad-request", "available presence has no 'type' attribute")
    show = _only_child(element, "show")
    if show is not None and _text(show) not in SHOW_VALUES:
        raise StanzaError("bad-request",
                          f"<show/> must be one of {', '.join(sorted(SHOW_VALUES))}")
    priority = _only_child(element, "priority")
    if priority is None:
        return 0
    text = _text(priority).strip()
    if not _INTEGER.fullmatch(text) or not MIN_PRIORITY <= int(text) <= MAX_PRIORITY:
        raise StanzaError("bad-request",
                          f"<priority/> must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}")
    return int(text)


def _only_child(element: domish.Element, name: str) -> domish.Element | None:
    found = [child for child in element.elements()
             if child.name == name and child.uri in _CONTENT_NAMESPACES]
    if len(found) > 1:
        raise StanzaError("bad-request", f"a presence carries at most one <{name}/>")
    return found[0] if found else None


def _text(element: domish.Element) -> str:
    """All the character data directly inside ``element`` (the parser may split it)."""
    return "".join(child for child in element.children if isinstance(child, str))


def clone(element: domish.Element) -> domish.Element:
    """A deep copy: recipients must not share an element someone may still change."""
    copy = domish.Element((element.uri, element.name), element.defaultUri,
                          dict(element.attributes), dict(element.localPrefixes or {}))
    for child in element.children:
        copy.addChild(clone(child) if isinstance(child, domish.Element) else child)
    return copy


def readdressed(element: domish.Element, sender: JID, recipient: JID | None) -> domish.Element:
    """A copy of ``element`` from ``sender`` to ``recipient`` (no 'to' when it is None)."""
    copy = clone(element)
    copy["from"] = sender.full()
    if recipient is None:
        copy.attributes.pop("to", None)
    else:
        copy["to"] = recipient.full()
    return copy


def addressed_copy(element: domish.Element, sender: str, recipient: str | None) -> domish.Element:
    """A copy of ``element`` from ``sender`` to ``recipient`` (full JID strings; no 'to' when
    None) that shares its child elements with ``element``.

    Its attributes and its list of children are its own, so addressing it, or adding a child to
    it, leaves ``element`` alone; only changing a shared child would show in both. For the
    copies of a broadcast, made from a stanza nobody changes after it is sent.
    """
    attributes = dict(element.attributes)
    attributes["from"] = sender
    if recipient is None:
        attributes.pop("to", None)
    else:
        attributes["to"] = recipient
    prefixes = dict(element.localPrefixes) if element.localPrefixes else None
    copy = domish.Element((element.uri, element.name), element.defaultUri, attributes, prefixes)
    copy.children = list(element.children)
    return copy


def make_presence(type: str | None, sender: JID, recipient: JID | None) -> domish.Element:
    """A new, empty presence stanza; ``type`` None is available presence."""
    element = domish.Element((None, "presence"))
    if type is not None:
        element["type"] = type
    element["from"] = sender.full()
    if recipient is not None:
        element["to"] = recipient.full()
    return element
