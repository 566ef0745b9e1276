"""OMEMO (XEP-0384) end to end (issue #12): two real OMEMO clients (slixmpp-omemo) on two
accounts of a real xmppd, with no presence subscription between them, publish their device
lists and bundles in their PEP services (XEP-0163), fetch each other's, and exchange encrypted
messages both ways under both OMEMO versions; then one reads a message that waited in offline
storage. The server never sees a plaintext: the test decrypts and compares."""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.jid import JID

pytest.importorskip(
    "slixmpp_omemo",
    reason="slixmpp-omemo is not installed (it is in the test extra: pip install -e '.[test]')")

from tests.integration.conftest import PASSWORD, assert_log_for_admins  # noqa: E402
from tests.integration.omemo_client import (  # noqa: E402
    FALLBACK,
    OLDMEMO,
    TWOMEMO,
    OmemoClient,
)
from tests.integration.serverproc import XmppdProcess  # noqa: E402

# slixmpp-omemo 2.2 reaches slixmpp's plugins the deprecated way (xmpp["xep_0060"])
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing plugins through the XMPP object:DeprecationWarning")

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", '
           '"offline", "pep"]\n')
VERSIONS = [pytest.param(TWOMEMO, id="omemo2"), pytest.param(OLDMEMO, id="legacy-omemo")]
ALICE, BOB = "alice@localhost", "bob@localhost"
DEVICE_LIST_NODES = {TWOMEMO: "urn:xmpp:omemo:2:devices",
                     OLDMEMO: "eu.siacs.conversations.axolotl.devicelist"}


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path, extra=PLUGINS)
    for user in ("alice", "bob"):
        result = proc.ctl("adduser", f"{user}@localhost", PASSWORD)
        assert result.returncode == 0, result.stderr
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()
    assert_log_for_admins(proc.log())


def run(scenario, timeout: float = 120.0) -> None:
    """Run a scenario with a bound on the whole: a failure never hangs the suite."""
    asyncio.run(asyncio.wait_for(scenario(), timeout))


async def strangers_online(server, alice_data: dict, bob_data: dict):
    alice = await OmemoClient.login(server, f"{ALICE}/phone", PASSWORD, alice_data)
    bob = await OmemoClient.login(server, f"{BOB}/desk", PASSWORD, bob_data)
    # no presence subscription either way: PEP access to the OMEMO nodes must come from their
    # open access model, not from a roster
    for client in (alice, bob):
        roster = await asyncio.wait_for(client.xmpp.get_roster(), 10)
        assert not roster["roster"]["items"], roster
    return alice, bob


async def exchange(alice: OmemoClient, bob: OmemoClient, namespace: str, tag: str) -> None:
    """alice → bob, then bob → alice, under one OMEMO version; each side decrypts."""
    text = f"hello bob, {tag} ✓ <&> under {namespace}"
    await alice.send(BOB, text, namespace)
    received = await bob.receive()
    assert received.namespace == namespace
    assert received.body == text
    assert received.sender.bare == ALICE
    assert received.sender_device == await alice.device_id()
    # what crossed the server: the fallback body and the OMEMO payload, never the plaintext
    assert received.stanza["body"] == FALLBACK
    assert text not in str(received.stanza)

    answer = f"hi alice, {tag} back under {namespace}"
    await bob.send(ALICE, answer, namespace)
    received = await alice.receive()
    assert received.namespace == namespace
    assert received.body == answer
    assert received.sender.bare == BOB
    assert received.sender_device == await bob.device_id()


