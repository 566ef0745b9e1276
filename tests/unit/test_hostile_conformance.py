"""Issue 15's conformance rules in memory: the stream version answer (RFC 6120 §4.7.5), the
IQ checks (§8.1.3, §8.2.3) and forged XEP-0359 stanza-ids. The same cases over real sockets:
tests/integration/test_hostile_conformance.py."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.router import ServedDomains, unforged
from xmppd.stanza import Stanza, check_type
from xmppd.stream.version import answer_version
from xmppd.xml import StreamParser


@pytest.mark.parametrize("offered, header, supported", [
    ("1.0", "1.0", True),
    ("1.1", "1.0", True),
    ("2.0", "1.0", True),
    ("01.000", "1.0", True),
    ("99999999999999999999.0", "1.0", True),
    ("0.9", "0.9", False),
    ("0.99", "0.99", False),
    (None, None, False),
    ("", "1.0", False),
    ("1", "1.0", False),
    ("one.zero", "1.0", False),
    ("1.0.0", "1.0", False),
    ("١.٠", "1.0", False),  # Arabic-Indic digits are digits to str.isdigit, not to the RFC
])
def test_the_version_we_answer(offered, header, supported):
    answer = answer_version(offered)
    assert (answer.header, answer.supported) == (header, supported)


def parse(xml: str) -> domish.Element:
    elements = []
    parser = StreamParser(lambda header: None, elements.append, lambda: None)
    parser.feed(b"<stream:stream xmlns='jabber:client' "
                b"xmlns:stream='http://etherx.jabber.org/streams'>" + xml.encode())
    return elements[0]


def stanza(xml: str) -> Stanza:
    element = parse(xml)
    return Stanza(element, parse_jid("alice@localhost/a"), parse_jid("localhost"))


@pytest.mark.parametrize("xml", [
    "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='get' id=''><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='result'/>",
    "<iq type='sett' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='get' id='1'/>",
    "<iq type='get' id='1'>text only</iq>",
    "<iq type='set' id='1'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
    "<message type='chatty'/>",
    "<presence type='invisible'/>",
])
def test_bad_stanzas_are_bad_request(xml):
    with pytest.raises(StanzaError) as raised:
        check_type(stanza(xml))
    assert raised.value.condition == "bad-request"


@pytest.mark.parametrize("xml", [
    "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='get' id='1'> <ping xmlns='urn:xmpp:ping'/> </iq>",
    "<iq type='result' id='1'/>",
    "<iq type='result' id='1'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
    "<iq type='error' id='1'><a xmlns='urn:a'/><error type='cancel'/></iq>",
    "<message/>",
    "<presence/>",
])
def test_good_stanzas_pass(xml):
    check_type(stanza(xml))


def test_forged_stanza_ids_go_and_others_stay():
    served = ServedDomains(frozenset({"localhost"}), {"pubsub.localhost": object()})
    original = parse(
        "<message to='bob@localhost'><body>x</body>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='BOB@localhost' id='1'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='2'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='pubsub.localhost' id='3'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='4'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='carol@localhost' id='5'/>"
        "<stanza-id xmlns='urn:xmpp:sid:0' by='remote.example' id='6'/>"
        "<stanza-id xmlns='urn:other' by='localhost' id='7'/>"
        "</message>")
    message = Stanza(original, parse_jid("alice@localhost/a"), parse_jid("bob@localhost"))
    cleaned = unforged(message, served)
    kept = [child["id"] for child in cleaned.element.elements() if child.name == "stanza-id"]
    assert kept == ["5", "6", "7"]  # carol's archive is not on this message's path
    assert len([c for c in original.elements() if c.name == "stanza-id"]) == 7  # a copy


def test_a_message_without_stanza_ids_is_the_same_object():
    message = Stanza(parse("<message><body>x</body></message>"), None, None)
    assert unforged(message, ServedDomains(frozenset({"localhost"}), {})) is message


class TestRestartDomain:
    """Prosody CVE-2018-10847: a stream restarted after SASL for another of the server's
    domains must not carry the authentication over (RFC 6120 §4.3.3, §6.4.6)."""

    @pytest.fixture
    def server(self, tmp_path):
        from twisted.internet.task import Clock

        from tests.helpers import write_config
        from xmppd.config import load_config
        from xmppd.server import Server
        from xmppd.storage.sqlite import SQLiteStorage

        config = load_config(write_config(tmp_path, """
            [server]
            domains = ["localhost", "other.example"]
            data_dir = "data"
            [c2s]
            listen = []
            direct_tls = []
        """))
        return Server(config, SQLiteStorage(":memory:"), Clock())

    def test_a_restart_for_another_of_our_domains_is_host_unknown(self, server):
        import base64

        from twisted.internet import defer

        from tests.helpers import StreamHarness

        class Auth:  # alice@localhost with any password: the domain check is what counts
            def check_password(self, localpart, domain, password):
                return defer.succeed((localpart, domain) == ("alice", "localhost"))

            def scram_credentials(self, localpart, domain, hash_name):
                return defer.succeed(None)

        server.auth = Auth()
        h = StreamHarness(server, direct_tls=True)  # PLAIN needs TLS
        h.header("localhost")
        h.events()
        h.feed("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
               + base64.b64encode(b"\0alice\0secret").decode() + "</auth>")
        assert [e.name for e in h.elements()] == ["success"]
        h.restart_reader()
        h.header("other.example")
        assert h.stream_error() == "host-unknown"
        assert h.closed
