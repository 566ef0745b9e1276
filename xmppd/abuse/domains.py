# -*- test-case-name: tests.unit.test_domain_block -*-
"""Blocked domains: the admin's list and each trusted buddy's, matched with subdomains.

An entry 'spam.example' covers spam.example and every name below it (a.spam.example), never
a name that merely ends the same way (notspam.example). The admin's own list always blocks;
a buddy's entries do what ``[plugins.domain_block] buddy_policy`` says: only be logged,
quarantine (messages and subscription requests from the domain are kept for the admins, not
delivered), or block like the admin's own. The admin can always override a buddy's entry by
allowing the domain (``unblock-domain`` of an entry that only buddies list).
"""

from __future__ import annotations

from dataclasses import dataclass

from xmppd.jid import InvalidJID, prepare_domain

ADMIN = "admin"  # the source of the admin's own entries; buddies' are their domains
POLICIES = ("log", "quarantine", "block")


@dataclass(frozen=True)
class Match:
    """The entry that covers a domain: ``entry`` (the listed name), who listed it."""

    domain: str
    entry: str
    source: str

    def describe(self) -> str:
        by = "the admin" if self.source == ADMIN else f"trusted buddy {self.source}"
        under = "" if self.entry == self.domain else f" (under {self.entry})"
        return f"{self.domain} is blocked by {by}{under}"


def domain_entry(text: str) -> str:
    """An admin's or a buddy's entry, prepared; ValueError naming the problem. Only domain
    names: an IP literal or a JID with a localpart is not a domain to block."""
    if not isinstance(text, str) or "@" in text or "/" in text:
        raise ValueError(f"not a domain: {text!r}")
    try:
        domain = prepare_domain(text)
    except InvalidJID as error:
        raise ValueError(f"not a domain: {text!r} ({error})") from None
    if domain.startswith("[") or "." not in domain and domain != "localhost":
        raise ValueError(f"not a federated domain name: {text!r}")
    return domain


class DomainLists:
    """Every source's entries in memory (the plugin keeps them in a store too)."""

    def __init__(self) -> None:
        self._sources: dict[str, set[str]] = {}  # source -> entries
        self._entries: dict[str, set[str]] = {}  # entry -> its sources
        self.allowed: set[str] = set()  # the admin's exceptions to buddies' entries

    def add(self, source: str, entry: str) -> bool:
        """List ``entry`` for ``source``; False when it was listed already."""
        entries = self._sources.setdefault(source, set())
        if entry in entries:
            return False
        entries.add(entry)
        self._entries.setdefault(entry, set()).add(source)
        return True

    def remove(self, source: str, entry: str) -> bool:
        entries = self._sources.get(source, set())
        if entry not in entries:
            return False
        entries.discard(entry)
        sources = self._entries[entry]
        sources.discard(source)
        if not sources:
            del self._entries[entry]
        return True

    def replace(self, source: str, entries: set[str]) -> tuple[set[str], set[str]]:
        """Make ``source``'s list exactly ``entries``; (added, removed)."""
        old = set(self._sources.get(source, ()))
        for entry in old - entries:
            self.remove(source, entry)
        for entry in entries - old:
            self.add(source, entry)
        return entries - old, old - entries

    def entries(self, source: str) -> list[str]:
        return sorted(self._sources.get(source, ()))

    def sources(self) -> list[str]:
        return sorted(source for source, entries in self._sources.items() if entries)

    def match(self, domain: str) -> Match | None:
        """The entry covering ``domain`` (itself or a parent domain): the admin's first,
        then a buddy's unless the admin allowed the domain (or a parent of it)."""
        found = None
        labels = domain.split(".")
        for start in range(len(labels)):
            entry = ".".join(labels[start:])
            sources = self._entries.get(entry)
            if not sources:
                continue
            if ADMIN in sources:
                return Match(domain, entry, ADMIN)
            if found is None:
                found = Match(domain, entry, min(sources))
        if found is not None and self._allowed(labels):
            return None
        return found

    def _allowed(self, labels: list[str]) -> bool:
        return any(".".join(labels[start:]) in self.allowed for start in range(len(labels)))
