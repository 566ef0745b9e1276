# -*- test-case-name: tests.unit.test_ctl -*-
"""Password hashes for operator logins (the manhole's ``password_hash`` config key).

Format: ``pbkdf2-sha256$ITERATIONS$SALT$HASH``, salt and hash in standard base64, so a hash can be
pasted into TOML as a plain string. XMPP accounts do not use this: they keep SCRAM keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

SCHEME = "pbkdf2-sha256"
DEFAULT_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
SALT_BYTES = 16


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash of ``password`` in the config format."""
    if not password:
        raise ValueError("the password is empty")
    salt = os.urandom(SALT_BYTES)
    digest = _pbkdf2(password, salt, iterations)
    return "$".join((SCHEME, str(iterations), _b64(salt), _b64(digest)))


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches ``hashed``; compares in constant time.

    Raises ValueError when ``hashed`` is not in the config format, so a typo in the config is
    reported rather than silently refusing every login.
    """
    iterations, salt, expected = parse_hash(hashed)
    return hmac.compare_digest(_pbkdf2(password, salt, iterations), expected)


def parse_hash(hashed: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest) of a hash string; ValueError naming what is wrong."""
    parts = hashed.strip().split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError(f"a password hash looks like {SCHEME}$ITERATIONS$SALT$HASH")
    _, iterations, salt, digest = parts
    if not (iterations.isascii() and iterations.isdigit()) or int(iterations) < 1:
        raise ValueError(f"a password hash's iteration count must be positive: {iterations!r}")
    try:
        return int(iterations), _unb64(salt), _unb64(digest)
    except (binascii.Error, ValueError):
        raise ValueError("the salt and hash of a password hash must be base64") from None


def _pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    data = base64.b64decode(text.encode("ascii"), validate=True)
    if not data:
        raise ValueError("empty")
    return data
