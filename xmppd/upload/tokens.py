# -*- test-case-name: tests.unit.test_upload -*-
"""The token a slot's PUT carries (``Authorization: Bearer ...``): an HMAC-SHA256, under the
service's secret, of everything the slot allows (id, size, type, deadline). A token cannot
be forged or moved to another slot or size without the secret, and is checked in constant
time. The secret comes from the config, or is generated once and kept in a store."""

from __future__ import annotations

import hashlib
import hmac


class SlotSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("an upload secret needs at least 16 bytes")
        self._secret = secret

    def sign(self, slot_id: str, size: int, content_type: str, deadline: float) -> str:
        message = "\0".join((slot_id, str(size), content_type, repr(float(deadline))))
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def verify(self, token: str, slot_id: str, size: int, content_type: str,
               deadline: float) -> bool:
        expected = self.sign(slot_id, size, content_type, deadline)
        return hmac.compare_digest(token.encode("utf-8", "replace"), expected.encode("ascii"))
