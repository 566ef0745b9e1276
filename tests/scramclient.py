"""The client side of SCRAM (RFC 5802 §3), written from the RFC, to drive our server in tests."""

from __future__ import annotations

import base64
import hashlib
import hmac

from xmppd.sasl.credentials import HASHES

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


class ScramClient:
    """The client side of SCRAM, from RFC 5802 §3, to drive the server in tests."""

    def __init__(
        self,
        hash_name: str,
        username: str,
        password: str,
        client_nonce: str = "clientnonce42",
        gs2_header: str = "n,,",
        cb_data: bytes = b"",
        extensions: str = "",
    ) -> None:
        self.digest = HASHES[hash_name]
        self.username = username
        self.password = password
        self.client_nonce = client_nonce
        self.gs2_header = gs2_header
        self.cb_data = cb_data
        self.extensions = extensions
        self.server_signature = b""

    def first(self) -> bytes:
        name = self.username.replace("=", "=3D").replace(",", "=2C")
        self.first_bare = f"n={name},r={self.client_nonce}"
        return (self.gs2_header + self.first_bare).encode("utf-8")

    def auth_xml(self, mechanism: str = "SCRAM-SHA-256") -> str:
        """The RFC 6120 <auth/> that opens the exchange with our first message."""
        first = base64.b64encode(self.first()).decode()
        return f"<auth xmlns='{SASL}' mechanism='{mechanism}'>{first}</auth>"

    def response_xml(self, challenge: str) -> str:
        """The RFC 6120 <response/> to the server's <challenge/> (its base64 text)."""
        final = base64.b64encode(self.final(base64.b64decode(challenge))).decode()
        return f"<response xmlns='{SASL}'>{final}</response>"

    def final(self, server_first: bytes) -> bytes:
        attributes = dict(item.split("=", 1) for item in server_first.decode().split(","))
        nonce = attributes["r"]
        assert nonce.startswith(self.client_nonce)
        salted = hashlib.pbkdf2_hmac(
            self.digest,
            self.password.encode("utf-8"),
            base64.b64decode(attributes["s"]),
            int(attributes["i"]),
        )
        binding = base64.b64encode(self.gs2_header.encode("utf-8") + self.cb_data).decode()
        without_proof = f"c={binding},r={nonce}{self.extensions}"
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        client_key = hmac.new(salted, b"Client Key", self.digest).digest()
        stored_key = hashlib.new(self.digest, client_key).digest()
        signature = hmac.new(stored_key, auth_message, self.digest).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", self.digest).digest()
        self.server_signature = hmac.new(server_key, auth_message, self.digest).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def expected_success_data(self) -> bytes:
        return b"v=" + base64.b64encode(self.server_signature)
