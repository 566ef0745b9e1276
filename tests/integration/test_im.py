"""RFC 6121 over real sockets with real clients: subscriptions, presence, messages, offline
storage, and routing rules, with two and three slixmpp users and several resources each."""

from __future__ import annotations

import asyncio
import signal

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.integration.conftest import PASSWORD, login, logout, serve
from tests.integration.serverproc import XmppdProcess

IM_PLUGINS = '[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", "offline"]\n'
USERS = ("alice", "bob", "carol")


@pytest.fixture
def im(tmp_path):
    yield from serve(XmppdProcess(tmp_path, extra=IM_PLUGINS), USERS)


class Inbox:
    """What a client received, with a way to wait for a matching item."""

    def __init__(self, client, event: str) -> None:
        self.items: list = []
        self._changed = asyncio.Event()
        client.add_event_handler(event, self._add)

    def _add(self, item) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, predicate, timeout: float = 10.0):
        async def loop():
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    def matching(self, predicate) -> list:
        return [item for item in self.items if predicate(item)]


async def online(proc, jid: str, priority: int = 0, roster: bool = True):
    """Log in, fetch the roster, send initial presence; returns (client, messages, presences)."""
    client = await login(proc, jid)
    messages = Inbox(client, "message")
    presences = Inbox(client, "presence")
    if roster:
        await client.get_roster()
    client.send_presence(ppriority=priority)
    return client, messages, presences


def body_is(text):
    return lambda message: message["body"] == text


async def settle(seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)


def test_subscription_handshake_then_presence_and_chat(im):
    async def scenario():
        alice, alice_msgs, alice_pres = await online(im, "alice@localhost/phone")
        bob, bob_msgs, bob_pres = await online(im, "bob@localhost/desk")
        alice.send_presence_subscription(pto="bob@localhost")
        # slixmpp auto-authorises and subscribes back, so this ends in both/both
        await alice_pres.wait_for(lambda p: p["type"] == "subscribed"
                                  and p["from"].bare == "bob@localhost")
        await bob_pres.wait_for(lambda p: p["type"] == "subscribed"
                                and p["from"].bare == "alice@localhost")
        await settle()
        assert alice.client_roster["bob@localhost"]["subscription"] == "both"
        assert bob.client_roster["alice@localhost"]["subscription"] == "both"
        await alice_pres.wait_for(lambda p: p["type"] == "available"
                                  and str(p["from"]) == "bob@localhost/desk")
        alice.send_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
        message = await bob_msgs.wait_for(body_is("hello bob"))
        assert str(message["from"]) == "alice@localhost/phone"
        await logout(alice)
        await logout(bob)

    asyncio.run(scenario())


async def befriend(proc, a: str, b: str) -> None:
    """Make a and b mutually subscribed, through the protocol."""
    first, _, first_pres = await online(proc, f"{a}@localhost/setup")
    second, _, second_pres = await online(proc, f"{b}@localhost/setup")
    first.send_presence_subscription(pto=f"{b}@localhost")
    await first_pres.wait_for(lambda p: p["type"] == "subscribed")
    await second_pres.wait_for(lambda p: p["type"] == "subscribed")
    await settle()
    await logout(first)
    await logout(second)


def test_presence_from_several_resources_and_unavailable_on_disconnect(im):
    async def scenario():
        await befriend(im, "alice", "bob")
        alice, _, alice_pres = await online(im, "alice@localhost/phone")
        bob_desk, _, _ = await online(im, "bob@localhost/desk", priority=5)
        bob_phone, _, _ = await online(im, "bob@localhost/phone", priority=1)
        for resource in ("desk", "phone"):
            await alice_pres.wait_for(lambda p, r=resource: p["type"] == "available"
                                      and str(p["from"]) == f"bob@localhost/{r}")
        await logout(bob_phone)  # polite: unavailable presence then </stream:stream>
        await alice_pres.wait_for(lambda p: p["type"] == "unavailable"
                                  and str(p["from"]) == "bob@localhost/phone")
        bob_desk.transport.abort()  # impolite: the TCP connection just drops
        await alice_pres.wait_for(lambda p: p["type"] == "unavailable"
                                  and str(p["from"]) == "bob@localhost/desk")
        unavailable_phone = alice_pres.matching(lambda p: p["type"] == "unavailable"
                                                and str(p["from"]) == "bob@localhost/phone")
        assert len(unavailable_phone) == 1  # a polite close does not send it twice
        await logout(alice)

    asyncio.run(scenario())


