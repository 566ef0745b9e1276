# -*- test-case-name: tests.unit.test_mam_prefs -*-
"""XEP-0313 §6 archiving preferences: per account, a default ('always', 'never' or 'roster':
only contacts in the roster) and JIDs always or never archived.

The message path asks for an account's preferences on every message, and a read there
would make the message wait, behind the archive's own pending writes too (xmppd.storage.sqlite:
reads never overtake writes), so every preference set is read once at start-up and kept in
memory; accounts that set none, nearly all of them, cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID, InvalidJID, parse_jid

DEFAULTS = ("always", "never", "roster")
_BY_DEFAULT = {"always": True, "never": False}  # 'roster': None, decided by a read
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
        return _BY_DEFAULT.get(self.default)

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
    """Every account's preferences, all in memory: ``store`` (a map store) keeps those set,
    one map per domain (owner: the domain, key: the account), read whole by ``load()`` at
    start-up; every other account has ``default``, the config's. Only accounts that chose
    their own preferences take memory, and the message path never reads storage for them.

    The domain owns the map, so deleting an account does not remove its entry: ``forget``
    does, on USER_DELETED.
    """

    def __init__(self, store, default: str) -> None:
        self._store = store
        self.default = Prefs(default)
        self._chosen: dict[str, Prefs] = {}  # bare JID -> what the account set

    async def load(self, domains) -> None:
        for domain in domains:
            for account, value in (await self._store.items(domain)).items():
                self._chosen[account] = Prefs.from_value(value)

    def get(self, account: JID) -> Prefs:
        return self._chosen.get(account.userhost(), self.default)

    async def set(self, account: JID, prefs: Prefs) -> None:
        await self._store.set(account.host, account.userhost(), prefs.to_value())
        self._chosen[account.userhost()] = prefs

    async def forget(self, account: JID) -> None:
        self._chosen.pop(account.userhost(), None)
        await self._store.delete(account.host, account.userhost())
