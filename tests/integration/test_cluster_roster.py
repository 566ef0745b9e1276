"""Rosters, subscriptions and PEP across three real xmppd nodes (twistd) on one PostgreSQL
(tests.storage_engines) and one real Redis (tests.redis_server), with slixmpp clients:

- a presence subscription between accounts on different nodes, end to end (subscribe,
  approve, both see presence, cancel), with every change pushed (RFC 6121 §2.1.6) to the
  interested resources on the other nodes, and each node's roster kept in memory dropped
  when another node changed it (a stale one would still send presence to a former
  subscriber, and answer a roster get with the old item);
- PEP notifications (XEP-0163) from an account on one node to a contact's resource on
  another and to the publisher's own resources on the others, exactly once each; the last
  item sent on presence by the node the contact logs in on;
- ``xmppdctl cluster`` (nodes, sessions, links) from any node."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import xml.etree.ElementTree as ET

import pytest

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_cluster import close, registry, stop_cleanly, wait_until
from tests.integration.test_federation import PLUGINS as FEDERATION_PLUGINS
from tests.integration.test_federation import A, B, s2s_section, user
from tests.integration.test_im import Inbox, body_is, online, settle
from tests.integration.test_pep import PLUGINS, connect, metadata_id, publish_avatar
from tests.redis_server import RedisServer
from tests.storage_engines import postgresql

HEARTBEAT = 0.5
DEVICE_LIST = "eu.siacs.conversations.axolotl.devicelist"
NODES = ("a", "b", "c")
SECRET = "the nodes' shared dialback secret"  # needed once a node federates


def node_config(dsn: str, redis_url: str, node: str, plugins: str = PLUGINS) -> str:
    return (f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
            f'[cluster]\nredis = "{redis_url}"\nnode = "{node}"\nheartbeat = {HEARTBEAT}\n'
            f'secret = "{SECRET}"\n' + plugins)


@contextlib.contextmanager
def running_cluster(tmp_path, names, plugins: str = PLUGINS):
    """Redis, PostgreSQL and the nodes ``names`` with alice, bob and carol: (redis, nodes by
    name); each node stopped cleanly after, with nothing in its log for the admins and
    nothing left in Redis."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    dsn = postgresql().fresh_database()
    nodes = {name: XmppdProcess(tmp_path / name,
                                extra=node_config(dsn, redis.url, name, plugins))
             for name in names}
    for name in ("alice", "bob", "carol"):
        assert nodes[names[0]].ctl("adduser", f"{name}@localhost", PASSWORD).returncode == 0
    try:
        for node in nodes.values():
            node.start()
        yield redis, nodes
        stop_cleanly(nodes.values())
        assert redis.command("KEYS", "xmppd:*") == []  # a clean stop leaves nothing
    finally:
        for node in nodes.values():
            node.stop(signal.SIGKILL)
        redis.stop()


@pytest.fixture
def cluster(tmp_path):
    """Redis, PostgreSQL and three nodes a, b, c with alice, bob and carol."""
    with running_cluster(tmp_path, NODES) as (redis, nodes):
        yield redis, nodes


def run(scenario, timeout: float = 120.0) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


async def registered(redis: RedisServer, *where: tuple[str, str]) -> None:
    """Each (node, full JID) is in the registry, and the other nodes had time to hear it."""
    await wait_until(lambda: all(jid in registry(redis, node) for node, jid in where))
    await settle(0.3)


def pushes(client) -> Inbox:
    """The roster pushes a client gets (slixmpp's roster_update, for iq type 'set')."""
    return Inbox(client, "roster_update")


def pushed(contact: str, subscription: str, ask: bool = False, name: str | None = None):
    def matches(iq) -> bool:
        if iq["type"] != "set":
            return False
        item = iq["roster"]["items"].get(contact)
        return (item is not None and item["subscription"] == subscription
                and (item["ask"] == "subscribe") == ask
                and (name is None or item["name"] == name))
    return matches


def from_(jid: str, type: str = "available"):
    return lambda p: str(p["from"]) == jid and p["type"] == type


