"""Archive ids made quickly: the same 96 random bits as xmppd.storage.records.new_entry_id
(unique without coordination, not guessable: XEP-0359 §4), read from the OS in bulk.

Every archived message needs one or two ids before delivery, and ``secrets.token_urlsafe``
costs a getrandom() system call each: a tenth of the server's time under ``make bench``'s
saturated messages. Reading 6 KiB at once makes that one call per 512 ids; the bytes are the
same CSPRNG output, handed out once each.
"""

from __future__ import annotations

import base64
import os

from xmppd.storage.records import ENTRY_ID_BYTES

_IDS_PER_READ = 512


class EntryIds:
    """``ids()`` is a fresh id (16 URL-safe characters), as ``new_entry_id()`` makes."""

    __slots__ = ("_bytes", "_at")

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at + ENTRY_ID_BYTES > len(self._bytes):
            self._bytes = os.urandom(ENTRY_ID_BYTES * _IDS_PER_READ)
            at = 0
        self._at = at + ENTRY_ID_BYTES
        return base64.urlsafe_b64encode(self._bytes[at:at + ENTRY_ID_BYTES]).decode("ascii")
