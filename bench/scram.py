"""The client side of SCRAM-SHA-256 (RFC 5802 §3, RFC 7677) for the load generator.

Unlike tests/scramclient.py, it keeps the keys it derived from (password, salt, iterations)
as RFC 5802 §5.1 allows a client to: the ~10,000 PBKDF2 rounds are paid once per salt, not
once per login, so the load generator's CPU goes into the logins it measures, and the server
still does all of its work (it never sees the password).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

DIGEST = "sha256"
MECHANISM = "SCRAM-SHA-256"
GS2_HEADER = "n,,"  # no channel binding, no authzid: what both servers accept on plain SCRAM


class ScramError(Exception):
    """The server's SCRAM message was malformed, or its signature did not verify."""


@functools.lru_cache(maxsize=64)
def client_keys(password: bytes, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(ClientKey, ServerKey) for one password and salt: the expensive part, cached."""
    salted = hashlib.pbkdf2_hmac(DIGEST, password, salt, iterations)
    return (hmac.new(salted, b"Client Key", DIGEST).digest(),
            hmac.new(salted, b"Server Key", DIGEST).digest())


class ScramClient:
    """One exchange: ``first()`` → ``final(server_first)`` → ``verify(server_final)``."""

    def __init__(self, username: str, password: str) -> None:
        # The load generator's names need neither SASLprep nor '='/',' escaping (u1, hub...).
        self.username = username
        self.password = password.encode("utf-8")
        self.nonce = base64.b64encode(os.urandom(18)).decode("ascii")
        self.first_bare = f"n={username},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (GS2_HEADER + self.first_bare).encode("ascii")

    def final(self, server_first: bytes) -> bytes:
        try:
            fields = dict(item.split("=", 1) for item in server_first.decode("ascii").split(","))
            nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
        except (ValueError, KeyError, UnicodeDecodeError) as error:
            raise ScramError(f"bad server-first-message {server_first!r}") from error
        if not nonce.startswith(self.nonce):
            raise ScramError("the server's nonce does not extend ours")
        client_key, server_key = client_keys(self.password, salt, iterations)
        without_proof = f"c={base64.b64encode(GS2_HEADER.encode()).decode()},r={nonce}"
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        stored_key = hashlib.new(DIGEST, client_key).digest()
        signature = hmac.new(stored_key, auth_message, DIGEST).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_signature = hmac.new(server_key, auth_message, DIGEST).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode("ascii")

    def verify(self, server_final: bytes) -> None:
        """The server proves it knew our keys (mutual authentication)."""
        if server_final != b"v=" + base64.b64encode(self.server_signature):
            raise ScramError(f"bad server signature in {server_final!r}")