def test_a_subscription_between_nodes_end_to_end(cluster):
    redis, nodes = cluster
    a, b, c = nodes["a"], nodes["b"], nodes["c"]

    async def scenario():
        # alice on nodes a and c, bob on nodes b and c; all of them fetched the roster
        alice, alice_msgs, alice_pres = await online(a, "alice@localhost/phone")
        tablet, _, tablet_pres = await online(c, "alice@localhost/tablet")
        bob, _, bob_pres = await online(b, "bob@localhost/desk")
        laptop, _, laptop_pres = await online(c, "bob@localhost/laptop")
        alice_pushes, tablet_pushes = pushes(alice), pushes(tablet)
        bob_pushes, laptop_pushes = pushes(bob), pushes(laptop)
        for client in (bob, laptop):  # bob answers by hand
            client.roster.auto_authorize = None
            client.roster.auto_subscribe = False
        for client in (alice, tablet):
            client.roster.auto_authorize = None
        await registered(redis, ("a", "alice@localhost/phone"), ("c", "alice@localhost/tablet"),
                         ("b", "bob@localhost/desk"), ("c", "bob@localhost/laptop"))

        # subscribe, sent on node a: alice's item (ask) is pushed to her tablet on node c,
        # the request reaches bob's resources on nodes b and c
        alice.send_presence_subscription(pto="bob@localhost")
        for inbox in (alice_pushes, tablet_pushes):
            await inbox.wait_for(pushed("bob@localhost", "none", ask=True))
        for inbox in (bob_pres, laptop_pres):
            await inbox.wait_for(lambda p: p["type"] == "subscribe"
                                 and p["from"].bare == "alice@localhost")

        # approved on node b: bob's item ('from') is pushed to his laptop on node c; alice's
        # ('to'), stored by node b, reaches her phone on a and her tablet on c; she sees
        # both of bob's resources
        bob.send_presence(pto="alice@localhost", ptype="subscribed")
        for inbox in (bob_pushes, laptop_pushes):
            await inbox.wait_for(pushed("alice@localhost", "from"))
        for inbox in (alice_pushes, tablet_pushes):
            await inbox.wait_for(pushed("bob@localhost", "to"))
        for inbox in (alice_pres, tablet_pres):
            await inbox.wait_for(from_("bob@localhost/desk"))
            await inbox.wait_for(from_("bob@localhost/laptop"))

        # and back: bob subscribes from node c, alice approves from node c
        laptop.send_presence_subscription(pto="alice@localhost")
        await alice_pres.wait_for(lambda p: p["type"] == "subscribe")
        tablet.send_presence(pto="bob@localhost", ptype="subscribed")
        for inbox in (alice_pushes, tablet_pushes):
            await inbox.wait_for(pushed("bob@localhost", "both"))
        for inbox in (bob_pushes, laptop_pushes):
            await inbox.wait_for(pushed("alice@localhost", "both"))
        for inbox in (bob_pres, laptop_pres):
            await inbox.wait_for(from_("alice@localhost/phone"))
            await inbox.wait_for(from_("alice@localhost/tablet"))
        assert alice.client_roster["bob@localhost"]["subscription"] == "both"
        assert laptop.client_roster["alice@localhost"]["subscription"] == "both"

        # a roster set on node a: pushed to the tablet on node c, whose node answers a
        # roster get with the new item (it dropped the roster it kept)
        alice.update_roster("bob@localhost", name="Bobby", groups=["work"])
        await tablet_pushes.wait_for(pushed("bob@localhost", "both", name="Bobby"))
        get = tablet.Iq(stype="get")  # without 'ver': the whole roster, as node c has it
        get.enable("roster")
        result = await get.send(timeout=10)
        assert result["roster"]["items"]["bob@localhost"]["name"] == "Bobby"

        # bob cancels alice's subscription, on node b: pushed on every node...
        bob.send_presence(pto="alice@localhost", ptype="unsubscribed")
        await laptop_pushes.wait_for(pushed("alice@localhost", "to"))
        for inbox in (alice_pushes, tablet_pushes):
            await inbox.wait_for(pushed("bob@localhost", "from", name="Bobby"))
        for inbox in (alice_pres, tablet_pres):
            await inbox.wait_for(from_("bob@localhost/laptop", "unavailable"))
        # ...and node c no longer sends the laptop's presence to alice: its status change
        # goes to bob's own resources only (a marker message, sent after it on the same
        # path, shows nothing was on the way)
        laptop.send_presence(pstatus="out for lunch")
        await bob_pres.wait_for(lambda p: p["status"] == "out for lunch")
        laptop.send_message(mto="alice@localhost/phone", mbody="marker", mtype="chat")
        await alice_msgs.wait_for(body_is("marker"))
        await settle(0.3)
        assert not alice_pres.matching(lambda p: p["status"] == "out for lunch")
        assert not tablet_pres.matching(lambda p: p["status"] == "out for lunch")

        # alice removes bob on node c: the removal reaches her phone on a, and bob's items
        # (his 'to' ends) reach him on b and c
        tablet.del_roster_item("bob@localhost")
        await alice_pushes.wait_for(pushed("bob@localhost", "remove"))
        for inbox in (bob_pushes, laptop_pushes):
            await inbox.wait_for(pushed("alice@localhost", "none"))
        await close(alice, tablet, bob, laptop)

    run(scenario)


