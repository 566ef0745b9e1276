# -*- test-case-name: tests.unit.test_stream_output -*-
"""Coalesce what the server writes to each stream while it handles one read.

One read from a client can carry many stanzas, and routing them writes to many streams, often
several times to the same one (a chat partner). Written one by one, each stanza would be its
own TLS record and its own ``send()``. While a stream handles input, writes are queued per
stream instead, and flushed in order when the outermost handling returns: one TLS record and
one system call per stream per read. Writes made at any other time (timers, storage
callbacks) go straight out, so nothing ever waits for a later reactor turn.

The reactor runs in one thread, so one batch serves the whole process.
"""

from __future__ import annotations

from typing import Protocol

from xmppd.logs import get_logger

log = get_logger(__name__)


class Output(Protocol):
    """What a stream offers the batch: its queue, and a way to write the queue out."""

    pending: list[bytes]

    def flush(self) -> None: ...


class WriteBatch:
    """Nested begin()/end() pairs; the outermost end() flushes every queued stream."""

    def __init__(self) -> None:
        self._depth = 0
        self._queued: list[Output] = []

    @property
    def active(self) -> bool:
        return self._depth > 0

    def begin(self) -> None:
        self._depth += 1

    def end(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        # A flush cannot start input handling (writes never read), but be safe if it did:
        # anything queued meanwhile is flushed by this same loop.
        self._depth += 1
        try:
            queued = self._queued
            index = 0
            while index < len(queued):
                output = queued[index]
                index += 1
                try:
                    output.flush()
                except Exception:
                    log.failure("writing to {output!r} failed", output=output)
        finally:
            self._queued = []
            self._depth -= 1

    def queue(self, output: Output, data: bytes) -> bool:
        """Queue ``data`` for ``output`` if a batch is open; False means write it now."""
        if not self._depth:
            return False
        if not output.pending:
            self._queued.append(output)
        output.pending.append(data)
        return True


batch = WriteBatch()
