# -*- test-case-name: tests.unit.test_storage_sqlite -*-
"""SASL's view of the user store: SCRAM keys for SCRAM, a derived-key check for PLAIN."""

from __future__ import annotations

import functools
import hmac

from twisted.internet import threads
from zope.interface import implementer

from xmppd.interfaces import IAuthBackend
from xmppd.sasl.credentials import DEFAULT_ITERATIONS, ScramCredentials, derive_credentials

PLAIN_HASH = "sha-256"  # PLAIN is checked against the strongest keys we keep


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
        releases the GIL, so no other stream waits for it."""
        d = self.users.get_credentials(localpart, domain, PLAIN_HASH)
        d.addCallback(lambda stored: threads.deferToThread(_password_matches, stored, password))
        return d


def _password_matches(stored: ScramCredentials | None, password: str) -> bool:
    known = stored is not None
    stored = stored if known else _nobody()
    candidate = derive_credentials(password, stored.hash_name, stored.salt, stored.iterations)
    return hmac.compare_digest(candidate.stored_key, stored.stored_key) and known
