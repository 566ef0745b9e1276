"""Archive ids made quickly, in the order they are made: a time-ordered prefix, then random
bits (unique without coordination and unpredictable, as XEP-0359 §3 asks), read from the OS
in bulk.

Every archived message needs one or two ids before delivery. ``secrets.token_urlsafe`` costs
a getrandom() system call each (a tenth of the server's time under ``make bench``'s
saturated messages); reading the random part 4.5 KiB at a time makes that one call per 512
ids. And ids that sort in the order they are made cost the archive far less to write: keyed
by (owner, id), its table takes each batch at the end of each owner's range, a handful of
pages, instead of one random page per entry all over an index that outgrows the cache, and
the id is the position, so no serial and its index are needed (xmppd.storage.stores.
archive_log; bench/archive_writes.py: a third of the CPU per batch at 200,000 entries). The
time digits are the entry's stamp (``ids.stamp``): a time range is a range of ids.

An id is 21 characters of base64 digits in an alphabet in ASCII order ('-', digits, capitals,
'_', small letters: URL-safe, and comparing two ids as str compares their numbers): 9 digits
of microseconds since the epoch (made strictly increasing within the process, so two ids of
the same microsecond still sort in order), then 12 random digits (72 bits).
"""

from __future__ import annotations

import base64
import os
import time

_RANDOM_BYTES = 9  # 72 random bits: 12 digits
_IDS_PER_READ = 512
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"  # value order
_ORDERED = bytes.maketrans(_BASE64URL, bytes(sorted(_BASE64URL)))  # digit v -> v-th in ASCII
_DIGITS = bytes(sorted(_BASE64URL)).decode("ascii")
_LOW = [_DIGITS[n >> 6] + _DIGITS[n & 63] for n in range(4096)]  # the last 2 time digits
ID_LENGTH = 9 + _RANDOM_BYTES * 4 // 3


def _digits(number: int, width: int) -> str:
    """``number`` in ``width`` base64 digits of the ordered alphabet."""
    return "".join(_DIGITS[(number >> 6 * at) & 63] for at in range(width - 1, -1, -1))


_TIME_DIGITS = 9
_MAX_TIME = 64 ** _TIME_DIGITS - 1


def position_bound(stamp: float, offset: int = 0) -> str:
    """The time digits of ``stamp`` (POSIX seconds) ``offset`` microseconds on: every id made
    at ``stamp`` or later is greater, as str, than its bound with offset -1, and every id made
    at or before it is less than its bound with offset 2 (one microsecond either way for a
    float's rounding)."""
    micros = min(max(round(stamp * 1_000_000) + offset, 0), _MAX_TIME)
    return _digits(micros, _TIME_DIGITS)


def micros_of(position: str) -> int:
    """The microseconds an id (or a position) starts with."""
    number = 0
    for digit in position[:_TIME_DIGITS]:
        number = number * 64 + _DIGITS.index(digit)
    return number


def stamp_position(stamp: float, number: int) -> str:
    """A position in the same order as ids for an entry of ``stamp`` that was numbered
    ``number`` (an archive entry from before these ids, adopted with its own id)."""
    return position_bound(stamp) + "-" + _digits(number, 11)


class EntryIds:
    """``ids()`` is a fresh id, greater (as a str) than every id this instance made before,
    even when the clock goes back; ``ids.stamp`` then holds the time it stands for.
    ``clock`` gives nanoseconds since the epoch (the reactor's, in the MAM plugin)."""

    __slots__ = ("_random", "_at", "_last", "_clock", "_high", "_high_digits", "stamp")

    def __init__(self, clock=time.time_ns) -> None:
        self._random = ""
        self._at = 0
        self._last = 0
        self._clock = clock  # nanoseconds since the epoch
        self._high = -1  # the microseconds >> 12 whose 7 digits are in _high_digits
        self._high_digits = ""
        self.stamp = 0.0  # the time of the last id made, in POSIX seconds: its entry's stamp

    def not_before(self, position: str) -> None:
        """Make every later id greater than ``position`` (the newest in the archive when the
        server starts: the clock may have gone back across the restart)."""
        self._last = max(self._last, micros_of(position))

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._random):
            raw = base64.urlsafe_b64encode(os.urandom(_RANDOM_BYTES * _IDS_PER_READ))
            self._random = raw.translate(_ORDERED).decode("ascii")
            at = 0
        self._at = at + 12
        now = self._clock() // 1000
        if now <= self._last:
            now = self._last + 1
        self._last = now
        self.stamp = now / 1_000_000
        high = now >> 12
        if high != self._high:
            self._high, self._high_digits = high, _digits(high, 7)
        return self._high_digits + _LOW[now & 4095] + self._random[at:at + 12]
