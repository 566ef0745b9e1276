# -*- test-case-name: tests.unit.test_pep_interest -*-
"""Who wants which of an account's notifications (XEP-0163 §4.2, §4.3), kept in memory.

For each account: the full JIDs whose available presence reached it (its contacts'
resources, and its own resources' broadcasts) with the nodes each one's caps ask for.
A JID whose caps are still being resolved is present with no nodes. Presence is the only
source, so nothing here is read from storage; an unavailable presence, a closed session,
a lost s2s link or a deleted account takes entries out again.
"""

from __future__ import annotations

from xmppd.jid import JID

# One account can be sent presence by at most this many resources at once, and all of them
# by this many: presence to accounts that do not exist (nothing checks it on this path)
# cannot make the table grow without end either.
MAX_PER_ACCOUNT = 5000
MAX_TOTAL = 500_000


class Interests:
    """account (bare JID) -> {full JID: the nodes it wants notifications of}."""

    def __init__(self, max_per_account: int = MAX_PER_ACCOUNT,
                 max_total: int = MAX_TOTAL) -> None:
        self._limit = max_per_account
        self._total_limit = max_total
        self._total = 0
        self._tables: dict[JID, dict[JID, frozenset[str]]] = {}

    def present(self, account: JID, jid: JID) -> bool:
        table = self._tables.get(account)
        return table is not None and jid in table

    def set(self, account: JID, jid: JID, nodes: frozenset[str]) -> frozenset[str]:
        """Record what ``jid`` wants now; returns the nodes it did not want before (the
        ones whose last item it should get). Past the limit a new JID is not recorded."""
        table = self._tables.get(account, {})
        before = table.get(jid)
        if before is None:
            if len(table) >= self._limit or self._total >= self._total_limit:
                return frozenset()
            self._tables[account] = table
            self._total += 1
        table[jid] = nodes
        return nodes - before if before is not None else nodes

    def __len__(self) -> int:
        """How many JIDs are tracked, over all accounts."""
        return self._total

    def remove(self, account: JID, jid: JID) -> None:
        table = self._tables.get(account)
        if table is not None and table.pop(jid, None) is not None:
            self._total -= 1
            if not table:
                del self._tables[account]

    def wanting(self, account: JID, node: str) -> list[JID]:
        """The JIDs that want ``node``'s notifications of ``account``."""
        table = self._tables.get(account)
        if not table:
            return []
        return [jid for jid, nodes in table.items() if node in nodes]

    def of(self, jid: JID) -> dict[str, list[str]]:
        """What ``jid`` wants, by account (a session moving to another node of a cluster
        takes it along); one pass over the accounts, for a rare event."""
        return {account.full(): sorted(table[jid]) for account, table in self._tables.items()
                if jid in table}

    def forget_account(self, account: JID) -> None:
        self._total -= len(self._tables.pop(account, {}))

    def forget_domain(self, domain: str) -> None:
        """An s2s link went down: its entities' unavailable presence will never come."""
        for account in list(self._tables):
            table = self._tables[account]
            for jid in [jid for jid in table if jid.host == domain]:
                del table[jid]
                self._total -= 1
            if not table:
                del self._tables[account]
