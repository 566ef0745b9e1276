"""A client stream of a real Server (no plugins, nothing stored) on an in-memory transport,
for fuzzing the stream layer before authentication."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.helpers import ServerFixture
from xmppd.c2s.stream import ClientStream


@functools.cache
def _server():
    return ServerFixture(Path(tempfile.mkdtemp(prefix="xmppd-fuzz-"))).server


def client_stream() -> tuple[ClientStream, StringTransport]:
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    stream = ClientStream(_server(), None)
    stream.makeConnection(transport)
    return stream, transport
