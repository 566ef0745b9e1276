"""Issue 15's conformance gaps, over real sockets against a real xmppd: what a hostile or
broken client or peer server sends, and the exact RFC 6120 answer it gets.

Each case is in docs/bad-input.md with the RFC section it comes from.
"""

from __future__ import annotations

import re
import socket
import struct
import time

import pytest

from tests.integration.conftest import serve
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_session_hibernation import bound

STREAMS = "http://etherx.jabber.org/streams"
S2S_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
              "xmlns:db='jabber:server:dialback' xmlns:stream='" + STREAMS + "' "
              "to='localhost' from='evil.example' version='1.0'>")


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path, c2s_extra="max_resources = 2\n")
    proc.config.write_text(proc.config.read_text()
                           + f'[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]\n')
    yield from serve(proc)


def answer_to(client: RawClient, xml: str) -> bytes:
    """Send ``xml`` then a ping; everything the server said up to the ping's answer."""
    client.received = b""
    client.send(xml + "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    return client.read_until(b"id='sync'")


# --------------------------------------------------------------------------- IQ rules


@pytest.mark.parametrize("iq", [
    "<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",  # no id (§8.1.3)
    "<iq type='fetch' id='t1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",  # §8.2.3
    "<iq id='t2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",  # no type
    "<iq type='get' id='t3' to='localhost'/>",  # no payload (§8.2.3)
    "<iq type='set' id='t4' to='localhost'><ping xmlns='urn:xmpp:ping'/>"
    "<query xmlns='jabber:iq:version'/></iq>",  # two payloads
    "<iq type='get' id='t5'/>",  # no payload, no 'to': still not the server's to answer
    "<iq type='set'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",  # no id
])
def test_a_malformed_iq_gets_bad_request_never_a_result(server, iq):
    client = bound(server, "alice", "hostile")
    said = answer_to(client, iq).decode()
    before_sync = said[:said.rindex("<iq")]  # the last one answers the ping
    assert "type='error'" in before_sync, said
    assert "<bad-request" in before_sync, said
    assert "type='result'" not in before_sync, said
    client.close()


def test_an_iq_result_without_id_is_dropped_not_answered(server):
    client = bound(server, "alice", "hostile")
    said = answer_to(client, "<iq type='result' to='localhost'/>").decode()
    assert said.count("<iq") == 1, said  # only the ping's answer: no error for a result
    client.close()


# --------------------------------------------------------------------------- stream versions


def open_with_version(server, version: str | None) -> bytes:
    client = RawClient(server.c2s_port)
    attribute = f" version='{version}'" if version is not None else ""
    client.send("<?xml version='1.0'?><stream:stream to='localhost'" + attribute
                + f" xmlns='jabber:client' xmlns:stream='{STREAMS}'>")
    said = client.read_until_any(b"</stream:features>", b"</stream:stream>")
    client.close()
    return said


@pytest.mark.parametrize("version", ["2.0", "1.5", "01.00"])
def test_a_higher_version_gets_ours_and_the_features(server, version):
    said = open_with_version(server, version)
    header = re.search(rb"<stream:stream[^>]*>", said).group(0)
    assert b"version='1.0'" in header, said  # RFC 6120 §4.7.5: the lower of the two
    assert b"</stream:features>" in said and b"<starttls" in said, said
    assert b"unsupported-version" not in said, said


@pytest.mark.parametrize("version, answered", [(None, None), ("0.9", b"version='0.9'"),
                                               ("one", b"version='1.0'")])
def test_a_pre_1_0_stream_is_unsupported_version(server, version, answered):
    said = open_with_version(server, version)
    header = re.search(rb"<stream:stream[^>]*>", said).group(0)
    if answered is None:
        assert b"version=" not in header, said  # §4.7.5: SHOULD NOT include a version
    else:
        assert answered in header, said
    assert b"<unsupported-version" in said and b"<stream:features" not in said, said


# --------------------------------------------------------------------------- server streams


def test_an_s2s_stanza_before_authentication_is_not_authorized(server):
    peer = RawClient(server.s2s_port)
    peer.send(S2S_HEADER)
    peer.read_until(b"</stream:features>")
    peer.send("<message from='mallory@evil.example' to='alice@localhost'><body>hi</body>"
              "</message>")
    said = peer.read_until_closed()
    assert b"<not-authorized" in said, said
    assert b"<invalid-from" not in said, said
    peer.close()


def test_no_dialback_before_starttls_when_policy_requires_tls(server):
    # the default level, secure, requires TLS of every peer
    peer = RawClient(server.s2s_port)
    peer.send(S2S_HEADER)
    features = peer.read_until(b"</stream:features>")
    assert b"<required" in features, features
    assert b"urn:xmpp:features:dialback" not in features, features
    peer.send("<db:result from='evil.example' to='localhost'>abcdef</db:result>")
    said = peer.read_until_closed()
    assert b"<policy-violation" in said, said
    assert b"type='valid'" not in said
    peer.close()
    assert "dialback before STARTTLS, TLS required" in server.log()


# --------------------------------------------------------------------------- stanza-id


def test_a_forged_stanza_id_is_stripped_without_mam(server):
    bob = bound(server, "bob", "desk")
    bob.send("<presence/>")
    alice = bound(server, "alice", "laptop")
    alice.send("<message to='bob@localhost' type='chat' id='m1'><body>trust me</body>"
               "<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged-1'/>"
               "<stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='forged-2'/>"
               "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged-3'/>"
               "<stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='kept'/>"
               "</message>")
    said = bob.read_until(b"</message>").decode()
    message = said[said.index("<message"):]
    assert "trust me" in message
    assert "forged-" not in message, message
    assert "id='kept'" in message, message  # not ours to judge
    alice.close()
    bob.close()


# --------------------------------------------------------------------------- max_resources


def drop(client: RawClient) -> None:
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()


def bind_result(server, resource: str) -> str:
    from tests.integration.test_session_hibernation import authenticated

    client = authenticated(server, "alice")
    client.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                f"<resource>{resource}</resource></bind></iq>")
    said = client.read_until(b"</iq>").decode()
    client.close()
    return said


def test_max_resources_counts_only_live_sessions(server):
    first = bound(server, "alice", "one")
    second = bound(server, "alice", "two")
    refused = bind_result(server, "three")
    assert "<resource-constraint" in refused, refused  # two live sessions: the cap
    drop(first)  # gone without a word: a TCP reset, no </stream:stream>
    deadline = time.monotonic() + 10
    while "alice@localhost/one" in server.ctl("sessions").stdout:
        assert time.monotonic() < deadline, server.ctl("sessions").stdout
        time.sleep(0.05)
    accepted = bind_result(server, "three")
    assert "type='result'" in accepted and "alice@localhost/three" in accepted, accepted
    second.send("</stream:stream>")
    second.read_until_closed()
    accepted = bind_result(server, "four")
    assert "type='result'" in accepted, accepted
