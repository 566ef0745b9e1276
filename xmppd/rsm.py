# -*- test-case-name: tests.unit.test_rsm -*-
"""XEP-0059 result set management: read a request's ``<set/>``, page, answer with ``<set/>``.

MAM (XEP-0313), pubsub items (XEP-0060) and disco#items can all hold more items than one
reply should carry, so every one of them reads the client's ``<set/>`` here, under a cap the
server chooses: a client may ask for fewer items than the cap, never more. A request that
cannot mean anything (``<max>ten</max>``, two ``<max/>``s, an empty ``<after/>``, an index
together with a UID) is a ``StanzaError("bad-request")``; a UID that names no item is for the
caller, who knows the items, to answer with ``item-not-found`` (XEP-0059 §2.5) -- ``page()``
does that for items held in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError

# ASCII digits only (int() would also take "٣", "1_000" and " 7 "). XEP-0059 §6 types max and
# index as xs:int; a bigger max still means "as many as you allow", a bigger index is refused.
_NUMBER = re.compile(r"[0-9]+")
_INT_MAX = 2**31 - 1

_T = TypeVar("_T")


@dataclass(frozen=True)
class ResultSetRequest:
    """What the client asked for. ``max`` is already capped by the server. ``before`` is ""
    for an empty ``<before/>``: the last page (XEP-0059 §2.5)."""

    max: int
    after: str | None = None
    before: str | None = None
    index: int | None = None

    @property
    def wants_last_page(self) -> bool:
        return self.before == ""

    @property
    def backwards(self) -> bool:
        """True when the page ends at ``before`` (or at the end) rather than starting somewhere."""
        return self.before is not None


def find_request(parent: domish.Element, *, default_max: int,
                 limit: int) -> ResultSetRequest | None:
    """The request in ``parent``'s ``<set xmlns='http://jabber.org/protocol/rsm'/>``; None when
    the client did not use RSM (the caller then decides how much to send, XEP-0059 §3)."""
    found = [child for child in parent.elements() if child.uri == ns.RSM and child.name == "set"]
    if len(found) > 1:
        raise StanzaError("bad-request", "more than one result set <set/>")
    return parse_request(found[0], default_max=default_max, limit=limit) if found else None


def parse_request(element: domish.Element, *, default_max: int,
                  limit: int) -> ResultSetRequest:
    """Read a request ``<set/>``: ``max`` is ``default_max`` when absent and at most ``limit``."""
    if not 0 <= default_max <= limit:
        raise ValueError(f"need 0 <= default_max ({default_max}) <= limit ({limit})")
    if element.uri != ns.RSM or element.name != "set":
        raise StanzaError("bad-request", f"expected <set xmlns='{ns.RSM}'/>")
    parts: dict[str, str] = {}
    for child in element.elements():
        if child.uri != ns.RSM or child.name not in ("max", "after", "before", "index"):
            continue  # <first/>, <last/>, <count/> belong in answers; ignore them here
        if child.name in parts:
            raise StanzaError("bad-request", f"more than one <{child.name}/> in <set/>")
        parts[child.name] = "".join(text for text in child.children if isinstance(text, str))
    requested = _number(parts, "max")
    index = _number(parts, "index")
    after, before = parts.get("after"), parts.get("before")
    if after == "":
        raise StanzaError("bad-request", "an empty <after/> names no item")
    if after is not None and before is not None:
        # XEP-0313 §7.1: RSM does not define both in one request.
        raise StanzaError("bad-request", "<after/> and <before/> cannot be used together")
    if index is not None and (after is not None or before is not None):
        raise StanzaError("bad-request", "<index/> cannot be used with <after/> or <before/>")
    if index is not None and index > _INT_MAX:
        raise StanzaError("bad-request", f"<index/> is at most {_INT_MAX}")
    return ResultSetRequest(
        max=default_max if requested is None else min(requested, limit),
        after=after,
        before=before,
        index=index,
    )


def _number(parts: dict[str, str], name: str) -> int | None:
    text = parts.get(name)
    if text is None:
        return None
    if not _NUMBER.fullmatch(text):
        raise StanzaError("bad-request", f"<{name}/> is a whole number, not '{text[:40]}'")
    return int(text) if len(text) <= 10 else _INT_MAX + 1  # no 4000-digit int() for a peer


def result_set(*, first: str | None = None, last: str | None = None,
               first_index: int | None = None, count: int | None = None) -> domish.Element:
    """The answer's ``<set/>``: ``first``/``last`` are the UIDs of the page's first and last
    items (both or neither: an empty page has neither, XEP-0059 §2.2), ``first_index`` the
    position of the first, ``count`` the size of the whole result set."""
    if (first is None) != (last is None):
        raise ValueError("a page has both a first and a last item, or neither")
    if first_index is not None and first is None:
        raise ValueError("an empty page has no first index")
    element = domish.Element((ns.RSM, "set"))
    if first is not None:
        first_element = element.addElement("first", content=first)
        if first_index is not None:
            first_element["index"] = str(first_index)
        element.addElement("last", content=last)
    if count is not None:
        element.addElement("count", content=str(count))
    return element


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page of a result set: its items, where the first one is, and the full count."""

    items: tuple[_T, ...]
    first_index: int
    count: int

    def to_element(self, uid: Callable[[_T], str]) -> domish.Element:
        if not self.items:
            return result_set(count=self.count)
        return result_set(first=uid(self.items[0]), last=uid(self.items[-1]),
                          first_index=self.first_index, count=self.count)


def page(items: Sequence[_T], request: ResultSetRequest, uid: Callable[[_T], str]) -> Page[_T]:
    """The page of ``items`` (in result-set order) that ``request`` asks for; a UID in
    ``<after/>`` or ``<before/>`` that no item has is ``item-not-found`` (XEP-0059 §2.4)."""
    count = len(items)
    if request.index is not None:
        start = min(request.index, count)  # past the end: an empty page (XEP-0059 §2.6)
        end = min(start + request.max, count)
    elif request.after is not None:
        start = _position(items, request.after, uid) + 1
        end = min(start + request.max, count)
    elif request.before is not None:
        end = count if request.before == "" else _position(items, request.before, uid)
        start = max(end - request.max, 0)
    else:
        start, end = 0, min(request.max, count)
    return Page(tuple(items[start:end]), start, count)


def _position(items: Sequence[_T], wanted: str, uid: Callable[[_T], str]) -> int:
    for position, item in enumerate(items):
        if uid(item) == wanted:
            return position
    raise StanzaError("item-not-found", f"no item '{wanted[:80]}' in this result set")
