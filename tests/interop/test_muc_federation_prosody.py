"""Group chat across federation with a real Prosody 0.12, both ways.

xmppd (xmppd.example, its MUC service conference.xmppd.example) on 127.0.0.1 and Prosody
(prosody.example, with ``Component "conference.prosody.example" "muc"``) on 127.0.0.2 trust
the same test CA; their certificates name the domain and its subdomains, so the services
authenticate on s2s like the hosts. Every user is a slixmpp client with its XEP-0045 plugin.

On xmppd's service: bob@prosody.example finds alice's public room in the service's
disco#items and its features in disco#info, joins it and chats with alice (on xmppd) both
ways, gets alice's private message, changes nick and leaves; alice invites carol@prosody.example
(a mediated invitation), who gets it from the room and joins. On Prosody's service: alice
creates a room, finds it in the service's disco#items, bob joins it, and they chat both ways
and privately.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox
from tests.integration.test_muc import configure, connect, create, muc, status_codes
from tests.interop.prosody import SKIP_REASON, ProsodyProcess, available, free_port, login
from tests.interop.test_prosody_federation import cert

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]

XMPPD, PROSODY = "xmppd.example", "prosody.example"
XMPPD_IP, PROSODY_IP = "127.0.0.1", "127.0.0.2"
OUR_SERVICE, THEIR_SERVICE = f"conference.{XMPPD}", f"conference.{PROSODY}"
OUR_ROOM, THEIR_ROOM = f"lounge@{OUR_SERVICE}", f"garden@{THEIR_SERVICE}"
WAIT = 15.0


def our_config(xmppd: XmppdProcess, ca_file, prosody_s2s_port: int) -> str:
    """xmppd's plugins (MUC on) and [s2s]: Prosody and its MUC service by static routes."""
    route = f"{PROSODY_IP}:{prosody_s2s_port}"
    return f"""
[plugins]
enabled = ["disco", "ping", "roster", "presence", "offline", "muc"]

[s2s]
listen = ["tcp:{xmppd.s2s_port}:interface={XMPPD_IP}"]
bind_address = "{XMPPD_IP}"
ca_file = "{ca_file}"
default_policy = "verified"
connect_timeout = 3.0
auth_timeout = 5.0

[s2s.hosts]
"{PROSODY}" = "{route}"
"{THEIR_SERVICE}" = "{route}"
"""


@pytest.fixture
def servers(tmp_path):
    """xmppd (alice) and Prosody (bob, carol, and a MUC component), both started; both
    stopped after the test, xmppd cleanly and without a traceback."""
    pki = make_test_pki(tmp_path / "pki", [XMPPD, PROSODY])
    xmppd = XmppdProcess(tmp_path / "xmppd", domain=XMPPD, certificate=cert(pki.good[XMPPD]))
    xmppd.ca = pki.ca.ca_path
    prosody_s2s_port = free_port(PROSODY_IP)
    xmppd.config.write_text(xmppd.config.read_text()
                            + our_config(xmppd, pki.ca.ca_path, prosody_s2s_port))
    ours = (XMPPD_IP, xmppd.s2s_port)
    prosody = ProsodyProcess(
        tmp_path / "prosody", PROSODY, PROSODY_IP, s2s_port=prosody_s2s_port, s2s_timeout=5,
        certificate=cert(pki.good[PROSODY]), ca_file=pki.ca.ca_path,
        static_routes={XMPPD: ours, OUR_SERVICE: ours},
        extra_config=f'Component "{THEIR_SERVICE}" "muc"\n\tmodules_enabled = {{ }}')
    assert xmppd.ctl("adduser", f"alice@{XMPPD}", PASSWORD).returncode == 0
    for user in ("bob", "carol"):
        prosody.register(user)
    xmppd.start()
    try:
        prosody.start()
        yield xmppd, prosody
    finally:
        prosody.stop()
        assert xmppd.stop() == 0, xmppd.log()
        assert "Traceback" not in xmppd.log(), xmppd.log()


async def peer(prosody: ProsodyProcess, user: str):
    """A Prosody user with slixmpp's MUC plugins, available."""
    client = await login(prosody, user, resource="desk", available=True)
    for plugin in ("xep_0004", "xep_0045"):
        client.register_plugin(plugin)
    return client


async def close(*clients) -> None:
    for client in clients:
        client.disconnect()
        await asyncio.wait_for(client.disconnected, WAIT)


def body_is(text: str):
    return lambda message: message["body"] == text