@pytest.mark.parametrize("namespace", VERSIONS)
def test_devices_and_bundles_are_published_and_fetched_without_subscription(server, namespace):
    async def scenario():
        alice, bob = await strangers_online(server, {}, {})
        try:
            # each fetches the other's device list from the other's PEP service, as a stranger
            assert await alice.device_id() in (await bob.devices_of(ALICE)).get(namespace, set())
            assert await bob.device_id() in (await alice.devices_of(BOB)).get(namespace, set())
            # the owner reads its own device list node back: one item, "current"
            node = DEVICE_LIST_NODES[namespace]
            items = await asyncio.wait_for(
                alice.xmpp.plugin["xep_0060"].get_items(JID(ALICE), node), 10)
            assert [item["id"] for item in items["pubsub"]["items"]] == ["current"]
            # open to anyone because the client's publish-options said so (PEP's default
            # access model, presence, would have kept bob out)
            config = await asyncio.wait_for(
                alice.xmpp.plugin["xep_0060"].get_node_config(JID(ALICE), node), 10)
            form = config["pubsub_owner"]["configure"]["form"].get_values()
            assert form.get("pubsub#access_model") == "open", config
            assert form.get("pubsub#max_items") == "1", config
        finally:
            await alice.logout()
            await bob.logout()

    run(scenario)


@pytest.mark.parametrize("namespace", VERSIONS)
def test_encrypted_messages_both_ways(server, namespace):
    async def scenario():
        alice, bob = await strangers_online(server, {}, {})
        try:
            await exchange(alice, bob, namespace, "first")  # a new session: key exchange
            await exchange(alice, bob, namespace, "second")  # the established session
            assert not alice.plain and not bob.plain, (alice.plain, bob.plain)
        finally:
            await alice.logout()
            await bob.logout()

    run(scenario)


@pytest.mark.parametrize("namespace", VERSIONS)
def test_encrypted_message_waits_in_offline_storage(server, namespace):
    async def scenario():
        alice_data: dict = {}
        bob_data: dict = {}  # bob's OMEMO device: the same keys when he logs in again
        alice, bob = await strangers_online(server, alice_data, bob_data)
        bob_device = await bob.device_id()
        await exchange(alice, bob, namespace, "online")
        await bob.logout()

        text = f"while you were away, under {namespace}"
        await alice.send(BOB, text, namespace)
        await asyncio.sleep(0.5)  # stored before bob is back: no resource could take it

        bob = await OmemoClient.login(server, f"{BOB}/desk", PASSWORD, bob_data)
        try:
            assert await bob.device_id() == bob_device
            received = await bob.receive()
            assert received.namespace == namespace
            assert received.body == text
            assert received.sender.bare == ALICE
            # it waited: the server stamped it with its delay (XEP-0203)
            assert received.stanza["delay"]["stamp"] is not None
            assert received.stanza["delay"]["from"] == "localhost"
            # the session still works both ways after the offline delivery
            await exchange(alice, bob, namespace, "after offline")
        finally:
            await alice.logout()
            await bob.logout()

    run(scenario)


@pytest.mark.parametrize("namespace", VERSIONS)
def test_a_strangers_new_device_is_pushed_to_its_subscriber(server, namespace):
    """Without a roster, alice learns bob's devices through her own subscription to his
    device list node (XEP-0060 subscribe on an open PEP node): when bob adds a device, the
    server notifies her, and her next message is readable on both of his devices."""
    async def scenario():
        alice, bob_desk = await strangers_online(server, {}, {})
        laptop = None
        try:
            await exchange(alice, bob_desk, namespace, "one device")  # alice subscribes here
            laptop = await OmemoClient.login(server, f"{BOB}/laptop", PASSWORD, {})
            laptop_device = await laptop.device_id()
            await alice.device_list_pushed(namespace, BOB, laptop_device)
            for resource, device in (("laptop", laptop), ("desk", bob_desk)):
                text = f"to bob's {resource}, under {namespace}"
                await alice.send(f"{BOB}/{resource}", text, namespace)
                received = await device.receive()
                assert (received.namespace, received.body) == (namespace, text)
        finally:
            await alice.logout()
            await bob_desk.logout()
            if laptop is not None:
                await laptop.logout()

    run(scenario)
