"""Group chat across federation, as users on xmppd and on a real peer server (Prosody,
ejabberd) do it, with slixmpp's XEP-0045 plugin on every client.

``peer_users_in_our_room``: a room on xmppd's service, found, joined and used by two users of
the peer (one of them invited by the room). ``our_user_in_their_room``: an xmppd user makes
a room on the peer's MUC service and chats there with a peer user. The peer users come from
``peer(user)``, a coroutine giving a logged-in, available slixmpp client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox
from tests.integration.test_muc import configure, connect, create, muc, status_codes

WAIT = 15.0  # seconds for any one thing to arrive
MUC_USER = "http://jabber.org/protocol/muc#user"

Peer = Callable[[str], Awaitable]


async def peer_client(login, server, user: str):
    """A user of a peer server (its harness's ``login``) with slixmpp's MUC plugins."""
    client = await login(server, user, resource="desk", available=True)
    for plugin in ("xep_0004", "xep_0045"):
        client.register_plugin(plugin)
    return client


async def close(*clients) -> None:
    for client in clients:
        client.disconnect()
        await asyncio.wait_for(client.disconnected, WAIT)


def body_is(text: str):
    return lambda message: message["body"] == text


def items(result) -> list[str]:
    return [jid for jid, _, _ in result["disco_items"]["items"]]


def peer_users_in_our_room(xmppd: XmppdProcess, peer: Peer, peer_domain: str) -> None:
    """alice (xmppd) makes a public room; bob (peer) finds it in the service's disco#items
    and its features in disco#info, joins, chats both ways, gets alice's private message,
    pings himself in the room (XEP-0410) and is pinged by alice through it, changes nick;
    carol (peer) is invited by the room and joins; bob leaves."""
    room = f"lounge@conference.{xmppd.domain}"

    async def scenario() -> None:
        alice = await connect(xmppd, f"alice@{xmppd.domain}/home")
        bob = await peer("bob")
        carol = await peer("carol")
        try:
            await create(alice, "alice", room, roomname="Lounge", publicroom=True)
            listed = await bob.plugin["xep_0030"].get_items(jid=f"conference.{xmppd.domain}",
                                                            timeout=WAIT)
            assert items(listed) == [room]
            info = await bob.plugin["xep_0030"].get_info(jid=room, timeout=WAIT)
            assert {"http://jabber.org/protocol/muc", "muc_public"} <= set(
                info["disco_info"]["features"])

            alice_said = Inbox(alice, "groupchat_message")
            bob_said = Inbox(bob, "groupchat_message")
            presence, _, occupants, _ = await muc(bob).join_muc_wait(room, "bob", timeout=WAIT)
            assert "110" in status_codes(presence)
            assert {p["from"].resource for p in occupants} == {"alice", "bob"}

            alice.send_message(mto=room, mbody=f"welcome, {peer_domain}", mtype="groupchat")
            got = await bob_said.wait_for(body_is(f"welcome, {peer_domain}"), WAIT)
            assert got["from"].full == f"{room}/alice"
            bob.send_message(mto=room, mbody="thanks, xmppd", mtype="groupchat")
            got = await alice_said.wait_for(body_is("thanks, xmppd"), WAIT)
            assert got["from"].full == f"{room}/bob"

            pms = Inbox(bob, "message")
            alice.send_message(mto=f"{room}/bob", mbody="psst", mtype="chat")
            pm = await pms.wait_for(body_is("psst"), WAIT)
            assert pm["from"].full == f"{room}/alice" and pm["type"] == "chat"

            # IQs through the room: bob's self-ping (XEP-0410) answered by the service, and
            # alice's ping of bob relayed to his client on the peer, the answer back to her
            assert await bob.plugin["xep_0199"].ping(jid=f"{room}/bob", timeout=WAIT) >= 0
            assert await alice.plugin["xep_0199"].ping(jid=f"{room}/bob", timeout=WAIT) >= 0

            alice_sees = Inbox(alice, f"muc::{room}::presence")
            await muc(bob).set_self_nick(room, "robert", timeout=WAIT)
            changed = await alice_sees.wait_for(
                lambda p: p["type"] == "unavailable" and "303" in status_codes(p), WAIT)
            assert changed["from"].full == f"{room}/bob"
            await alice_sees.wait_for(lambda p: p["from"].full == f"{room}/robert", WAIT)

            invitations = Inbox(carol, "groupchat_invite")
            muc(alice).invite(room, f"carol@{peer_domain}", reason="come along")
            invitation = await invitations.wait_for(lambda m: True, WAIT)
            assert invitation["from"].bare == room
            assert invitation["muc"]["invite"]["from"].bare == f"alice@{xmppd.domain}"
            await muc(carol).join_muc_wait(room, "carol", timeout=WAIT)
            carol.send_message(mto=room, mbody="carol is here", mtype="groupchat")
            for inbox in (alice_said, bob_said):
                got = await inbox.wait_for(body_is("carol is here"), WAIT)
                assert got["from"].full == f"{room}/carol"

            muc(bob).leave_muc(room, "robert", "bye")
            gone = await alice_sees.wait_for(
                lambda p: p["type"] == "unavailable" and p["from"].full == f"{room}/robert"
                and "303" not in status_codes(p), WAIT)
            assert gone["status"] == "bye"
        finally:
            await close(alice, bob, carol)

    asyncio.run(scenario())


def our_user_in_their_room(xmppd: XmppdProcess, peer: Peer, service: str) -> None:
    """alice (xmppd) creates a room on the peer's ``service`` and makes it public, finds it
    in the service's disco#items; bob (peer) joins; they chat both ways and privately."""
    room = f"garden@{service}"

    async def scenario() -> None:
        alice = await connect(xmppd, f"alice@{xmppd.domain}/home")
        bob = await peer("bob")
        try:
            presence, _, _, _ = await muc(alice).join_muc_wait(room, "alice", timeout=WAIT)
            assert {"110", "201"} <= set(status_codes(presence))  # alice made it
            await configure(alice, room, roomname="Garden", publicroom=True)
            listed = await alice.plugin["xep_0030"].get_items(jid=service, timeout=WAIT)
            assert room in items(listed)
            bob_said = Inbox(bob, "groupchat_message")
            alice_said = Inbox(alice, "groupchat_message")
            _, _, occupants, _ = await muc(bob).join_muc_wait(room, "bob", timeout=WAIT)
            assert {p["from"].resource for p in occupants} == {"alice", "bob"}

            alice.send_message(mto=room, mbody="hello from xmppd", mtype="groupchat")
            got = await bob_said.wait_for(body_is("hello from xmppd"), WAIT)
            assert got["from"].full == f"{room}/alice"
            bob.send_message(mto=room, mbody="hello from the peer", mtype="groupchat")
            got = await alice_said.wait_for(body_is("hello from the peer"), WAIT)
            assert got["from"].full == f"{room}/bob"
            pms = Inbox(alice, "message")
            bob.send_message(mto=f"{room}/alice", mbody="psst", mtype="chat")
            pm = await pms.wait_for(body_is("psst"), WAIT)
            assert pm["from"].full == f"{room}/bob"
        finally:
            await close(alice, bob)

    asyncio.run(scenario())


def room_rules_for_peer_users(xmppd: XmppdProcess, peer: Peer, peer_domain: str) -> None:
    """bob (peer) may not create a room on xmppd (not-allowed). A members-only room with
    logging on xmppd: bob is refused with registration-required; invited by the owner he
    becomes a member, joins, gets the history, reads the room's archive (MAM at the room,
    across federation) and is kicked (307); carol (peer), never invited, is still
    refused."""
    room = f"club@conference.{xmppd.domain}"

    async def scenario() -> None:
        from slixmpp.exceptions import PresenceError

        alice = await connect(xmppd, f"alice@{xmppd.domain}/home")
        bob = await peer("bob")
        carol = await peer("carol")
        bob.register_plugin("xep_0313")
        try:
            try:  # [plugins.muc] create = "local" (the default): no rooms by strangers
                await muc(bob).join_muc_wait(f"bobs-own@conference.{xmppd.domain}", "bob",
                                             timeout=WAIT)
                raise AssertionError("a remote user created a room on xmppd")
            except PresenceError as refused:
                assert refused.condition == "not-allowed"
            await create(alice, "alice", room, membersonly=True, enablelogging=True)
            alice_said = Inbox(alice, "groupchat_message")
            alice.send_message(mto=room, mbody="before you came", mtype="groupchat")
            await alice_said.wait_for(body_is("before you came"), WAIT)
            for who in (bob, carol):
                try:
                    await muc(who).join_muc_wait(room, "guest", timeout=WAIT)
                    raise AssertionError(f"{who.boundjid} entered a members-only room")
                except PresenceError as refused:
                    assert refused.condition == "registration-required"

            # slixmpp raises no groupchat_invite for a room it tried to join: the message
            invitations = Inbox(bob, "message")
            muc(alice).invite(room, f"bob@{peer_domain}")
            invitation = await invitations.wait_for(lambda m: m.xml.find(
                f"{{{MUC_USER}}}x/{{{MUC_USER}}}invite") is not None, WAIT)
            assert invitation["from"].bare == room
            presence, _, _, history = await muc(bob).join_muc_wait(room, "bob", timeout=WAIT)
            assert presence["muc"]["affiliation"] == "member"
            assert [m["body"] for m in history] == ["before you came"]
            archived = [m async for m in bob.plugin["xep_0313"].iterate(
                jid=room, total=10)]
            assert [m["mam_result"]["forwarded"]["stanza"]["body"] for m in archived] == [
                "before you came"]

            bob_sees = Inbox(bob, f"muc::{room}::presence")
            await muc(alice).set_role(room, "bob", "none", reason="closing time",
                                      timeout=WAIT)
            kicked = await bob_sees.wait_for(
                lambda p: p["type"] == "unavailable" and "307" in status_codes(p), WAIT)
            assert "110" in status_codes(kicked)
            try:
                await muc(carol).join_muc_wait(room, "carol", timeout=WAIT)
                raise AssertionError("carol entered without an invitation")
            except PresenceError as refused:
                assert refused.condition == "registration-required"
        finally:
            await close(alice, bob, carol)

    asyncio.run(scenario())
