"""Shared test helpers: a real server on in-memory transports (real SQLite, real parser)."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tests.scramclient import ScramClient
from xmppd.c2s.stream import ClientStream
from xmppd.config import load_config
from xmppd.registry import PluginRegistry
from xmppd.sasl.credentials import derive_all
from xmppd.server import Server
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.xml import StreamParser

HEADER = ("<?xml version='1.0'?><stream:stream to='{to}' version='1.0' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams'>")


def write_config(directory: Path, body: str = "") -> Path:
    path = directory / "xmppd.toml"
    path.write_text(textwrap.dedent(body))
    return path


def sync(d):
    """The result of a Deferred that has already fired (fakes that answer at once); anything
    that waits on a thread or the network belongs in a trial TestCase that awaits it."""
    results = []
    d.addBoth(results.append)
    assert results, "Deferred has not fired"
    return results[0]


class ServerFixture:
    """A Server on a Clock, with real SQLite storage in memory and the built-in plugins."""

    def __init__(self, directory: Path, c2s: str = "require_encryption = false\n") -> None:
        config = load_config(write_config(directory, f"""
            [server]
            domains = ["localhost"]
            data_dir = "data"
            [c2s]
            listen = []
            direct_tls = []
            {c2s}
        """))
        self.clock = Clock()
        self.storage = SQLiteStorage(":memory:")
        self.server = Server(config, self.storage, self.clock)
        self.registry = PluginRegistry(self.server, config.plugins.enabled,
                                       config.plugins.sections)

    async def start(self) -> None:
        await self.storage.open()
        await self.registry.load()

    async def add_user(self, localpart: str, password: str) -> None:
        await self.storage.users.create_user(localpart, "localhost", derive_all(password, 4096))

    async def stop(self) -> None:
        self.registry.unload()
        await self.storage.close()


class StreamHarness:
    """One client stream over a StringTransport; ``events()`` parses what the server wrote."""

    def __init__(self, server: Server, direct_tls: bool = False) -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.stream = ClientStream(server, None, direct_tls)
        self.stream.makeConnection(self.transport)
        self._events: list = []
        self._parser = self._new_parser()

    def _new_parser(self) -> StreamParser:
        return StreamParser(lambda header: self._events.append(("header", header)),
                            lambda element: self._events.append(("element", element)),
                            lambda: self._events.append(("end", None)))

    def feed(self, data: str | bytes) -> None:
        self.stream.dataReceived(data.encode() if isinstance(data, str) else data)

    def header(self, to: str = "localhost") -> None:
        self.feed(HEADER.format(to=to))

    def events(self) -> list:
        """Everything the server wrote since the last call, parsed by our own parser."""
        written = self.transport.value()
        self.transport.clear()
        if written:
            self._parser.feed(written)
        events, self._events = self._events, []
        return events

    def elements(self) -> list:
        return [value for kind, value in self.events() if kind == "element"]

    def restart_reader(self) -> None:
        """The server restarted the stream: read its next header with a fresh parser."""
        self._parser = self._new_parser()

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting

    def stream_error(self) -> str | None:
        """The condition of the stream error written, if any."""
        for kind, value in self.events():
            if kind == "element" and value.name == "error":
                return next(value.elements()).name
        return None

    async def login(self, localpart: str, password: str, resource: str | None = "test") -> str:
        """SCRAM-SHA-256 then bind; returns the bound full JID."""
        await self.authenticate(localpart, password)
        bind_resource = f"<resource>{resource}</resource>" if resource else ""
        self.feed(f"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"{bind_resource}</bind></iq>")
        (result,) = self.elements()
        assert result["type"] == "result", result.toXml()
        return str(next(next(result.elements()).elements()))

    async def authenticate(self, localpart: str, password: str) -> None:
        """SCRAM-SHA-256 and the restarted stream's header: ready to bind (or resume)."""
        self.header()
        self.events()
        client = ScramClient("sha-256", localpart, password)
        self.feed(client.auth_xml())
        challenge = await self.wait_for_element("challenge")
        self.feed(client.response_xml(str(challenge)))
        success = await self.wait_for_element("success")
        assert base64.b64decode(str(success)) == client.expected_success_data()
        self.restart_reader()
        self.header()
        self.bind_features = [v for k, v in self.events() if k == "element"][0]

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until the stream has no stanza's work pending (a storage answer comes from a
        thread, later on a busy machine), so the next ``feed`` is handled at once."""
        from twisted.internet import reactor, task

        waited = 0.0
        while self.stream._waiting is not None or self.stream._backlog:
            if waited >= timeout:
                raise AssertionError(f"the stream still had work pending after {timeout}s")
            await task.deferLater(reactor, 0.01, lambda: None)
            waited += 0.01

    async def wait_for_element(self, name: str, timeout: float = 5.0):
        """Storage answers from a thread: poll the real reactor until the element arrives."""
        from twisted.internet import reactor, task

        waited = 0.0
        while waited < timeout:
            for element in self.elements():
                if element.name == name:
                    return element
                raise AssertionError(f"expected <{name}/>, got {element.toXml()}")
            await task.deferLater(reactor, 0.01, lambda: None)
            waited += 0.01
        raise AssertionError(f"no <{name}/> within {timeout}s")
