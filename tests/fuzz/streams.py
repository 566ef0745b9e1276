"""A client stream of a real Server (no plugins, nothing stored) on an in-memory transport,
for fuzzing the stream layer before authentication."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tests.helpers import ServerFixture
from xmppd.c2s.stream import ClientStream
from xmppd.server import Server
from xmppd.storage.sqlite import SQLiteStorage


@functools.cache
def _fixture() -> ServerFixture:
    """The config, read once (the fixture writes it to a temporary folder)."""
    return ServerFixture(Path(tempfile.mkdtemp(prefix="xmppd-fuzz-")))


def _server() -> Server:
    """A new server per stream: no session or state of one example leaks into the next."""
    fixture = _fixture()
    return Server(fixture.server.config, SQLiteStorage(":memory:"), Clock())


def client_stream(direct_tls: bool = False, auth=None) -> tuple[ClientStream, StringTransport]:
    """A new stream; ``direct_tls`` makes it count as encrypted (PLAIN and SASL2 offered),
    ``auth`` replaces the server's IAuthBackend (the fixture's storage is never opened)."""
    server = _server()
    if auth is not None:
        server.auth = auth
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    stream = ClientStream(server, None, direct_tls)
    stream.makeConnection(transport)
    return stream, transport
