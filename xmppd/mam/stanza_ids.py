# -*- test-case-name: tests.unit.test_mam_stanza_ids -*-
"""XEP-0359 stanza ids on the message path: what the archive keeps, forged ids removed, ours
added.

A ``<stanza-id by='alice@example.org' id='…'/>`` tells alice's clients under which id her
archive holds the message, and clients trust it to deduplicate and to page from (XEP-0359 §5:
"the entity which set the id"). A sender who could put one there could hide a message behind
another's id, so every stanza-id that claims to be by the recipient's account or by one of our
domains is removed before anything else sees the message (XEP-0359 §4: the server MUST
remove such elements). A client's ``<origin-id/>`` is its own and is kept: it never replaces
ours.

Stanzas are never edited in place: the element may still be on its way elsewhere (the sender's
archive has serialized it, a carbon may hold it). A copy of the top element shares the
children, read-only, which is all a replacement needs.
"""

from __future__ import annotations

import functools
from collections.abc import Collection

from twisted.words.xish import domish

from xmppd import ns
from xmppd.im.worth_storing import worth_storing
from xmppd.jid import InvalidJID, parse_jid
from xmppd.stanza import Stanza
from xmppd.xml.serializer import WiredElement, escape_attribute

_new_object = object.__new__


def archivable(element: domish.Element) -> bool:
    """What XEP-0313 §5.1.1 asks an archive to keep: what offline storage keeps (a body, an
    encrypted payload, an invitation, a <store/> hint; normal and chat only, so never a
    groupchat or headline), unless the sender said <no-store/> or <no-permanent-store/>
    (XEP-0334 §5)."""
    if not worth_storing(element):
        return False
    for child in element.children:
        if getattr(child, "name", None) == "no-permanent-store" and child.uri == ns.HINTS:
            return False
    return True


def has_stanza_id(element: domish.Element) -> bool:
    """Whether the stanza has a <stanza-id/> child at all (of any namespace: the cheap test
    that spares the usual message the look at who claims it)."""
    for child in element.children:
        if getattr(child, "name", None) == "stanza-id":
            return True
    return False


def without_forged_ids(stanza: Stanza, protected: Collection[str]) -> Stanza | None:
    """A copy of ``stanza`` without the stanza-ids whose 'by' (prepared) is in ``protected``
    (bare JIDs and domains); None when it has none, the usual case, which allocates nothing."""
    element = stanza.element
    forged = [child for child in element.elements() if _is_forged(child, protected)]
    if not forged:
        return None
    kept = [child for child in element.children if not any(child is each for each in forged)]
    return Stanza(_copy(element, kept), stanza.sender, stanza.recipient)


def with_stanza_id(stanza: Stanza, entry_id: str, by: str, wire: bytes | None = None) -> Stanza:
    """A copy of ``stanza`` with our ``<stanza-id by=… id=…/>`` added (XEP-0359 §4).

    ``wire``, when given, is ``stanza.element`` serialized for a client stream (the archive
    serialized it already): the copy then carries its own serialization, that text with the
    stanza-id before the end tag, so the sessions it goes to do not serialize it again."""
    element = stanza.element
    stanza_id = _element(ns.STANZA_ID, "stanza-id", ns.STANZA_ID, {"by": by, "id": entry_id}, {},
                         [])
    children = [*element.children, stanza_id]
    end = f"</{element.name}>".encode()
    if wire is None or not wire.endswith(end):  # no children: a "<message .../>"
        return Stanza(_copy(element, children), stanza.sender, stanza.recipient)
    copy = _element(element.uri, element.name, element.defaultUri, dict(element.attributes),
                    dict(element.localPrefixes or {}), children, WiredElement)
    # As the serializer writes it: the stanza-id's namespace differs from jabber:client's.
    copy.wire = b"".join((wire[:-len(end)], _opening(by), escape_attribute(entry_id).encode(),
                          b"'/>", end))
    copy.wire_attributes = element.attributes
    copy.wire_children = len(children)
    return Stanza(copy, stanza.sender, stanza.recipient)


@functools.lru_cache(maxsize=4096)
def _opening(by: str) -> bytes:
    """``<stanza-id xmlns=… by='…' id='`` as the serializer writes it (the namespace differs
    from jabber:client's), for the accounts that received something lately."""
    return f"<stanza-id xmlns='{ns.STANZA_ID}' by='{escape_attribute(by)}' id='".encode()


def _is_forged(child: domish.Element, protected: Collection[str]) -> bool:
    if child.name != "stanza-id" or child.uri != ns.STANZA_ID:
        return False
    by = child.getAttribute("by")
    if by is None:
        return False
    try:
        return parse_jid(by).full() in protected
    except InvalidJID:
        return False  # not an address at all: nobody's archive, so nobody's to protect


def _copy(original: domish.Element, children: list) -> domish.Element:
    return _element(original.uri, original.name, original.defaultUri,
                    dict(original.attributes), dict(original.localPrefixes or {}), children)


def _element(uri, name, default_uri, attributes: dict, prefixes: dict,
             children: list, kind: type = domish.Element) -> domish.Element:
    """What domish.Element(...) makes, without its call and checks (as xmppd.xml.parser
    builds elements): two of these per archived message."""
    element = _new_object(kind)
    element.localPrefixes = prefixes
    element.uri = uri
    element.name = name
    element.defaultUri = default_uri
    element.attributes = attributes
    element.children = children
    element.parent = None
    return element
