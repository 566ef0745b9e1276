# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""SASL's view of the user store: SCRAM keys for SCRAM, a derived-key check for PLAIN."""

from __future__ import annotations

import functools
import hmac

from twisted.internet import defer, threads
from zope.interface import implementer

from xmppd.interfaces import IAuthBackend
from xmppd.logs import get_logger
from xmppd.sasl.credentials import (
    DEFAULT_ITERATIONS,
    ScramCredentials,
    derive_all,
    derive_credentials,
)

log = get_logger(__name__)

PLAIN_HASH = "sha-256"  # PLAIN is checked against the strongest keys we keep
FALLBACK_HASH = "sha-1"  # ... or those an imported account came with


@functools.cache
def _nobody() -> ScramCredentials:
    """Keys to check against when the account does not exist, so that an unknown user costs
    as much as a wrong password and the timing does not tell which accounts exist."""
    return derive_credentials("", PLAIN_HASH, salt=bytes(16), iterations=DEFAULT_ITERATIONS)


@implementer(IAuthBackend)
class StorageAuthBackend:
    """Authenticates against an IUserStore; never sees or keeps a stored password."""

    def __init__(self, users) -> None:
        self.users = users

    def scram_credentials(self, localpart: str, domain: str, hash_name: str):
        return self.users.get_credentials(localpart, domain, hash_name)

    def check_password(self, localpart: str, domain: str, password: str):
        """PBKDF2 takes milliseconds (it is meant to): it runs in a thread, where hashlib
        releases the GIL, so no other stream waits for it.

        An account imported with SCRAM-SHA-1 keys only (from Prosody, say: XEP-0227 carries
        no password) is checked against those; when the password matches, the keys for every
        hash we offer are derived from it and stored, so SCRAM-SHA-256 works from then on."""
        return defer.ensureDeferred(self._check_password(localpart, domain, password))

    async def _check_password(self, localpart: str, domain: str, password: str) -> bool:
        stored = await self.users.get_credentials(localpart, domain, PLAIN_HASH)
        if stored is None:
            older = await self.users.get_credentials(localpart, domain, FALLBACK_HASH)
            if older is not None:
                matches = await threads.deferToThread(_password_matches, older, password)
                if matches:
                    await self._upgrade(localpart, domain, password)
                return matches
        return await threads.deferToThread(_password_matches, stored, password)

    async def _upgrade(self, localpart: str, domain: str, password: str) -> None:
        credentials = await threads.deferToThread(derive_all, password)
        try:
            await self.users.set_credentials(localpart, domain, credentials)
        except Exception:  # the login stands: it was checked; the keys come another time
            log.failure("storing the SCRAM keys of {localpart}@{domain} failed",
                        localpart=localpart, domain=domain)
            return
        log.info("{localpart}@{domain} now has keys for every SCRAM mechanism",
                 localpart=localpart, domain=domain)


def _password_matches(stored: ScramCredentials | None, password: str) -> bool:
    known = stored is not None
    stored = stored if known else _nobody()
    candidate = derive_credentials(password, stored.hash_name, stored.salt, stored.iterations)
    return hmac.compare_digest(candidate.stored_key, stored.stored_key) and known