async def befriend(node) -> None:
    """alice and bob mutual contacts ("both"), made through ``node``."""
    alice, _ = await connect(node, "alice@localhost/setup")
    bob, _ = await connect(node, "bob@localhost/setup")
    subscribed = Inbox(alice, "presence_subscribed")
    alice.send_presence_subscription(pto="bob@localhost")  # slixmpp approves and asks back
    await subscribed.wait_for(lambda p: True, timeout=20)
    await wait_until(lambda: bob.client_roster["alice@localhost"]["subscription"] == "both"
                     and alice.client_roster["bob@localhost"]["subscription"] == "both")
    await close(alice, bob)


def test_pep_notifications_cross_nodes(cluster):
    redis, nodes = cluster
    a, b, c = nodes["a"], nodes["b"], nodes["c"]

    async def scenario():
        # friends first (on node a), then everyone where they live
        await befriend(a)

        alice, alice_events = await connect(a, "alice@localhost/phone")
        bob, bob_events = await connect(b, "bob@localhost/desk")
        tablet, tablet_events = await connect(c, "alice@localhost/tablet")
        carol, carol_events = await connect(c, "carol@localhost/pc")  # no contact of alice
        await registered(redis, ("a", "alice@localhost/phone"), ("b", "bob@localhost/desk"),
                         ("c", "alice@localhost/tablet"), ("c", "carol@localhost/pc"))
        await settle(1.0)  # the caps of each (a disco#info round trip) are resolved

        # published on node a: bob on node b and alice's tablet on node c get it, once
        await publish_avatar(alice, "first")
        event = await bob_events.wait_for(lambda m: metadata_id(m) == "first", timeout=20)
        assert str(event["from"]) == "alice@localhost"
        await tablet_events.wait_for(lambda m: metadata_id(m) == "first", timeout=20)
        await alice_events.wait_for(lambda m: metadata_id(m) == "first", timeout=20)

        # published on node b: alice gets it on nodes a and c
        await publish_avatar(bob, "bob's")
        for inbox in (alice_events, tablet_events):
            await inbox.wait_for(lambda m: metadata_id(m) == "bob's", timeout=20)

        # bob logs in on node c: that node sends him alice's last item
        laptop, laptop_events = await connect(c, "bob@localhost/laptop")
        await laptop_events.wait_for(lambda m: metadata_id(m) == "first", timeout=20)

        # a second publish, on node c by the tablet: everyone who wants it, once
        await publish_avatar(tablet, "second")
        for inbox in (alice_events, bob_events, tablet_events, laptop_events):
            await inbox.wait_for(lambda m: metadata_id(m) == "second", timeout=20)
        await settle(0.5)
        for inbox in (alice_events, bob_events, tablet_events, laptop_events):
            ids = [metadata_id(m) for m in inbox.items if m["from"] == "alice@localhost"]
            assert ids.count("second") == 1, ids
            assert ids.count("first") == 1, ids  # the laptop's: the last item, from node c
        assert not carol_events.items  # not a contact: nothing, whichever node

        # an OMEMO device list (the legacy node Conversations publishes), from node c: the
        # clients' new caps (+notify) are learned by the nodes they are on
        clients = {"phone": alice, "desk": bob, "tablet": tablet, "laptop": laptop,
                   "carol": carol}
        lists = {name: Inbox(client, "pubsub_publish") for name, client in clients.items()}
        for client in clients.values():
            client.plugin["xep_0030"].add_feature(DEVICE_LIST + "+notify")
            await client.plugin["xep_0115"].update_caps(broadcast=True)
        await settle(1.5)
        payload = ET.fromstring("<list xmlns='eu.siacs.conversations.axolotl'>"
                                "<device id='4711'/></list>")
        await tablet.plugin["xep_0060"].publish(None, DEVICE_LIST, id="current",
                                                payload=payload, timeout=10)
        for name in ("phone", "desk", "tablet", "laptop"):
            await lists[name].wait_for(device_list_of("alice@localhost"), timeout=20)
        await settle(0.5)
        for name in ("phone", "desk", "tablet", "laptop"):
            assert len(lists[name].matching(device_list_of("alice@localhost"))) == 1, name
        assert not lists["carol"].matching(device_list_of("alice@localhost"))
        await close(alice, bob, tablet, carol, laptop)

    run(scenario)