def test_bare_and_full_jid_delivery_follow_priorities(im):
    async def scenario():
        alice, _, _ = await online(im, "alice@localhost/phone")
        bob_high, high_msgs, _ = await online(im, "bob@localhost/high", priority=10)
        bob_low, low_msgs, _ = await online(im, "bob@localhost/low", priority=2)
        bob_neg, neg_msgs, _ = await online(im, "bob@localhost/away", priority=-1)
        await settle()
        alice.send_message(mto="bob@localhost", mbody="to the bare jid", mtype="chat")
        alice.send_message(mto="bob@localhost/low", mbody="to low", mtype="chat")
        alice.send_message(mto="bob@localhost/away", mbody="to away", mtype="chat")
        await high_msgs.wait_for(body_is("to the bare jid"))
        await low_msgs.wait_for(body_is("to low"))
        await neg_msgs.wait_for(body_is("to away"))
        await settle()
        assert not low_msgs.matching(body_is("to the bare jid"))
        assert not neg_msgs.matching(body_is("to the bare jid"))
        for client in (alice, bob_high, bob_low, bob_neg):
            await logout(client)

    asyncio.run(scenario())


def test_three_users_only_the_addressee_gets_the_message(im):
    async def scenario():
        clients = {}
        for user in USERS:
            clients[user] = await online(im, f"{user}@localhost/r")
        await settle()
        clients["alice"][0].send_message(mto="carol@localhost", mbody="for carol", mtype="chat")
        await clients["carol"][1].wait_for(body_is("for carol"))
        await settle()
        assert not clients["bob"][1].matching(body_is("for carol"))
        for client, _, _ in clients.values():
            await logout(client)

    asyncio.run(scenario())


def test_offline_messages_survive_reconnect_and_server_restart(im):
    async def scenario(phase: str):
        if phase == "send":
            alice, _, _ = await online(im, "alice@localhost/phone")
            for n in range(3):
                alice.send_message(mto="bob@localhost", mbody=f"offline {n}", mtype="chat")
            await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
            await logout(alice)
        else:
            bob, bob_msgs, _ = await online(im, "bob@localhost/desk")
            for n in range(3):
                message = await bob_msgs.wait_for(body_is(f"offline {n}"))
                assert message["delay"]["stamp"] is not None
                assert str(message["from"]) == "alice@localhost/phone"
            order = [m["body"] for m in bob_msgs.items if m["body"].startswith("offline")]
            assert order == ["offline 0", "offline 1", "offline 2"]
            await logout(bob)
            # delivered once: a second login gets nothing
            bob, bob_msgs, _ = await online(im, "bob@localhost/desk")
            await settle(1)
            assert not bob_msgs.matching(lambda m: m["body"].startswith("offline"))
            await logout(bob)

    asyncio.run(scenario("send"))
    assert im.stop() == 0
    im.start()
    asyncio.run(scenario("receive"))


