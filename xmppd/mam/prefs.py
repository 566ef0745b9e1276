# -*- test-case-name: tests.unit.test_mam_prefs -*-
"""XEP-0313 §6 archiving preferences: per account, a default ('always', 'never' or 'roster':
only contacts in the roster) and JIDs always or never archived.

The message path asks for an account's preferences on every message, and a read there
would queue behind the archive's own pending writes (xmppd.storage.sqlite: reads never
overtake writes), so preferences live in a bounded cache of the accounts recently seen. Only
accounts whose preferences were not cached cost a read, which also tells whether the account
exists: a message for an account that does not exist is archived nowhere.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID, InvalidJID, parse_jid

DEFAULTS = ("always", "never", "roster")
CACHE_SIZE = 10_000  # accounts whose preferences stay in memory
MAX_JIDS = 1_000  # JIDs an account may list under <always/> and <never/> together


@dataclass(frozen=True)
class Prefs:
    """One account's preferences; ``always`` and ``never`` hold prepared bare JIDs."""

    default: str
    always: frozenset[str] = frozenset()
    never: frozenset[str] = frozenset()

    def decide(self, contact: str) -> bool | None:
        """Archive a message with ``contact`` (a bare JID)? None: only if it is in the roster.
        A JID in both lists is never archived: the safer reading of a contradiction."""
        if contact in self.never:
            return False
        if contact in self.always:
            return True
        return {"always": True, "never": False}.get(self.default)

    def to_value(self) -> dict:
        return {"default": self.default, "always": sorted(self.always),
                "never": sorted(self.never)}

    @classmethod
    def from_value(cls, value: dict) -> Prefs:
        return cls(value["default"], frozenset(value["always"]), frozenset(value["never"]))

    def to_element(self) -> domish.Element:
        """``<prefs default=…><always><jid/>…</always><never>…</never></prefs>``."""
        prefs = domish.Element((ns.MAM, "prefs"))
        prefs["default"] = self.default
        for name, jids in (("always", self.always), ("never", self.never)):
            listed = prefs.addElement(name)
            for jid in sorted(jids):
                listed.addElement("jid", content=jid)
        return prefs


def parse_prefs(element: domish.Element) -> Prefs:
    """A client's ``<prefs/>``; bad-request when the default or a JID is not one."""
    default = element.getAttribute("default")
    if default not in DEFAULTS:
        raise StanzaError("bad-request", f"default is one of {', '.join(DEFAULTS)}")
    lists: dict[str, frozenset[str]] = {}
    for name in ("always", "never"):
        jids: set[str] = set()
        for listed in element.elements(ns.MAM, name):
            for jid in listed.elements(ns.MAM, "jid"):
                jids.add(_bare(str(jid)))
        lists[name] = frozenset(jids)
    if len(lists["always"]) + len(lists["never"]) > MAX_JIDS:
        raise StanzaError("not-acceptable", f"at most {MAX_JIDS} JIDs in <always/> and <never/>")
    return Prefs(default, lists["always"], lists["never"])


def _bare(text: str) -> str:
    try:
        return parse_jid(text.strip()).bare().full()
    except InvalidJID:
        raise StanzaError("jid-malformed", f"not a JID: '{text[:60]}'") from None


class ArchivePrefs:
    """Every account's preferences: ``store`` (a keyval store) holds those set, ``default``
    (the config's) the rest; ``exists(account)`` is a Deferred of whether it is an account."""

    def __init__(self, store, default: str, exists, cache_size: int = CACHE_SIZE) -> None:
        self._store = store
        self.default = Prefs(default)
        self._exists = exists
        self._cache: OrderedDict[str, Prefs] = OrderedDict()
        self._cache_size = cache_size

    def cached(self, account: str) -> Prefs | None:
        """The account's preferences if in memory (and so the account exists), else None."""
        prefs = self._cache.get(account)
        if prefs is not None:
            self._cache.move_to_end(account)
        return prefs

    async def load(self, account: JID) -> Prefs | None:
        """The account's preferences, read and cached; None when it is not an account."""
        if not await self._exists(account):
            return None
        key = account.full()
        value = await self._store.get(key)
        prefs = self.default if value is None else Prefs.from_value(value)
        self._remember(key, prefs)
        return prefs

    def get(self, account: JID) -> defer.Deferred:
        """Deferred of the account's preferences (None when it is not an account)."""
        prefs = self.cached(account.full())
        if prefs is not None:
            return defer.succeed(prefs)
        return defer.ensureDeferred(self.load(account))

    async def set(self, account: JID, prefs: Prefs) -> None:
        await self._store.set(account.full(), prefs.to_value())
        self._remember(account.full(), prefs)

    def forget(self, account: str) -> None:
        self._cache.pop(account, None)

    def _remember(self, key: str, prefs: Prefs) -> None:
        self._cache[key] = prefs
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
