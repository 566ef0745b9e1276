"""Many devices, over real TLS with slixmpp's own XEP plugins: message carbons (XEP-0280)
between two resources of one account, blocking (XEP-0191) both ways and its undoing, and
client state indication (XEP-0352) holding presence while messages pass.

Nothing here waits for a time: "nothing arrived" is proved by pings, since the server
handles a stream's stanzas in order and writes to each stream in order. The sender's ping
answered means its stanzas were routed; the receiver's ping answered after that means
whatever was routed to it has arrived before the answer.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from tests.integration.conftest import PASSWORD, logout, serve
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox, body_is

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", '
           '"offline", "carbons", "csi", "blocking"]\n')
XEPS = ("xep_0030", "xep_0199", "xep_0280", "xep_0334", "xep_0352", "xep_0191")


@pytest.fixture
def devices(tmp_path):
    yield from serve(XmppdProcess(tmp_path, extra=PLUGINS))


class Device:
    """One logged-in resource with what it received, sorted by event."""

    def __init__(self, client) -> None:
        self.client = client
        self.messages = Inbox(client, "message")
        self.presences = Inbox(client, "presence")
        self.carbons_received = Inbox(client, "carbon_received")
        self.carbons_sent = Inbox(client, "carbon_sent")

    async def ping(self) -> None:
        await self.client.plugin["xep_0199"].ping(jid="localhost", timeout=10)


async def device(proc: XmppdProcess, jid: str, roster: bool = True) -> Device:
    """Log in over STARTTLS with the XEP plugins registered before the stream starts (the
    CSI stream feature is read during negotiation), fetch the roster, go available."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, PASSWORD)
    client.enable_starttls, client.enable_plaintext = True, False
    client.ssl_context = ssl.create_default_context(cafile=str(proc.cert))
    for xep in XEPS:
        client.register_plugin(xep)
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start",
                             lambda _: started.done() or started.set_result(None))
    client.connect("127.0.0.1", proc.c2s_port)
    await asyncio.wait_for(started, 15)
    one = Device(client)
    if roster:
        await client.get_roster()
    client.send_presence()
    await one.ping()
    return one


async def barrier(sender: Device, *receivers: Device) -> None:
    await sender.ping()
    for receiver in receivers:
        await receiver.ping()


async def befriend(proc: XmppdProcess, a: str, b: str) -> None:
    first = await device(proc, f"{a}@localhost/setup")
    second = await device(proc, f"{b}@localhost/setup")
    first.client.send_presence_subscription(pto=f"{b}@localhost")
    await first.presences.wait_for(lambda p: p["type"] == "subscribed")
    await second.presences.wait_for(lambda p: p["type"] == "subscribed")
    await barrier(second, first)
    await barrier(first, second)
    for one in (first, second):
        await logout(one.client)


def test_carbons_between_two_resources_and_private_not_copied(devices):
    async def scenario():
        phone = await device(devices, "alice@localhost/phone")
        laptop = await device(devices, "alice@localhost/laptop")
        bob = await device(devices, "bob@localhost/desk")
        info = await phone.client.plugin["xep_0030"].get_info(jid="localhost")
        assert "urn:xmpp:carbons:2" in info["disco_info"]["features"]
        for one in (phone, laptop):
            await one.client.plugin["xep_0280"].enable()

        bob.client.send_message(mto="alice@localhost/laptop", mbody="for the laptop",
                                mtype="chat")
        await laptop.messages.wait_for(body_is("for the laptop"))
        carbon = await phone.carbons_received.wait_for(
            lambda m: m["carbon_received"]["body"] == "for the laptop")
        assert str(carbon["carbon_received"]["from"]) == "bob@localhost/desk"

        phone.client.send_message(mto="bob@localhost/desk", mbody="from the phone",
                                  mtype="chat")
        await bob.messages.wait_for(body_is("from the phone"))
        carbon = await laptop.carbons_sent.wait_for(
            lambda m: m["carbon_sent"]["body"] == "from the phone")
        assert str(carbon["carbon_sent"]["to"]) == "bob@localhost/desk"

        secret = phone.client.make_message(mto="bob@localhost/desk", mbody="private",
                                           mtype="chat")
        secret.enable("carbon_private")
        secret.enable("no-copy")
        secret.send()
        await bob.messages.wait_for(body_is("private"))
        await barrier(phone, laptop)
        assert not laptop.carbons_sent.matching(lambda m: m["carbon_sent"]["body"] == "private")
        assert not phone.carbons_sent.items  # the sender never gets its own copy
        for one in (phone, laptop, bob):
            await logout(one.client)

    asyncio.run(scenario())


def test_blocked_contact_never_reaches_and_gets_the_error_until_unblocked(devices):
    async def scenario():
        alice = await device(devices, "alice@localhost/phone")
        bob = await device(devices, "bob@localhost/desk")
        blocking = alice.client.plugin["xep_0191"]
        info = await alice.client.plugin["xep_0030"].get_info(jid="localhost")
        assert "urn:xmpp:blocking" in info["disco_info"]["features"]
        assert await blocking.get_blocked_jids() == set()
        await blocking.block("bob@localhost")
        assert {str(jid) for jid in await blocking.get_blocked_jids()} == {"bob@localhost"}

        bob.client.send_message(mto="alice@localhost", mbody="let me in", mtype="chat")
        error = await bob.messages.wait_for(lambda m: m["type"] == "error")
        assert error["error"]["condition"] == "service-unavailable"
        alice.client.send_message(mto="bob@localhost", mbody="go away", mtype="chat")
        refused = await alice.messages.wait_for(lambda m: m["type"] == "error")
        assert refused["error"]["condition"] == "not-acceptable"
        assert refused.xml.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") \
            is not None
        await barrier(bob, alice)
        await barrier(alice, bob)
        assert not alice.messages.matching(body_is("let me in"))
        assert not bob.messages.matching(body_is("go away"))

        await blocking.unblock("bob@localhost")
        bob.client.send_message(mto="alice@localhost", mbody="friends again", mtype="chat")
        await alice.messages.wait_for(body_is("friends again"))
        for one in (alice, bob):
            await logout(one.client)

    asyncio.run(scenario())


def test_inactive_client_gets_presence_held_deduplicated_and_messages_at_once(devices):
    async def scenario():
        await befriend(devices, "alice", "bob")
        alice = await device(devices, "alice@localhost/phone")
        bob = await device(devices, "bob@localhost/desk")
        await alice.presences.wait_for(lambda p: str(p["from"]) == "bob@localhost/desk")
        csi = alice.client.plugin["xep_0352"]
        assert csi.enabled  # the server offered the csi stream feature
        csi.send_inactive()
        await alice.ping()
        seen = len(alice.presences.items)
        for show in ("away", "dnd", "xa"):
            bob.client.send_presence(pshow=show)
        await barrier(bob, alice)
        assert len(alice.presences.items) == seen  # held

        csi.send_active()
        await alice.ping()
        flushed = alice.presences.items[seen:]
        assert [(str(p["from"]), p["show"]) for p in flushed] == [("bob@localhost/desk", "xa")]

        csi.send_inactive()
        await alice.ping()
        seen = len(alice.presences.items)
        bob.client.send_presence(pshow="chat")
        bob.client.send_message(mto="alice@localhost", mbody="wake up", mtype="chat")
        await alice.messages.wait_for(body_is("wake up"))  # at once, while inactive
        flushed = alice.presences.items[seen:]
        assert [(str(p["from"]), p["show"]) for p in flushed] == [("bob@localhost/desk", "chat")]
        for one in (alice, bob):
            await logout(one.client)

    asyncio.run(scenario())
