# -*- test-case-name: tests.integration.test_adhoc_admin -*-
"""Accounts an administrator disabled: kept, but refused at login until enabled again.

The marks are kept per domain in a map store (localpart -> when) and read once per domain
into memory, so the login gate asks no storage on the login path after the first login of
the domain. Disabling also ends the account's sessions; deleting the account forgets its
mark, so a new account of the same name starts enabled.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer

from xmppd.jid import JID

REFUSAL = "the account is disabled"


class DisabledAccounts:
    def __init__(self, store, seconds: Callable[[], float]) -> None:
        self.store = store  # map store: owner = domain, key = localpart, value = {"since"}
        self.seconds = seconds
        self._by_domain: dict[str, set[str]] = {}

    def gate(self, localpart: str, domain: str):
        """The login gate: REFUSAL for a disabled account, else None."""
        known = self._by_domain.get(domain)
        if known is not None:
            return REFUSAL if localpart in known else None
        return self._loaded(domain).addCallback(
            lambda disabled: REFUSAL if localpart in disabled else None)

    @defer.inlineCallbacks
    def disable(self, account: JID):
        disabled = yield self._loaded(account.host)
        yield self.store.set(account.host, account.user, {"since": int(self.seconds())})
        disabled.add(account.user)

    @defer.inlineCallbacks
    def enable(self, account: JID):
        """True when the account was disabled."""
        disabled = yield self._loaded(account.host)
        was = account.user in disabled
        yield self.store.delete(account.host, account.user)
        disabled.discard(account.user)
        return was

    @defer.inlineCallbacks
    def listed(self, domain: str):
        """The disabled accounts of ``domain`` as sorted bare JID strings."""
        disabled = yield self._loaded(domain)
        return sorted(f"{localpart}@{domain}" for localpart in disabled)

    def forget(self, account: JID) -> defer.Deferred:
        """The account was deleted: its mark goes with it."""
        self._by_domain.get(account.host, set()).discard(account.user)
        return self.store.delete(account.host, account.user)

    def _loaded(self, domain: str) -> defer.Deferred:
        known = self._by_domain.get(domain)
        if known is not None:
            return defer.succeed(known)
        d = self.store.keys(domain)
        d.addCallback(lambda keys: self._by_domain.setdefault(domain, set(keys)))
        return d
