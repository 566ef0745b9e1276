"""XEP-0114 external components against a real server: a slixmpp ComponentXMPP connects with
its secret, a client pings it and it pings the client back; a second connection for the same
domain, a wrong secret, an unknown domain and a spoofed 'from' end with the stream errors of
XEP-0114 / RFC 6120, read from raw sockets; failed handshakes are slowed per address and per
domain."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time

import pytest
from slixmpp.exceptions import IqError

from tests.integration.conftest import assert_log_for_admins, login, logout, serve
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import XmppdProcess, free_port

DOMAIN = "gateway.localhost"
SECRET = "s3cret-for-the-gateway"
ACCEPT_HEADER = ("<?xml version='1.0'?><stream:stream to='{to}' xmlns='jabber:component:accept' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>")


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[components]
listen = ["tcp:{port}:interface=127.0.0.1"]
[components.secrets]
"{DOMAIN}" = "{SECRET}"
""")
    proc.component_port = port
    yield from serve(proc)
    assert SECRET not in proc.log()
    assert_log_for_admins(proc.log())


async def component(proc: XmppdProcess, secret: str = SECRET):
    """A slixmpp ComponentXMPP for DOMAIN, connected and authenticated."""
    from slixmpp import ComponentXMPP

    comp = ComponentXMPP(DOMAIN, secret, "127.0.0.1", proc.component_port)
    comp.register_plugin("xep_0030")
    comp.register_plugin("xep_0199")
    started = asyncio.get_running_loop().create_future()
    comp.add_event_handler("session_start", lambda _e: started.done() or started.set_result(1))
    comp.connect()
    await asyncio.wait_for(started, 10)
    return comp


def raw_component(proc: XmppdProcess, to: str = DOMAIN,
                  source: str | None = None) -> tuple[RawClient, str]:
    raw = RawClient(proc.component_port, source=source)
    raw.send(ACCEPT_HEADER.format(to=to))
    header = raw.read_until(b">", timeout=5).decode()
    match = re.search(r"id=['\"]([^'\"]+)['\"]", header)
    return raw, match.group(1) if match else ""


def digest_of(stream_id: str, secret: str) -> str:
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


def handshake(raw: RawClient, stream_id: str, secret: str = SECRET) -> bytes:
    raw.send(f"<handshake>{digest_of(stream_id, secret)}</handshake>")
    return raw.read_until_any(b"<handshake", b"</stream:stream>")


def test_a_component_is_pinged_by_a_client_and_pings_back(server):
    async def scenario():
        comp = await component(server)
        alice = await login(server, "alice@localhost/phone")
        pong = await alice.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
        assert pong["type"] == "result" and str(pong["from"]) == DOMAIN
        # the component's own stanza, from a JID at its domain, reaches the client
        answer = await comp.plugin["xep_0199"].send_ping(
            "alice@localhost/phone", ifrom=f"bot@{DOMAIN}", timeout=10)
        assert answer["type"] == "result" and str(answer["to"]) == f"bot@{DOMAIN}"
        items = await alice.plugin["xep_0030"].get_items(jid="localhost", timeout=10)
        assert DOMAIN in [item[0] for item in items["disco_items"]["items"]]
        comp.disconnect()
        await asyncio.wait_for(comp.disconnected, 10)
        await asyncio.sleep(0.2)
        # gone: the domain is no longer ours, and without federation it is unreachable
        with pytest.raises(IqError) as refused:
            await alice.plugin["xep_0199"].send_ping(DOMAIN, timeout=10)
        assert refused.value.iq["error"]["condition"] == "remote-server-not-found"
        await logout(alice)

    asyncio.run(scenario())


def test_a_second_connection_for_a_connected_domain_is_a_conflict(server):
    first, first_id = raw_component(server)
    assert handshake(first, first_id).endswith(b"<handshake/>")
    second, _ = raw_component(server)
    closed = second.read_until_closed()
    assert b"<conflict" in closed, closed
    # the first one still works
    first.send(f"<iq type='get' id='p1' from='{DOMAIN}' to='localhost'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>")
    answer = first.read_until(b"id='p1'").decode()
    assert "type='result'" in answer and "id='p1'" in answer, answer
    first.close()


def test_a_wrong_secret_is_not_authorized(server):
    async def scenario():
        from slixmpp import ComponentXMPP

        comp = ComponentXMPP(DOMAIN, "not the secret", "127.0.0.1", server.component_port)
        started = asyncio.get_running_loop().create_future()
        comp.add_event_handler("session_start", lambda _e: started.set_result(1))
        comp.connect()
        await asyncio.wait_for(comp.disconnected, 10)
        assert not started.done()

    asyncio.run(scenario())
    raw, stream_id = raw_component(server)
    closed = handshake(raw, stream_id, "wrong") + raw.read_until_closed()
    assert b"<not-authorized" in closed and b"<handshake/>" not in closed, closed
    assert "stream error not-authorized" in server.log()


