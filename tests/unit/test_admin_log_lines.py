"""Log lines an admin can act on: a session's end with its JID, duration and cause; a TLS
handshake on a STARTTLS port named as such; stream errors without an empty reason."""

from __future__ import annotations

from twisted.logger import formatEvent, globalLogPublisher

from tests.unit.test_c2s_stream import PASSWORD, StreamTestCase
from xmppd.c2s.hooks import format_duration

CLIENT_HELLO = bytes.fromhex("16030100c8010000c40303") + bytes(32)


class LogLines(StreamTestCase):
    def setUp(self):
        self.lines: list[str] = []

        def observe(event) -> None:
            if event.get("log_namespace", "").startswith("xmppd"):
                self.lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return super().setUp()

    def matching(self, start: str) -> list[str]:
        return [line for line in self.lines if line.startswith(start)]

    async def test_logout_names_the_jid_the_duration_and_why(self):
        h = self.harness()
        await h.login("alice", PASSWORD, "laptop")
        self.fixture.clock.advance(200)
        h.feed("</stream:stream>")
        self.assertEqual(self.matching("session "),
                         ["session alice@localhost/laptop ended after 3 min 20 s: logout"])

    async def test_connection_lost(self):
        h = self.harness()
        await h.login("alice", PASSWORD, "laptop")
        h.stream.connectionLost(None)
        self.assertEqual(self.matching("session "),
                         ["session alice@localhost/laptop ended after 0 s: connection lost"])

    async def test_conflict(self):
        first = self.harness()
        await first.login("alice", PASSWORD, "laptop")
        second = self.harness()
        await second.login("alice", PASSWORD, "laptop")
        self.assertEqual(self.matching("session "), [
            "session alice@localhost/laptop ended after 0 s: conflict (replaced by a new "
            "session)"])

    async def test_other_stream_errors_name_their_condition(self):
        h = self.harness()
        await h.login("alice", PASSWORD, "laptop")
        h.feed("<nonsense/>")
        self.assertEqual(self.matching("session "), [
            "session alice@localhost/laptop ended after 0 s: error (unsupported-stanza-type)"])

    async def test_shutdown(self):
        h = self.harness()
        await h.login("alice", PASSWORD, "laptop")
        h.stream.close_stream("system-shutdown")
        self.assertEqual(self.matching("session "),
                         ["session alice@localhost/laptop ended after 0 s: server shutdown"])

    def test_tls_client_hello_on_a_starttls_port(self):
        h = self.harness()
        h.feed(CLIENT_HELLO)
        self.assertEqual(len(self.matching("TLS ClientHello from 127.0.0.1:40000 on a STARTTLS "
                                           "port")), 1)
        self.assertEqual(self.matching("stream error"), [])  # not "not-well-formed"
        self.assertEqual(h.transport.value(), b"")  # no XML thrown at a TLS client
        self.assertTrue(h.transport.disconnected or h.transport.disconnecting)

    def test_stream_error_without_text_has_no_empty_reason(self):
        h = self.harness()
        h.header()
        h.stream.close_stream("policy-violation")
        self.assertEqual(self.matching("stream error"),
                         ["stream error policy-violation to 127.0.0.1:40000"])

    def test_not_well_formed_is_still_reported(self):
        h = self.harness()
        h.feed("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams'><a><b></a>")
        (line,) = self.matching("stream error")
        self.assertTrue(line.startswith("stream error not-well-formed to 127.0.0.1:40000: "),
                        line)


def test_format_duration():
    assert [format_duration(s) for s in (0, 4.9, 60, 200, 3600, 7500, -1)] == [
        "0 s", "4 s", "1 min 0 s", "3 min 20 s", "1 h 0 min", "2 h 5 min", "0 s"]
