"""Two xmppd servers federating on loopback, each policy level with its proofs and refusals.

Each server has its own domain and test-CA certificate (tests/certs.py), static s2s routes
to the other ([s2s.hosts]), and its own policy. Users on both sides subscribe, exchange
presence and chat; where the policy must refuse, the stanza bounces and the log says why.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD, LoginFailed  # noqa: F401
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox, settle

A, B = "a.example", "b.example"
PLUGINS = '[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline"]\n'


def s2s_section(proc: XmppdProcess, peer: XmppdProcess, ca_file, policy: str,
                per_peer: str = "") -> str:
    return (f'[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]\n'
            f'ca_file = "{ca_file}"\ndefault_policy = "{policy}"\n'
            f'connect_timeout = 3.0\nauth_timeout = 5.0\n'
            f'[s2s.hosts]\n"{peer.domain}" = "127.0.0.1:{peer.s2s_port}"\n'
            + (f'[s2s.policy]\n{per_peer}\n' if per_peer else ""))


def pair(tmp_path, policy_a: str, policy_b: str, cert_kind: str = "good"):
    """Two servers; ``cert_kind`` picks which certificate each presents."""
    pki = make_test_pki(tmp_path / "pki", [A, B])
    issued = getattr(pki, cert_kind)
    a = XmppdProcess(tmp_path / "a", domain=A,
                     certificate=(issued[A].cert_path, issued[A].key_path))
    b = XmppdProcess(tmp_path / "b", domain=B,
                     certificate=(issued[B].cert_path, issued[B].key_path))
    for proc, peer, policy in ((a, b, policy_a), (b, a, policy_b)):
        text = proc.config.read_text()
        proc.config.write_text(text + PLUGINS + s2s_section(proc, peer, pki.ca.ca_path, policy))
        proc.ca = pki.ca.ca_path
        # the c2s side is not under test here: clients trust whatever their server presents
        proc.client_hostname_check = cert_kind != "wrong_name"
    return a, b


@pytest.fixture
def servers(request, tmp_path):
    started = []

    def start(policy_a="secure", policy_b="secure", cert_kind="good"):
        a, b = pair(tmp_path, policy_a, policy_b, cert_kind)
        assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
        assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
        a.start()
        b.start()
        started.extend([a, b])
        return a, b

    yield start
    for proc in started:
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


async def user(proc: XmppdProcess, jid: str):
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, PASSWORD, sasl_mech="SCRAM-SHA-256")
    client.enable_direct_tls = False
    context = ssl.create_default_context(cafile=str(proc.ca))
    context.load_verify_locations(cafile=str(proc.cert))  # a self-signed one anchors itself
    context.check_hostname = proc.client_hostname_check
    client.ssl_context = context
    for plugin in ("xep_0030", "xep_0199", "xep_0203"):
        client.register_plugin(plugin)
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(1))
    messages, presences = Inbox(client, "message"), Inbox(client, "presence")
    client.connect("127.0.0.1", proc.c2s_port)
    await asyncio.wait_for(started, 15)
    await client.get_roster()
    client.send_presence()
    return client, messages, presences


async def chat_across(a, b) -> tuple:
    alice, alice_msgs, alice_pres = await user(a, f"alice@{A}/home")
    bob, bob_msgs, bob_pres = await user(b, f"bob@{B}/work")
    alice.send_presence_subscription(pto=f"bob@{B}")
    await alice_pres.wait_for(lambda p: p["type"] == "subscribed" and p["from"].bare == f"bob@{B}",
                              timeout=20)
    await bob_pres.wait_for(lambda p: p["type"] == "subscribed"
                            and p["from"].bare == f"alice@{A}", timeout=20)
    await alice_pres.wait_for(lambda p: p["type"] == "available"
                              and str(p["from"]) == f"bob@{B}/work", timeout=20)
    alice.send_message(mto=f"bob@{B}", mbody="hello across", mtype="chat")
    message = await bob_msgs.wait_for(lambda m: m["body"] == "hello across", timeout=20)
    assert str(message["from"]) == f"alice@{A}/home"
    bob.send_message(mto=f"alice@{A}/home", mbody="and back", mtype="chat")
    await alice_msgs.wait_for(lambda m: m["body"] == "and back", timeout=20)
    await settle()
    assert alice.client_roster[f"bob@{B}"]["subscription"] == "both"
    return alice, bob


async def chat_and_close(a, b) -> None:
    await close(*await chat_across(a, b))


async def close(*clients) -> None:
    for client in clients:
        client.disconnect()
        await asyncio.wait_for(client.disconnected, 10)


def test_secure_with_ca_certificates_uses_sasl_external(servers):
    a, b = servers("secure", "secure")

    asyncio.run(chat_and_close(a, b))
    logs = a.log() + b.log()
    assert f"outgoing s2s to {B} from {A} authenticated by certificate" in logs
    assert f"incoming s2s from {A} authenticated for {B} by certificate" in logs


def test_trusted_policy_with_valid_certificates(servers):
    a, b = servers("trusted", "trusted")

    asyncio.run(chat_and_close(a, b))
    logs = a.log() + b.log()
    assert "authenticated by certificate" in logs
    assert "authenticated by dialback" not in logs


def test_dialback_when_certificates_do_not_validate(servers):
    a, b = servers("secure", "secure", cert_kind="self_signed")

    asyncio.run(chat_and_close(a, b))
    assert "authenticated by dialback" in a.log() + b.log()


def test_trusted_refuses_a_self_signed_peer(servers):
    a, b = servers("trusted", "secure", cert_kind="self_signed")

    async def scenario():
        alice, alice_msgs, _ = await user(a, f"alice@{A}/home")
        alice.send_message(mto=f"bob@{B}", mbody="will bounce", mtype="chat")
        error = await alice_msgs.wait_for(lambda m: m["type"] == "error", timeout=20)
        assert error["error"]["condition"] in ("remote-server-not-found",
                                               "remote-server-timeout")
        await close(alice)

    asyncio.run(scenario())
    assert "certificate required" in a.log() or "self-signed" in a.log()


def test_wrong_name_certificate_is_refused_under_trusted(servers):
    a, b = servers("trusted", "trusted", cert_kind="wrong_name")

    async def scenario():
        alice, alice_msgs, _ = await user(a, f"alice@{A}/home")
        alice.send_message(mto=f"bob@{B}", mbody="will bounce", mtype="chat")
        await alice_msgs.wait_for(lambda m: m["type"] == "error", timeout=20)
        await close(alice)

    asyncio.run(scenario())
    assert "name mismatch" in a.log()


def test_unauthenticated_stanza_on_s2s_closes_the_stream(servers):
    a, b = servers()
    raw = RawClient(a.s2s_port)
    raw.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
             "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
             f"from='evil.example' to='{A}' version='1.0'>")
    raw.read_until(b"</stream:features>")
    raw.send(f"<message from='mallory@evil.example' to='alice@{A}'><body>spoof</body></message>")
    data = raw.read_until_closed(timeout=10)
    assert b"<invalid-from" in data or b"<not-authorized" in data


def test_s2s_stanza_for_a_domain_not_ours_is_refused(servers):
    a, b = servers()
    raw = RawClient(a.s2s_port)
    raw.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
             "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
             "from='evil.example' to='not-ours.example' version='1.0'>")
    data = raw.read_until_closed(timeout=10)
    assert b"<host-unknown" in data


def test_forged_dialback_key_is_refused(servers):
    a, b = servers("verified", "verified", cert_kind="self_signed")
    raw = RawClient(a.s2s_port)
    raw.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
             "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
             f"from='{B}' to='{A}' version='1.0'>")
    raw.read_until(b"</stream:features>")
    raw.send(f"<db:result from='{B}' to='{A}'>00deadbeef</db:result>")
    data = raw.read_until_any(b"type='invalid'", b'type="invalid"', timeout=15)
    assert b"invalid" in data


def test_verified_level_with_dialback(servers):
    a, b = servers("verified", "verified", cert_kind="self_signed")

    asyncio.run(chat_and_close(a, b))
    assert "policy verified met: dialback" in a.log() + b.log()


def test_promiscuous_takes_the_asserted_identity(servers):
    a, b = servers("verified", "promiscuous", cert_kind="self_signed")

    asyncio.run(chat_and_close(a, b))  # alice first: a.example connects, b.example receives
    assert f"incoming s2s from {A} authenticated for {B} by asserted" in b.log()


def test_secure_refuses_dialback_without_tls(servers):
    a, b = servers("secure", "secure")
    raw = RawClient(a.s2s_port)
    raw.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
             "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
             f"from='{B}' to='{A}' version='1.0'>")
    features = raw.read_until(b"</stream:features>")
    assert b"<required" in features  # STARTTLS is mandatory for this peer
    assert b"urn:xmpp:features:dialback" not in features  # so no dialback before it
    raw.send(f"<db:result from='{B}' to='{A}'>0123abcd</db:result>")
    data = raw.read_until_any(b"policy-violation", timeout=10)
    assert b"<stream:error>" in data  # RFC 6120 §5.3.1: a stream error, not a db error
    assert "dialback before STARTTLS, TLS required" in a.log()
