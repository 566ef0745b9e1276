"""SCRAM credentials (RFC 5802 §3): what we store instead of a password."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

# The hash functions we keep keys for; the SCRAM mechanism name is "SCRAM-" + the key upper-cased.
HASHES = {"sha-1": "sha1", "sha-256": "sha256"}
DEFAULT_ITERATIONS = 10000  # ≥ 4096 as RFC 7677 recommends for SHA-256


@dataclass(frozen=True)
class ScramCredentials:
    """Salt, iteration count and the two keys for one hash; enough to verify, never to log in."""

    hash_name: str  # "sha-1" or "sha-256"
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"ScramCredentials({self.hash_name!r}, iterations={self.iterations})"


def derive_credentials(
    password: str,
    hash_name: str,
    salt: bytes | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> ScramCredentials:
    """Derive stored SCRAM keys from a password that has already been PRECIS-prepared."""
    digest = HASHES[hash_name]
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac(digest, password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = hashlib.new(digest, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", digest).digest()
    return ScramCredentials(hash_name, salt, iterations, stored_key, server_key)


def derive_all(password: str, iterations: int = DEFAULT_ITERATIONS) -> list[ScramCredentials]:
    """One credential set per supported hash, each with its own salt."""
    return [derive_credentials(password, name, iterations=iterations) for name in HASHES]
