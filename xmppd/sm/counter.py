# -*- test-case-name: tests.unit.test_sm_counter -*-
"""The counts of XEP-0198 §4: what one side handled, and what the other still holds.

Both counts are sequence numbers modulo 2^32 (§4: "the value of 'h' ... wraps to zero"), so
every comparison is on the difference, never on the raw values. An acknowledgement that
goes backwards (an ``<a/>`` older than the last one, reordered by nobody but a confused
client) is ignored rather than read as 4 billion new acknowledgements; one that
acknowledges more than was ever sent is the ``handled-count-too-high`` stream error.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError

MODULUS = 2 ** 32
HALF = MODULUS // 2  # a difference above this is a step backwards, not a huge step forwards


def increment(count: int) -> int:
    """The next sequence number, wrapping to zero after 2^32 - 1."""
    return (count + 1) % MODULUS


def parse_uint32(value: str | None) -> int | None:
    """An xs:unsignedInt attribute ('h', 'max') as an int, or None when absent or malformed."""
    if value is None or not value.isdigit():
        return None
    number = int(value)
    return number if number < MODULUS else None


class HandledCountTooHigh(StreamError):
    """§4: the peer acknowledged ``h`` stanzas while only ``sent`` were sent; an
    undefined-condition stream error that carries the SM element with both numbers."""

    def __init__(self, h: int, sent: int) -> None:
        super().__init__("undefined-condition",
                         f"handled-count-too-high: h={h}, send-count={sent}")
        self.h = h
        self.sent = sent

    def to_element(self) -> domish.Element:
        error = super().to_element()
        detail = error.addElement((ns.SM, "handled-count-too-high"))
        detail["h"] = str(self.h)
        detail["send-count"] = str(self.sent)
        return error


class OutboundQueue:
    """The stanzas sent to the client that it has not acknowledged, oldest first, each with
    the reactor time it was first sent (for the delay stamp if it must be sent again).

    ``sent`` is the sequence number of the last stanza sent; those in the queue are the last
    ``len(queue)`` of them.
    """

    __slots__ = ("_items", "sent")

    def __init__(self) -> None:
        # an empty tuple while nothing waits: an idle session's acknowledged queue would
        # otherwise keep a deque (624 bytes) for nothing; one is made at the next push
        self._items: deque[tuple[domish.Element, float]] | tuple = ()
        self.sent = 0

    def push(self, element: domish.Element, when: float) -> None:
        if not self._items:
            self._items = deque()
        self._items.append((element, when))
        self.sent = increment(self.sent)

    @property
    def acknowledged(self) -> int:
        """The sequence number of the last stanza the client acknowledged."""
        return (self.sent - len(self._items)) % MODULUS

    def acknowledge(self, h: int) -> int:
        """The client handled every stanza up to ``h``: forget them; returns how many were
        dropped. HandledCountTooHigh when ``h`` is past what was sent."""
        step = (h - self.acknowledged) % MODULUS
        if step > HALF:
            return 0  # an old acknowledgement: everything it covers is gone already
        if step > len(self._items):
            raise HandledCountTooHigh(h, self.sent)
        for _ in range(step):
            self._items.popleft()
        if not self._items:
            self._items = ()
        return step

    def refill(self, items: list[tuple[domish.Element, float]], sent: int) -> None:
        """The queue of a session handed over by another node: ``items`` unacknowledged,
        the last of them sequence number ``sent``."""
        self._items = deque(items) if items else ()
        self.sent = sent % MODULUS

    def drain(self) -> list[tuple[domish.Element, float]]:
        """Take every unacknowledged stanza out (the session ended for good)."""
        items = list(self._items)
        self._items = ()
        return items

    def __iter__(self) -> Iterator[tuple[domish.Element, float]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
