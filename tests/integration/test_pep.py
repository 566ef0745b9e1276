"""PEP (XEP-0163) over real TLS with slixmpp's own plugins (xep_0060, xep_0163, xep_0084,
xep_0223, xep_0115): publish, retrieve and notify; private and public nodes; a contact with
+notify caps sees events and gets the last item when it comes online; a restart keeps the
nodes; the error paths; and a contact on a second xmppd over federation."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD, assert_log_for_admins
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_federation import A, B, s2s_section
from tests.integration.test_im import Inbox

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", '
           '"offline", "pep"]\n'
           '[plugins.pep]\nmax_nodes = 4\nmax_item_size = 4096\n')
PEP_PLUGINS = ("xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0084", "xep_0223")
METADATA = "urn:xmpp:avatar:metadata"
TUNE = "http://jabber.org/protocol/tune"


def run(scenario, timeout: float = 90.0) -> None:
    """Run a scenario with a bound on the whole: a failure never hangs the suite."""
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def stop(*procs: XmppdProcess) -> None:
    for proc in procs:
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()
        assert_log_for_admins(proc.log())


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path, extra=PLUGINS)
    for user in ("alice", "bob", "carol"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    yield proc
    stop(proc)


async def connect(proc: XmppdProcess, jid: str, available: bool = True):
    """A slixmpp client with the PEP plugins, logged in, roster fetched, and (with
    ``available``) its caps-carrying initial presence sent. Returns (client, events), where
    ``events`` collects avatar metadata notifications."""
    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, PASSWORD, sasl_mech="SCRAM-SHA-256")
    client.enable_direct_tls = False
    context = ssl.create_default_context(cafile=str(proc.cert))
    ca = getattr(proc, "ca", None)
    if ca is not None:
        context.load_verify_locations(cafile=str(ca))
    context.check_hostname = getattr(proc, "client_hostname_check", True)
    client.ssl_context = context
    for plugin in PEP_PLUGINS:
        client.register_plugin(plugin)
    events = Inbox(client, "avatar_metadata_publish")
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(1))
    client.connect("127.0.0.1", proc.c2s_port)
    await asyncio.wait_for(started, 15)
    await client.get_roster()
    if available:
        # the caps (with urn:xmpp:avatar:metadata+notify) are computed in the background
        await client.plugin["xep_0115"].update_caps(broadcast=False)
        client.send_presence()
    return client, events


async def close(*clients) -> None:
    for client in clients:
        client.disconnect()
        await asyncio.wait_for(client.disconnected, 10)


async def befriend(one, other, other_jid: str) -> None:
    """Mutual presence subscription through the protocol (slixmpp accepts and asks back)."""
    subscribed = Inbox(other, "presence_subscribed")
    mine = Inbox(one, "presence_subscribed")
    one.send_presence_subscription(pto=other_jid)
    await mine.wait_for(lambda p: True, timeout=20)
    await subscribed.wait_for(lambda p: True, timeout=20)
    await asyncio.sleep(0.3)  # the subscription back completes the 'both'
    one.send_presence()
    other.send_presence()


async def publish_avatar(client, avatar_id: str, **kwargs) -> None:
    info = {"id": avatar_id, "type": "image/png", "bytes": 123}
    await client.plugin["xep_0084"].publish_avatar_metadata(info, timeout=10, **kwargs)


def metadata_id(message) -> str:
    return message["pubsub_event"]["items"]["item"]["id"]


def open_access() -> Form:
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#access_model", value="open")
    return form


def condition(error: IqError) -> tuple[str, str]:
    return error.iq["error"]["condition"], error.iq["error"]["type"]


def test_contact_sees_events_and_last_item_and_restart_keeps_them(server):
    async def scenario():
        alice, _ = await connect(server, "alice@localhost/phone")
        bob, bob_events = await connect(server, "bob@localhost/pc")
        await befriend(alice, bob, "bob@localhost")
        await publish_avatar(alice, "first")
        event = await bob_events.wait_for(lambda m: metadata_id(m) == "first", timeout=20)
        assert str(event["from"]) == "alice@localhost"
        await close(bob)
        bob, bob_events = await connect(server, "bob@localhost/laptop")
        await bob_events.wait_for(lambda m: metadata_id(m) == "first", timeout=20)
        await close(alice, bob)

    run(scenario)
    server.stop()
    server.start()

    async def after_restart():
        bob, _ = await connect(server, "bob@localhost/pc")
        items = await bob.plugin["xep_0060"].get_items("alice@localhost", METADATA, timeout=10)
        assert [item["id"] for item in items["pubsub"]["items"]] == ["first"]
        await close(bob)

    run(after_restart)


def test_private_and_public_nodes(server):
    async def scenario():
        alice, _ = await connect(server, "alice@localhost/phone")
        carol, _ = await connect(server, "carol@localhost/pc")
        from slixmpp.plugins.xep_0084 import MetaData

        private = MetaData()
        private.add_info("secret", "image/png", 1)
        await alice.plugin["xep_0223"].store(private, node="urn:example:private", id="p",
                                             timeout=10)
        stored = await alice.plugin["xep_0223"].retrieve("urn:example:private", timeout=10)
        assert [item["id"] for item in stored["pubsub"]["items"]] == ["p"]
        with pytest.raises(IqError) as refused:
            await carol.plugin["xep_0060"].get_items("alice@localhost", "urn:example:private",
                                                     timeout=10)
        assert condition(refused.value)[0] == "not-allowed"
        await publish_avatar(alice, "public", options=open_access())
        items = await carol.plugin["xep_0060"].get_items("alice@localhost", METADATA,
                                                         timeout=10)
        assert [item["id"] for item in items["pubsub"]["items"]] == ["public"]
        info = await carol.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=10)
        assert ("pubsub", "pep", None, None) in info["disco_info"]["identities"]
        listed = await carol.plugin["xep_0030"].get_items(jid="alice@localhost", timeout=10)
        assert [node for _, node, _ in listed["disco_items"]["items"]] == [METADATA]
        await close(alice, carol)

    run(scenario)


def test_error_paths(server):
    async def scenario():
        alice, _ = await connect(server, "alice@localhost/phone")
        bob, _ = await connect(server, "bob@localhost/pc")
        pubsub = alice.plugin["xep_0060"]
        await publish_avatar(alice, "one")
        # another user's PEP: forbidden
        with pytest.raises(IqError) as error:
            await bob.plugin["xep_0060"].publish("alice@localhost", METADATA, id="x",
                                                 timeout=10)
        assert condition(error.value) == ("forbidden", "auth")
        # a presence-model node read by a non-contact
        with pytest.raises(IqError) as error:
            await bob.plugin["xep_0060"].get_items("alice@localhost", METADATA, timeout=10)
        assert condition(error.value)[0] == "not-authorized"
        # conflicting publish-options: precondition-not-met, the item not stored
        with pytest.raises(IqError) as error:
            await publish_avatar(alice, "two", options=open_access())
        assert condition(error.value)[0] == "conflict"
        assert "precondition-not-met" in str(error.value.iq)
        items = await pubsub.get_items("alice@localhost", METADATA, timeout=10)
        assert [item["id"] for item in items["pubsub"]["items"]] == ["one"]
        # an item over the size limit
        big = Form()
        big["type"] = "result"
        big.add_field(var="big", value="x" * 5000)
        with pytest.raises(IqError) as error:
            await pubsub.publish(None, "urn:example:big", payload=big.xml, timeout=10)
        assert condition(error.value)[0] == "not-acceptable"
        # the node quota (4): the metadata node and three more
        for index in range(3):
            await pubsub.publish(None, f"urn:example:n{index}", payload=Form().xml, timeout=10)
        with pytest.raises(IqError) as error:
            await pubsub.publish(None, "urn:example:n3", payload=Form().xml, timeout=10)
        assert condition(error.value)[0] == "not-allowed"
        assert "max-nodes-exceeded" in str(error.value.iq)
        # a malformed configure form
        bad = Form()
        bad["type"] = "submit"
        bad.add_field(var="FORM_TYPE", ftype="hidden", value="urn:example:wrong")
        with pytest.raises(IqError) as error:
            await pubsub.set_node_config(None, METADATA, bad, timeout=10)
        assert condition(error.value)[0] == "bad-request"
        await close(alice, bob)

    run(scenario)


def test_owner_configure_then_publish_again(server):
    """What Dino and Converse.js do after precondition-not-met: reconfigure, publish."""
    async def scenario():
        alice, _ = await connect(server, "alice@localhost/phone")
        pubsub = alice.plugin["xep_0060"]
        await publish_avatar(alice, "one")
        config = await pubsub.get_node_config(None, METADATA, timeout=10)
        form = config["pubsub_owner"]["configure"]["form"]
        assert form.get_fields()["pubsub#access_model"]["value"] == "presence"
        form["type"] = "submit"
        form.get_fields()["pubsub#access_model"]["value"] = "open"
        await pubsub.set_node_config(None, METADATA, form, timeout=10)
        await publish_avatar(alice, "two", options=open_access())
        await close(alice)

    run(scenario)


def test_a_contact_on_another_server_gets_events_and_reads_an_open_node(tmp_path):
    pki = make_test_pki(tmp_path / "pki", [A, B])
    a = XmppdProcess(tmp_path / "a", domain=A,
                     certificate=(pki.good[A].cert_path, pki.good[A].key_path))
    b = XmppdProcess(tmp_path / "b", domain=B,
                     certificate=(pki.good[B].cert_path, pki.good[B].key_path))
    for proc, peer in ((a, b), (b, a)):
        proc.config.write_text(proc.config.read_text() + PLUGINS
                               + s2s_section(proc, peer, pki.ca.ca_path, "secure"))
        proc.ca = pki.ca.ca_path
        proc.client_hostname_check = True
    assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
    assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    a.start()
    b.start()

    async def scenario():
        alice, _ = await connect(a, f"alice@{A}/home")
        bob, bob_events = await connect(b, f"bob@{B}/work")
        await befriend(alice, bob, f"bob@{B}")
        # bob's caps reach a.example with his presence; a.example asks him over s2s
        await publish_avatar(alice, "across")
        event = await bob_events.wait_for(lambda m: metadata_id(m) == "across", timeout=30)
        assert str(event["from"]) == f"alice@{A}"
        await alice.plugin["xep_0060"].publish(None, TUNE, id="t", payload=Form().xml,
                                               options=open_access(), timeout=10)
        items = await bob.plugin["xep_0060"].get_items(f"alice@{A}", TUNE, timeout=20)
        assert [item["id"] for item in items["pubsub"]["items"]] == ["t"]
        await close(alice, bob)

    try:
        run(scenario, timeout=120)
    finally:
        stop(a, b)