def device_list_of(account: str):
    return lambda message: (str(message["from"]) == account
                            and message["pubsub_event"]["items"]["node"] == DEVICE_LIST)


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_xmppdctl_shows_the_cluster(cluster):
    redis, nodes = cluster
    a, b, c = nodes["a"], nodes["b"], nodes["c"]

    async def scenario():
        alice, _, _ = await online(a, "alice@localhost/phone", priority=3)
        bob, _, _ = await online(b, "bob@localhost/desk")
        await registered(redis, ("a", "alice@localhost/phone"), ("b", "bob@localhost/desk"))

        shown = c.ctl("cluster")  # asked on node c, which has no session
        assert shown.returncode == 0, shown.stderr
        header, *rows = table(shown.stdout)
        assert header[:3] == ["NODE", "ALIVE", "LAST_HEARTBEAT"]
        assert header[-3:] == ["SESSIONS", "LINKS", "THIS"]
        by_node = {row[0]: row for row in rows}
        assert sorted(by_node) == ["a", "b", "c"]
        for name, sessions in (("a", "1"), ("b", "1"), ("c", "0")):
            row = by_node[name]
            assert row[1] == "yes" and row[-3:] == [sessions, "0", "yes" if name == "c" else "no"]
            assert row[3] == "ago" and float(row[2].rstrip("s")) < 10 * HEARTBEAT

        shown = b.ctl("cluster", "sessions")
        assert shown.returncode == 0, shown.stderr
        assert table(shown.stdout) == [["NODE", "JID", "PRIORITY", "AVAILABLE", "CARBONS"],
                                       ["a", "alice@localhost/phone", "3", "yes", "no"],
                                       ["b", "bob@localhost/desk", "0", "yes", "no"]]
        shown = b.ctl("cluster", "sessions", "a")
        assert table(shown.stdout)[1:] == [["a", "alice@localhost/phone", "3", "yes", "no"]]
        shown = b.ctl("cluster", "sessions", "nowhere")
        assert shown.returncode == 1
        assert "no node 'nowhere' in the cluster (nodes: a, b, c)" in shown.stderr
        shown = a.ctl("cluster", "links")  # no federation here: no links, no table
        assert shown.returncode == 0 and shown.stdout.strip() == "", shown

        await close(alice, bob)

    run(scenario)
    # node b stops cleanly: it leaves the registry and the view at once
    assert b.stop(signal.SIGTERM) == 0
    shown = a.ctl("cluster")
    assert [row[0] for row in table(shown.stdout)[1:]] == ["a", "c"]


def test_each_nodes_s2s_links_are_shown_by_every_node(tmp_path):
    """Node n1 of a.example federates with a second xmppd (b.example); node n2, which has
    no s2s at all, shows n1's links (from Redis, written with n1's heartbeat)."""
    pki = make_test_pki(tmp_path / "pki", [A, B])
    cert = (pki.good[A].cert_path, pki.good[A].key_path)
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    dsn = postgresql().fresh_database()
    cluster_section = node_config(dsn, redis.url, "n1").replace(PLUGINS, "")
    n1 = XmppdProcess(tmp_path / "n1", domain=A, certificate=cert, extra=cluster_section)
    n2 = XmppdProcess(tmp_path / "n2", domain=A, certificate=cert,
                      extra=node_config(dsn, redis.url, "n2"))
    peer = XmppdProcess(tmp_path / "peer", domain=B,
                        certificate=(pki.good[B].cert_path, pki.good[B].key_path))
    for proc, other in ((n1, peer), (peer, n1)):
        proc.config.write_text(proc.config.read_text() + FEDERATION_PLUGINS
                               + s2s_section(proc, other, pki.ca.ca_path, "secure"))
        proc.ca, proc.client_hostname_check = pki.ca.ca_path, True
    assert n1.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
    assert peer.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    procs = (n1, n2, peer)
    try:
        for proc in procs:
            proc.start()

        async def scenario():
            bob, _, _ = await user(peer, f"bob@{B}/work")
            bob.send_message(mto=f"alice@{A}", mbody="across", mtype="chat")  # kept offline
            await bob.plugin["xep_0199"].ping(jid=A, timeout=20)  # the link is up

            def n1_links() -> list[list[str]]:
                return [row for row in table(n2.ctl("cluster", "links").stdout)[1:]
                        if row[0] == "n1"]

            await wait_until(lambda: any(row[1:3] == ["incoming", A] and row[3] == B
                                         for row in n1_links()), timeout=20)
            header = table(n2.ctl("cluster", "links").stdout)[0]
            assert header == ["NODE", "DIRECTION", "LOCAL", "REMOTE", "AUTH", "TLS", "PEER"]
            rows = {row[0]: row for row in table(n2.ctl("cluster").stdout)[1:]}
            assert int(rows["n1"][-2]) >= 1 and rows["n2"][-2] == "0"
            await close(bob)

        run(scenario)
    finally:
        for proc in procs:
            proc.stop(signal.SIGTERM)
            assert "Traceback" not in proc.log(), proc.log()
        redis.stop()