def test_an_unknown_domain_is_host_unknown(server):
    raw, _ = raw_component(server, to="other.localhost")
    assert b"<host-unknown" in raw.read_until_closed()
    raw, _ = raw_component(server, to="localhost")  # a host is no component
    assert b"<host-unknown" in raw.read_until_closed()


def test_a_component_spoofing_from_gets_invalid_from(server):
    async def scenario():
        alice = await login(server, "alice@localhost/phone")
        received = []
        alice.add_event_handler("message", received.append)
        raw, stream_id = raw_component(server)
        assert handshake(raw, stream_id).endswith(b"<handshake/>")
        raw.send("<message from='bob@localhost' to='alice@localhost/phone'><body>I am bob"
                 "</body></message>")
        closed = await asyncio.to_thread(raw.read_until_closed)
        assert b"<invalid-from" in closed, closed
        # a stanza at its own domain goes through, on a new connection
        raw, stream_id = raw_component(server)
        assert handshake(raw, stream_id).endswith(b"<handshake/>")
        raw.send(f"<message from='news@{DOMAIN}' to='alice@localhost/phone' type='chat'>"
                 "<body>hello</body></message>")
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.1)
        assert [(str(m["from"]), m["body"]) for m in received] == [(f"news@{DOMAIN}", "hello")]
        raw.close()
        await logout(alice)

    asyncio.run(scenario())


def test_a_user_of_another_server_reaches_the_component_over_federation(tmp_path):
    from tests.certs import make_test_pki
    from tests.integration.test_federation import A, B, close, s2s_section, user
    from tests.integration.test_services import stop

    pki = make_test_pki(tmp_path / "pki", [A, B])  # a.example's covers *.a.example
    a = XmppdProcess(tmp_path / "a", domain=A,
                     certificate=(pki.good[A].cert_path, pki.good[A].key_path))
    b = XmppdProcess(tmp_path / "b", domain=B,
                     certificate=(pki.good[B].cert_path, pki.good[B].key_path))
    a.component_port = free_port()
    gateway = f"gateway.{A}"
    a.config.write_text(a.config.read_text() + s2s_section(a, b, pki.ca.ca_path, "secure") + f"""
[components]
listen = ["tcp:{a.component_port}:interface=127.0.0.1"]
[components.secrets]
"{gateway}" = "{SECRET}"
""")
    b.config.write_text(b.config.read_text() + s2s_section(b, a, pki.ca.ca_path, "secure")
                        + f'"{gateway}" = "127.0.0.1:{a.s2s_port}"\n')
    for proc in (a, b):
        proc.ca = pki.ca.ca_path
        proc.client_hostname_check = True
    assert b.ctl("adduser", f"bob@{B}", "correct horse battery staple").returncode == 0
    a.start()
    b.start()

    async def scenario():
        from slixmpp import ComponentXMPP

        comp = ComponentXMPP(gateway, SECRET, "127.0.0.1", a.component_port)
        started = asyncio.get_running_loop().create_future()
        comp.add_event_handler("session_start", lambda _e: started.done() or started.set_result(1))

        def echo(message) -> None:  # the component answers from its own domain
            if message["body"]:
                comp.send_message(mto=message["from"], mfrom=message["to"],
                                  mbody="echo: " + message["body"], mtype="chat")

        comp.add_event_handler("message", echo)
        comp.connect()
        await asyncio.wait_for(started, 10)
        bob, messages, _ = await user(b, f"bob@{B}/work")
        bob.send_message(mto=f"bot@{gateway}", mbody="across?", mtype="chat")
        answer = await messages.wait_for(lambda m: m["body"] == "echo: across?", timeout=20)
        assert str(answer["from"]) == f"bot@{gateway}"
        await close(bob)
        comp.disconnect()
        await asyncio.wait_for(comp.disconnected, 10)

    try:
        asyncio.run(scenario())
    finally:
        stop(a, b)
    for proc in (a, b):
        assert SECRET not in proc.log()
        assert_log_for_admins(proc.log())



@pytest.fixture
def gated(tmp_path):
    """The server with a gate of 2 connections per address, loopback counted too."""
    port = free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[components]