def test_prosody_users_in_a_room_on_xmppd(servers):
    xmppd, prosody = servers

    async def scenario() -> None:
        alice = await connect(xmppd, f"alice@{XMPPD}/home")
        bob = await peer(prosody, "bob")
        carol = await peer(prosody, "carol")
        try:
            await create(alice, "alice", OUR_ROOM, roomname="Lounge", publicroom=True)
            listed = await bob.plugin["xep_0030"].get_items(jid=OUR_SERVICE, timeout=WAIT)
            assert [jid for jid, _, _ in listed["disco_items"]["items"]] == [OUR_ROOM]
            info = await bob.plugin["xep_0030"].get_info(jid=OUR_ROOM, timeout=WAIT)
            assert {"http://jabber.org/protocol/muc", "muc_public"} <= set(
                info["disco_info"]["features"])

            alice_said = Inbox(alice, "groupchat_message")
            bob_said = Inbox(bob, "groupchat_message")
            presence, _, occupants, _ = await muc(bob).join_muc_wait(
                OUR_ROOM, "bob", timeout=WAIT)
            assert "110" in status_codes(presence)
            assert {p["from"].resource for p in occupants} == {"alice", "bob"}

            alice.send_message(mto=OUR_ROOM, mbody="welcome, prosody", mtype="groupchat")
            got = await bob_said.wait_for(body_is("welcome, prosody"), WAIT)
            assert got["from"].full == f"{OUR_ROOM}/alice"
            bob.send_message(mto=OUR_ROOM, mbody="thanks, xmppd", mtype="groupchat")
            got = await alice_said.wait_for(body_is("thanks, xmppd"), WAIT)
            assert got["from"].full == f"{OUR_ROOM}/bob"

            pms = Inbox(bob, "message")
            alice.send_message(mto=f"{OUR_ROOM}/bob", mbody="psst", mtype="chat")
            pm = await pms.wait_for(body_is("psst"), WAIT)
            assert pm["from"].full == f"{OUR_ROOM}/alice" and pm["type"] == "chat"

            alice_sees = Inbox(alice, f"muc::{OUR_ROOM}::presence")
            await muc(bob).set_self_nick(OUR_ROOM, "robert", timeout=WAIT)
            changed = await alice_sees.wait_for(
                lambda p: p["type"] == "unavailable" and "303" in status_codes(p), WAIT)
            assert changed["from"].full == f"{OUR_ROOM}/bob"
            await alice_sees.wait_for(lambda p: p["from"].full == f"{OUR_ROOM}/robert", WAIT)

            invitations = Inbox(carol, "groupchat_invite")
            muc(alice).invite(OUR_ROOM, f"carol@{PROSODY}", reason="come along")
            invitation = await invitations.wait_for(lambda m: True, WAIT)
            assert invitation["from"].bare == OUR_ROOM
            assert invitation["muc"]["invite"]["from"].bare == f"alice@{XMPPD}"
            await muc(carol).join_muc_wait(OUR_ROOM, "carol", timeout=WAIT)
            carol.send_message(mto=OUR_ROOM, mbody="carol is here", mtype="groupchat")
            for inbox in (alice_said, bob_said):
                got = await inbox.wait_for(body_is("carol is here"), WAIT)
                assert got["from"].full == f"{OUR_ROOM}/carol"

            muc(bob).leave_muc(OUR_ROOM, "robert", "bye")
            gone = await alice_sees.wait_for(
                lambda p: p["type"] == "unavailable" and p["from"].full == f"{OUR_ROOM}/robert"
                and "303" not in status_codes(p), WAIT)
            assert gone["status"] == "bye"
        finally:
            await close(alice, bob, carol)

    asyncio.run(scenario())
    assert prosody.errors() == []


def test_an_xmppd_user_in_a_room_on_prosody(servers):
    xmppd, prosody = servers

    async def scenario() -> None:
        alice = await connect(xmppd, f"alice@{XMPPD}/home")
        bob = await peer(prosody, "bob")
        try:
            presence, _, _, _ = await muc(alice).join_muc_wait(THEIR_ROOM, "alice",
                                                                timeout=WAIT)
            assert {"110", "201"} <= set(status_codes(presence))  # alice made it
            await configure(alice, THEIR_ROOM, roomname="Garden", publicroom=True)
            listed = await alice.plugin["xep_0030"].get_items(jid=THEIR_SERVICE, timeout=WAIT)
            assert THEIR_ROOM in [jid for jid, _, _ in listed["disco_items"]["items"]]
            bob_said = Inbox(bob, "groupchat_message")
            alice_said = Inbox(alice, "groupchat_message")
            _, _, occupants, _ = await muc(bob).join_muc_wait(THEIR_ROOM, "bob", timeout=WAIT)
            assert {p["from"].resource for p in occupants} == {"alice", "bob"}

            alice.send_message(mto=THEIR_ROOM, mbody="hello from xmppd", mtype="groupchat")
            got = await bob_said.wait_for(body_is("hello from xmppd"), WAIT)
            assert got["from"].full == f"{THEIR_ROOM}/alice"
            bob.send_message(mto=THEIR_ROOM, mbody="hello from prosody", mtype="groupchat")
            got = await alice_said.wait_for(body_is("hello from prosody"), WAIT)
            assert got["from"].full == f"{THEIR_ROOM}/bob"
            pms = Inbox(alice, "message")
            bob.send_message(mto=f"{THEIR_ROOM}/alice", mbody="psst", mtype="chat")
            pm = await pms.wait_for(body_is("psst"), WAIT)
            assert pm["from"].full == f"{THEIR_ROOM}/bob"
        finally:
            await close(alice, bob)

    asyncio.run(scenario())
    assert prosody.errors() == []
