"""Real clients over real TCP and TLS: slixmpp logs in, binds and pings; bad actors are refused."""

from __future__ import annotations

import asyncio
import base64
import threading

import pytest

from tests.integration.conftest import PASSWORD, LoginFailed, login, logout
from tests.integration.rawclient import HEADER, RawClient


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_slixmpp_logs_in_with_scram_sha256_binds_and_pings(server, direct_tls):
    async def scenario():
        client = await login(server, "alice@localhost/phone", direct_tls=direct_tls)
        try:
            assert str(client.boundjid) == "alice@localhost/phone"
            rtt = await client.plugin["xep_0199"].ping(jid="localhost", timeout=5)
            assert rtt >= 0
            info = await client.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
            features = info["disco_info"]["features"]
            assert "urn:xmpp:ping" in features
            assert "jabber:iq:version" in features
        finally:
            await logout(client)

    asyncio.run(scenario())
    assert "alice@localhost authenticated with SCRAM-SHA-256 from" in server.log()


def test_slixmpp_logs_in_with_plain_inside_tls(server):
    async def scenario():
        client = await login(server, "bob@localhost/tablet", mechanism="PLAIN")
        await logout(client)

    asyncio.run(scenario())
    assert "bob@localhost authenticated with PLAIN" in server.log()


def test_wrong_password_gets_not_authorized(server):
    async def scenario():
        with pytest.raises(LoginFailed) as failure:
            await login(server, "alice@localhost", "wrong password")
        assert failure.value.condition == "not-authorized"

    asyncio.run(scenario())


def test_plain_before_tls_is_refused(server):
    client = RawClient(server.c2s_port)
    client.header()
    features = client.read_until(b"</stream:features>")
    assert b"<required" in features  # STARTTLS is mandatory
    assert b"<mechanism>" not in features  # no SASL offered in the clear
    credentials = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    client.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                f"{credentials}</auth>")
    answer = client.read_until(b"</failure>")
    assert b"<encryption-required" in answer
    assert b"<success" not in answer
    client.close()


def test_scram_is_offered_after_starttls_and_plain_only_inside_tls(server):
    client = RawClient(server.c2s_port)
    client.header()
    client.read_until(b"</stream:features>")
    client.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    client.read_until(b"<proceed")
    client.starttls(str(server.cert))
    client.header()
    features = client.read_until(b"</stream:features>").decode()
    assert "<mechanism>SCRAM-SHA-256</mechanism>" in features
    assert "<mechanism>PLAIN</mechanism>" in features
    client.close()


def _logged_in_client_survives(server, attack: bytes, condition: bytes,
                               prologue: bool = False) -> None:
    """Run ``attack`` on a second connection while alice stays logged in and keeps pinging.

    With ``prologue`` the attack goes where a DTD can stand: before the stream header.
    """
    result = {}

    def attacker():
        raw = RawClient(server.c2s_port)
        if prologue:
            raw.send(attack + HEADER.format(to="localhost").encode())
        else:
            raw.header()
            raw.read_until(b"</stream:features>")
            raw.send(attack)
        result["data"] = raw.read_until_closed(timeout=10)

    async def scenario():
        client = await login(server, "alice@localhost/desk")
        try:
            thread = threading.Thread(target=attacker)
            thread.start()
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 15)
            assert await client.plugin["xep_0199"].ping(jid="localhost", timeout=5) >= 0
        finally:
            await logout(client)

    asyncio.run(scenario())
    assert condition in result["data"], result["data"]
    assert result["data"].rstrip().endswith(b"</stream:stream>")


def test_doctype_closes_only_that_stream(server):
    _logged_in_client_survives(server, b"<?xml version='1.0'?><!DOCTYPE stream:stream>",
                               b"<restricted-xml", prologue=True)


def test_xml_bomb_closes_only_that_stream(server):
    bomb = (b"<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
            + b"".join(b"<!ENTITY lol%d '%s'>" % (i + 1, (b"&lol%d;" % i if i else b"&lol;") * 10)
                       for i in range(9))
            + b"]>")
    _logged_in_client_survives(server, bomb, b"<restricted-xml", prologue=True)


def test_dtd_inside_the_stream_is_refused(server):
    _logged_in_client_survives(
        server, b"<!DOCTYPE foo [<!ENTITY x 'y'>]><message>&x;</message>", b"<not-well-formed")


def test_malformed_xml_gets_not_well_formed(server):
    _logged_in_client_survives(server, b"<message><body></message>", b"<not-well-formed")
