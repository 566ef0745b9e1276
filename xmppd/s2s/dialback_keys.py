"""Dialback keys (XEP-0185, XEP-0220 §2.4): HMAC-SHA256 keyed with a secret that never leaves us.

The Authoritative Server must recognise its own keys on a later <db:verify/> without storing
them, so a key is a function of the secret and the triple it vouches for::

    key = hex(HMAC-SHA256(hex(SHA256(secret)), "receiving originating stream_id"))

XEP-0185 §3's worked example fixes two details the formula leaves open: the HMAC key is the
*hex text* of SHA256(secret) (that is how its example value comes out), and the three parts are
joined with single U+0020 spaces. Domains cannot contain spaces, so the join is unambiguous.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_BYTES = 32
MIN_SECRET_BYTES = 16  # RFC 2104 §3: an HMAC key shorter than half the hash output is weak


class DialbackSecretError(Exception):
    """The secret file cannot be read or created; the message names the file."""


def dialback_key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    """The key the Originating Server sends in <db:result/> for this stream (lower-case hex).

    ``receiving`` and ``originating`` are prepared domains; ``stream_id`` is the id the
    Receiving Server gave its response stream header. Raises ValueError on an empty part or a
    domain with whitespace, which would make the joined text ambiguous.
    """
    _check_part("receiving domain", receiving)
    _check_part("originating domain", originating)
    if not stream_id:
        raise ValueError("dialback key: empty stream id")
    hmac_key = hashlib.sha256(secret).hexdigest().encode("ascii")
    text = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(hmac_key, text, hashlib.sha256).hexdigest()


def verify_key(secret: bytes, receiving: str, originating: str, stream_id: str,
               key: str) -> bool:
    """Whether ``key`` (from a <db:verify/>) is the one we made for this triple.

    Compared in constant time (a timing leak would let a peer forge keys byte by byte).
    Whitespace around the key is XML formatting and ignored. Input that could never have
    produced a key (an empty stream id, a domain with spaces) is simply not valid: False.
    """
    try:
        expected = dialback_key(secret, receiving, originating, stream_id)
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), key.strip().encode("utf-8"))


def load_or_create_secret(path: Path | str) -> bytes:
    """The server's dialback secret: read from ``path``, or made (32 random bytes) and kept there.

    Kept across restarts so that keys issued just before a restart still verify; the file is
    created mode 0600 (parent directories 0700) and tightened to 0600 if it is looser. The
    secret is never logged. Raises DialbackSecretError naming the file when it cannot be used.
    """
    path = Path(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            return _create(path)
        except FileExistsError:
            return _read(path)
    except OSError as error:
        raise DialbackSecretError(
            f"dialback secret {path}: {error.strerror or error}") from None


def _create(path: Path) -> bytes:
    """Write a new secret; O_EXCL so two processes starting at once never both win."""
    secret = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
        out.flush()
        os.fsync(out.fileno())
    return secret


def _read(path: Path) -> bytes:
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    secret = path.read_bytes()
    if len(secret) < MIN_SECRET_BYTES:
        raise DialbackSecretError(
            f"dialback secret {path}: {len(secret)} bytes, at least {MIN_SECRET_BYTES} needed "
            "(delete the file to make a new one)")
    return secret


def _check_part(what: str, value: str) -> None:
    if not value:
        raise ValueError(f"dialback key: empty {what}")
    if any(c.isspace() for c in value):
        raise ValueError(f"dialback key: whitespace in {what} {value!r}")