def test_typing_notification_to_an_offline_user_is_not_replayed(im):
    """XEP-0160 §3 / XEP-0085: "alice is typing" hours later is noise; her message is not."""
    async def scenario():
        alice, alice_msgs, _ = await online(im, "alice@localhost/phone")
        alice.send_raw("<message to='bob@localhost' type='chat'>"
                       "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        alice.send_message(mto="bob@localhost", mbody="while you were out", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        assert not alice_msgs.matching(lambda m: m["type"] == "error")  # no bounce either
        await logout(alice)
        bob = await login(im, "bob@localhost/desk")
        received = []  # every message, with or without a body (slixmpp's 'message' needs one)
        bob.register_handler(Callback("every message", MatchXPath("{jabber:client}message"),
                                      received.append))
        bob.send_presence()

        async def body_arrived():
            while not any(m["body"] for m in received):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(body_arrived(), 10)
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        assert [m["body"] for m in received] == ["while you were out"]
        await logout(bob)

    asyncio.run(scenario())


def test_spoofed_from_never_reaches_the_recipient_as_spoofed(im):
    async def scenario():
        alice, _, _ = await online(im, "alice@localhost/phone")
        bob, bob_msgs, _ = await online(im, "bob@localhost/desk")
        await settle()
        message = alice.make_message(mto="bob@localhost/desk", mbody="i am carol", mtype="chat")
        message["from"] = "carol@localhost/fake"
        message.send()
        await asyncio.wait_for(alice.disconnected, 10)  # <invalid-from/> ended alice's stream
        await settle()
        assert not bob_msgs.matching(body_is("i am carol"))
        await logout(bob)

    asyncio.run(scenario())
    assert "invalid-from" in im.log()


def test_iq_to_an_offline_full_jid_is_an_error(im):
    async def scenario():
        from slixmpp.exceptions import IqError

        alice, _, _ = await online(im, "alice@localhost/phone")
        with pytest.raises(IqError) as error:
            await alice.plugin["xep_0030"].get_info(jid="bob@localhost/nowhere", timeout=5)
        assert error.value.condition == "service-unavailable"
        await logout(alice)

    asyncio.run(scenario())


def test_subscription_request_to_an_offline_user_waits_for_them(im):
    async def scenario():
        alice, _, alice_pres = await online(im, "alice@localhost/phone")
        alice.send_presence_subscription(pto="carol@localhost")
        await settle()
        assert alice.client_roster["carol@localhost"]["pending_out"]
        carol = await login(im, "carol@localhost/tablet")
        carol.roster.auto_authorize = False
        carol_pres = Inbox(carol, "presence")
        await carol.get_roster()
        carol.send_presence()
        request = await carol_pres.wait_for(lambda p: p["type"] == "subscribe")
        assert request["from"].bare == "alice@localhost"
        await settle()
        assert len(carol_pres.matching(lambda p: p["type"] == "subscribe")) == 1
        await logout(carol)
        await logout(alice)

    asyncio.run(scenario())


def test_sigkill_loses_no_accepted_message(im):
    """Messages the server accepted (proven by a later ping reply on the same stream) are on
    disk: a SIGKILL right after loses none of them."""
    sigkill_after_accepted_messages(im, 50)


def sigkill_after_accepted_messages(proc: XmppdProcess, count: int) -> None:
    """Alice sends Bob (offline) ``count`` messages, a ping answered on the same stream
    proves them accepted, the server is killed (SIGKILL) and started again: Bob gets every
    one. For any storage engine's server with alice and bob (test_postgresql's too)."""
    async def send():
        alice, _, _ = await online(proc, "alice@localhost/phone")
        for n in range(count):
            alice.send_message(mto="bob@localhost", mbody=f"durable {n}", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        proc.stop(signal.SIGKILL)

    async def receive():
        bob, bob_msgs, _ = await online(proc, "bob@localhost/desk")
        for n in range(count):
            await bob_msgs.wait_for(body_is(f"durable {n}"))
        await logout(bob)

    asyncio.run(send())
    proc.start()
    asyncio.run(receive())


def test_deleting_an_account_cancels_its_subscriptions(im):
    """xmppdctl deluser on the running server: contacts get unsubscribe + unsubscribed and the
    account's roster and offline messages are gone with it."""
    async def scenario():
        await befriend(im, "alice", "bob")
        alice, alice_msgs, alice_pres = await online(im, "alice@localhost/phone")
        assert alice.client_roster["bob@localhost"]["subscription"] == "both"
        alice.send_message(mto="bob@localhost", mbody="kept for bob", mtype="chat")  # offline
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        result = im.ctl("deluser", "bob@localhost")
        assert result.returncode == 0, result.stderr
        for kind in ("unsubscribe", "unsubscribed"):
            await alice_pres.wait_for(lambda p, k=kind: p["type"] == k
                                      and p["from"].bare == "bob@localhost")
        await settle()
        assert alice.client_roster["bob@localhost"]["subscription"] == "none"
        await logout(alice)
        # a new bob starts from nothing: no roster items, no old messages
        assert im.ctl("adduser", "bob@localhost", PASSWORD).returncode == 0
        bob, bob_msgs, _ = await online(im, "bob@localhost/new", roster=False)
        roster = await bob.get_roster()
        assert [str(jid) for jid in roster["roster"]["items"]] == []
        await settle(1)
        assert not bob_msgs.matching(body_is("kept for bob"))
        await logout(bob)

    asyncio.run(scenario())