listen = ["tcp:{port}:interface=127.0.0.1"]
[components.secrets]
"{DOMAIN}" = "{SECRET}"
[limits]
exempt = []
[limits.s2s]
unauthenticated_per_ip = 2
""")
    proc.component_port = port
    yield from serve(proc)


def test_connections_waiting_for_their_handshake_are_capped_per_address(gated):
    """Before its handshake a component connection is anyone's: like an s2s one it counts
    at its listener's gate ([limits.s2s] unauthenticated_per_ip), so one address cannot
    hold any number of them open for the handshake timeout; one that proved its secret
    leaves the gate."""
    port = gated.component_port
    waiting = [RawClient(port), RawClient(port)]
    for raw in waiting:
        raw.send(ACCEPT_HEADER.format(to=DOMAIN))
        raw.read_until(b">", timeout=5)  # our header: it waits for its handshake
    refused = RawClient(port)
    assert b"<policy-violation" in refused.read_until_closed()
    for raw in waiting:
        raw.close()
    for _ in range(25):  # until the closes reached the server
        raw, stream_id = raw_component(gated)
        answer = handshake(raw, stream_id)
        if answer.endswith(b"<handshake/>"):
            break
        raw.close()
        time.sleep(0.2)
    assert answer.endswith(b"<handshake/>"), answer
    others = [RawClient(port), RawClient(port)]  # the component left the gate
    for other in others:
        other.send(ACCEPT_HEADER.format(to="other.localhost"))
        assert b"<host-unknown" in other.read_until_closed()
    raw.close()


OTHER = "bridge.localhost"


@pytest.fixture
def slowed(tmp_path):
    """Two component domains and a short back-off: 0.5 s doubling to 2 s."""
    port = free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[components]
listen = ["tcp:{port}:interface=127.0.0.1"]
[components.secrets]
"{DOMAIN}" = "{SECRET}"
"{OTHER}" = "{SECRET}-for-the-bridge"
[limits]
auth_delay = 0.5
auth_max_delay = 2.0
""")
    proc.component_port = port
    yield from serve(proc)


def test_failed_handshakes_are_slowed_per_address_and_per_domain(slowed):
    """A guesser at 127.0.0.7: its first wrong handshake is answered at once, the next only
    0.5 s after the first was sent; four more at once on four connections are all checked
    when the next step (1 s) has passed, each answered <not-authorized/>. Then the right
    secret from another address waits for the domain's back-off (2 s) and is accepted, and
    a guess for another domain from the guesser's address waits as long. The log names the
    domain, never the secret or a digest. (Lower bounds only: a busy machine makes
    everything slower, never faster.)"""
    guesser = "127.0.0.7"
    digests = []

    def guess(raw: RawClient, stream_id: str, secret: str) -> None:
        digests.append(digest_of(stream_id, secret))
        raw.send(f"<handshake>{digests[-1]}</handshake>")

    raw, stream_id = raw_component(slowed, source=guesser)
    first = time.monotonic()
    guess(raw, stream_id, "guess-1")
    assert b"<not-authorized" in raw.read_until_closed()

    raw, stream_id = raw_component(slowed, source=guesser)
    second = time.monotonic()
    guess(raw, stream_id, "guess-2")
    assert b"<not-authorized" in raw.read_until_closed()
    assert time.monotonic() - first >= 0.5

    many = [raw_component(slowed, source=guesser) for _ in range(4)]
    for n, (raw, stream_id) in enumerate(many):
        guess(raw, stream_id, f"guess-{3 + n}")
    for raw, _ in many:
        closed = raw.read_until_closed()
        assert b"<not-authorized" in closed and b"<handshake/>" not in closed, closed
        assert time.monotonic() - second >= 1.0

    # at once: the right secret from another address, a guess for another domain from the
    # guesser's: both wait until 2 s after the last failure (after `second` + 1 s)
    raw, stream_id = raw_component(slowed, source="127.0.0.1")
    other, other_id = raw_component(slowed, to=OTHER, source=guesser)
    raw.send(f"<handshake>{digest_of(stream_id, SECRET)}</handshake>")
    guess(other, other_id, "guess-7")
    assert raw.read_until_any(b"<handshake", b"</stream:stream>").endswith(b"<handshake/>")
    assert time.monotonic() - second >= 3.0
    assert b"<not-authorized" in other.read_until_closed()
    assert time.monotonic() - second >= 3.0
    raw.send(f"<iq type='get' id='p1' from='{DOMAIN}' to='localhost'>"
             "<ping xmlns='urn:xmpp:ping'/></iq>")
    assert "type='result'" in raw.read_until(b"id='p1'").decode()
    raw.close()

    log = slowed.log()
    assert log.count(f"not-authorized to {guesser}") == 7, log
    assert log.count(f"wrong handshake for {DOMAIN}") == 6
    assert f"wrong handshake for {OTHER}" in log
    assert f"component {DOMAIN} connected from 127.0.0.1" in log
    for secret in digests + [SECRET, "guess-1"]:
        assert secret not in log
