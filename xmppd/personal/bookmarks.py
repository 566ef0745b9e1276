# -*- test-case-name: tests.unit.test_bookmarks -*-
"""Bookmarks in their two shapes, and the conversion between them.

* XEP-0048 (legacy): one ``<storage xmlns='storage:bookmarks'>`` holding every
  ``<conference jid=… name=… autojoin=…><nick/><password/></conference>`` (and ``<url/>``s),
  kept in private XML (XEP-0049) or as the one item of the PEP node 'storage:bookmarks'.
* XEP-0402 (native): one item per room on the PEP node 'urn:xmpp:bookmarks:1', the room's
  JID as item id and ``<conference xmlns='urn:xmpp:bookmarks:1' name=… autojoin=…>`` with
  the same ``<nick/>``, ``<password/>`` and an ``<extensions/>`` of the client's own.

What one shape cannot hold survives a round trip through the other: a native bookmark's
``<extensions/>`` are kept when the legacy list rewrites that room, and the legacy
``<url/>``s are kept when the native node rewrites the legacy list (XEP-0402 §7: collate the
items, the item id as jid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from twisted.words.xish import domish

from xmppd import ns
from xmppd.personal.elements import text_of

FIELDS = ("nick", "password")  # the children both shapes share, in this order
TRUE = ("true", "1")

# XEP-0402 §5 (publish-options of every publish) and XEP-0411 §5 / XEP-0048 §… (the
# legacy PEP node must be the account's alone).
NATIVE_OPTIONS = {"persist_items": "true", "max_items": "max",
                  "send_last_published_item": "never", "access_model": "whitelist"}
LEGACY_OPTIONS = {"persist_items": "true", "access_model": "whitelist"}
LEGACY_ITEM = "current"


def _conference(uri: str, source: domish.Element) -> domish.Element:
    """A ``<conference/>`` in ``uri`` with the name, autojoin and shared children of
    ``source`` (either shape)."""
    conference = domish.Element((uri, "conference"))
    name = source.getAttribute("name")
    if name is not None:
        conference["name"] = name
    if (source.getAttribute("autojoin") or "").strip().lower() in TRUE:
        conference["autojoin"] = "true"
    for field in FIELDS:
        for child in source.elements(source.uri, field):
            conference.addElement(field, content=text_of(child))
            break
    return conference


def native_of(legacy: domish.Element, kept: Mapping[str, domish.Element | None] | None = None,
              ) -> dict[str, domish.Element]:
    """The native bookmarks of a legacy ``<storage/>``, by room JID; a room's
    ``<extensions/>`` in ``kept`` (the native bookmarks there were) is carried over."""
    native: dict[str, domish.Element] = {}
    for conference in legacy.elements(ns.LEGACY_BOOKMARKS, "conference"):
        jid = conference.getAttribute("jid")
        if not jid or jid in native:
            continue
        bookmark = _conference(ns.BOOKMARKS, conference)
        before = (kept or {}).get(jid)
        if before is not None:
            for extensions in before.elements(ns.BOOKMARKS, "extensions"):
                bookmark.addChild(extensions)
        native[jid] = bookmark
    return native


def legacy_of(native: Iterable[tuple[str, domish.Element | None]],
              kept: domish.Element | None = None) -> domish.Element:
    """The legacy ``<storage/>`` of native items (id, payload), with the ``<url/>``s (and
    anything but conferences) of ``kept``, the legacy list there was."""
    storage = domish.Element((ns.LEGACY_BOOKMARKS, "storage"))
    for jid, bookmark in native:
        if bookmark is None or bookmark.uri != ns.BOOKMARKS or bookmark.name != "conference":
            continue
        conference = _conference(ns.LEGACY_BOOKMARKS, bookmark)
        conference["jid"] = jid
        storage.addChild(conference)
    if kept is not None:
        for child in kept.elements():
            if child.name != "conference":
                storage.addChild(child)
    return storage


def same(one: domish.Element | None, other: domish.Element | None) -> bool:
    """Whether two native bookmarks say the same: the unchanged are not republished, so
    nobody is notified of them (XEP-0402 §7)."""
    if one is None or other is None:
        return one is other
    return _meaning(one) == _meaning(other)


def _meaning(bookmark: domish.Element) -> tuple:
    fields = tuple(next((text_of(c) for c in bookmark.elements(bookmark.uri, field)), None)
                   for field in FIELDS)
    extensions = tuple(e.toXml() for e in bookmark.elements(bookmark.uri, "extensions"))
    joins = (bookmark.getAttribute("autojoin") or "").strip().lower() in TRUE
    return bookmark.getAttribute("name"), joins, fields, extensions


def is_legacy_storage(element: domish.Element | None) -> bool:
    return (element is not None and element.uri == ns.LEGACY_BOOKMARKS
            and element.name == "storage")
