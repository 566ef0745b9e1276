# -*- test-case-name: tests.unit.test_blocking -*-
"""Block lists (XEP-0191): what each account blocked, all in memory, kept in a map store.

Every stanza for or from an account is checked against its list, on the benchmarked
message path too, so the check must never wait for storage: the lists of all accounts are
read once when the plugin starts (``load``), and ``lookup`` is then one dict look-up (most
accounts block nobody: an empty set, shared). Only this module writes the store, so memory
is changed first and the write queued after it (writes are applied in order): two commands
in a row never lose one another's item.

Stored as a map per host (owner ``domain``, key ``user@domain``, value the sorted JID
texts), so one read per host loads them all. Such an owner is not deleted with an account:
USER_DELETED removes the account's key, and ``load`` drops the lists of accounts that no
longer exist (deleted by xmppdctl while the server was down), so a new account of the same
name starts with an empty list.

Matching (§6, as XEP-0016): an item ``user@domain/resource`` matches that resource only,
``user@domain`` every resource of it, ``domain/resource`` that resource of the domain, and
``domain`` the domain itself and everyone at it.
"""

from __future__ import annotations

from collections.abc import Iterable

from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger

log = get_logger(__name__)

STORE = "blocking"
NOTHING: frozenset[str] = frozenset()


def candidates(jid: JID) -> tuple[str, ...]:
    """The item texts that would block ``jid``, most precise first."""
    host = jid.host
    if jid.resource is None:
        return (jid.full(), host) if jid.user is not None else (host,)
    if jid.user is None:
        return (jid.full(), host)
    return (jid.full(), jid.bare().full(), f"{host}/{jid.resource}", host)


def matches(items: frozenset[str], jid: JID) -> bool:
    """Whether ``jid`` is blocked by any of ``items`` (JID texts, as prepared)."""
    if not items:
        return False
    return any(candidate in items for candidate in candidates(jid))


class BlockLists:
    """Every account's list, in memory, over the map store that keeps them."""

    def __init__(self, store, users) -> None:
        self._store = store  # IMapStore: domain -> {account: [JID texts]}
        self._users = users  # IUserStore, for the accounts that still exist
        self._lists: dict[JID, frozenset[str]] = {}

    async def load(self, domains: Iterable[str]) -> None:
        """Read the lists of every account of ``domains``; those of accounts that no longer
        exist are deleted."""
        for domain in domains:
            stored = await self._store.items(domain)
            if not stored:
                continue
            existing = set(await self._users.list_users(domain))
            for account, items in stored.items():
                if account not in existing:
                    await self._store.delete(domain, account)
                    continue
                try:
                    self._lists[parse_jid(account)] = frozenset(items)
                except InvalidJID:
                    log.warn("block list of a bad account {account!r} ignored",
                             account=account)

    def __bool__(self) -> bool:
        """Whether anyone blocks anyone: when nobody does, the links cost one test."""
        return bool(self._lists)

    def lookup(self, account: JID) -> frozenset[str]:
        """The list of ``account`` (a bare JID)."""
        return self._lists.get(account, NOTHING)

    async def change(self, account: JID, add: Iterable[str] = (),
                     remove: Iterable[str] | None = ()) -> tuple[list[str], list[str]]:
        """Block ``add`` and unblock ``remove`` (None: everything); returns the items really
        added and removed, in the order given, once the store has them."""
        before = self.lookup(account)
        removed = (sorted(before) if remove is None
                   else list(dict.fromkeys(item for item in remove if item in before)))
        after = before.difference(removed)
        added = list(dict.fromkeys(item for item in add if item not in after))
        after = after.union(added)
        if after == before:
            return added, removed
        if after:
            self._lists[account] = after
            await self._store.set(account.host, account.full(), sorted(after))
        else:
            self._lists.pop(account, None)
            await self._store.delete(account.host, account.full())
        return added, removed

    def forget(self, account: JID, *ignored) -> None:
        """USER_DELETED: the account's list goes with it."""
        account = account.bare()
        if self._lists.pop(account, None) is not None:
            self._store.delete(account.host, account.full()).addErrback(
                lambda failure: log.failure("deleting the block list of {account} failed",
                                            failure, account=account))
