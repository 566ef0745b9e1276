"""MUC rooms in a cluster: three real xmppd nodes (twistd) on one PostgreSQL
(tests.storage_engines) and one real Redis (tests.redis_server), slixmpp clients with their
MUC plugins on different nodes. Each room runs on the node rendezvous hashing gives it
(xmppd.cluster.placement, computed here the same way to pick rooms on chosen nodes): users
on three nodes see each other's presence, groupchat and private messages, self-ping and
disco from every node; the node of a persistent room killed with SIGKILL: its occupants on
the other nodes told 332, the room back on another node with its config and affiliations,
rejoined; occupants on a killed node leave the rooms of the others; a node that joins takes
its rooms whole (occupants and history), and gives them back when it stops."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from slixmpp import JID

from tests.integration.conftest import PASSWORD, assert_log_for_admins
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_cluster import wait_until
from tests.integration.test_im import Inbox
from tests.integration.test_muc import body_is, close, configure, connect, muc, status_codes
from tests.integration.test_pep import run
from tests.redis_server import RedisServer
from tests.storage_engines import postgresql
from xmppd.cluster.placement import owner

HEARTBEAT = 0.5  # seconds; a node is dead after 3 missed heartbeats
EXPIRY = 3 * HEARTBEAT
PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", '
           '"offline", "carbons", "muc"]\n')
NODES = ("a", "b", "c")
SERVICE = "conference.localhost"


def node_config(dsn: str, redis_url: str, node: str) -> str:
    return (f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
            f'[cluster]\nredis = "{redis_url}"\nnode = "{node}"\nheartbeat = {HEARTBEAT}\n'
            + PLUGINS)


def room_on(node: str, nodes=NODES, then: str | None = None, without: str | None = None
            ) -> str:
    """A room JID that runs on ``node`` among ``nodes`` (and on ``then`` once ``without``
    is gone)."""
    for number in range(1000):
        room = f"room{number}@{SERVICE}"
        if owner(room, nodes) != node:
            continue
        if then is None or owner(room, [n for n in nodes if n != without]) == then:
            return room
    raise AssertionError("no such room name")


@pytest.fixture
def cluster(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()  # raises (fails the test) if redis-server cannot start
    dsn = postgresql().fresh_database()
    nodes = {name: XmppdProcess(tmp_path / name, extra=node_config(dsn, redis.url, name))
             for name in NODES}
    for user in ("alice", "bob", "carol", "dave"):
        assert nodes["a"].ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    try:
        yield redis, nodes
        for node in nodes.values():
            assert node.stop(signal.SIGTERM) == 0, node.log()
            assert "Traceback" not in node.log(), node.log()
            assert_log_for_admins(node.log())
        assert redis.command("KEYS", "xmppd:*") == []  # every node left cleanly
    finally:
        for node in nodes.values():
            node.stop(signal.SIGKILL)
        redis.stop()


def start(redis, *nodes) -> None:
    for node in nodes:
        node.start()
    names = sorted(redis.command("SMEMBERS", "xmppd:nodes"))
    assert len(names) >= len(nodes), names


async def settled(nodes, count: int) -> None:
    """Every node sees ``count`` live nodes (their 'rooms' lines in the log)."""
    await wait_until(lambda: all(
        node.log().count("cluster rooms: ") and _last_nodes(node.log()) == count
        for node in nodes))


def _last_nodes(log: str) -> int:
    for line in reversed(log.splitlines()):
        if "cluster rooms: " in line and "nodes " in line:
            names = line.split("nodes ", 1)[1].split(" (")[0].strip()
            return len(names.split())
    return 0


def room_name(info) -> str:
    [(_category, _type, _lang, name)] = info["disco_info"]["identities"]
    return name


async def enter(client, room: str, nick: str):
    presence, _subject, occupants, history = await muc(client).join_muc_wait(
        room, nick, timeout=10)
    return presence, occupants, history


async def one_user_per_node(a, b, c):
    """alice on a, bob on b, carol on c, once the three nodes see each other."""
    await settled((a, b, c), 3)
    return (await connect(a, "alice@localhost/phone"), await connect(b, "bob@localhost/pc"),
            await connect(c, "carol@localhost/laptop"))


def test_three_nodes_one_room(cluster):
    redis, nodes = cluster
    a, b, c = (nodes[name] for name in NODES)
    start(redis, a, b, c)
    room = room_on("b")  # run by b; alice on a, bob on b, carol on c

    async def scenario():
        alice, bob, carol = await one_user_per_node(a, b, c)
        presence, _, _ = await enter(alice, room, "Alice")
        assert {"110", "201"} <= set(status_codes(presence))
        await configure(alice, room, roomname="Across", publicroom=True)

        alice_presences = Inbox(alice, f"muc::{room}::presence")
        _, occupants, _ = await enter(bob, room, "Bob")
        assert {p["from"].resource for p in occupants} == {"Alice", "Bob"}
        _, occupants, _ = await enter(carol, room, "Carol")
        assert {p["from"].resource for p in occupants} == {"Alice", "Bob", "Carol"}
        await alice_presences.wait_for(lambda p: p["from"].resource == "Carol")

        inboxes = {name: Inbox(client, "groupchat_message")
                   for name, client in (("alice", alice), ("bob", bob), ("carol", carol))}
        carol.send_message(mto=room, mbody="hello from c", mtype="groupchat")
        for inbox in inboxes.values():
            got = await inbox.wait_for(body_is("hello from c"))
            assert str(got["from"]) == f"{room}/Carol"
            assert got["stanza_id"]["by"] == room

        # a private message between occupants on a and c, through the room on b
        carol_pms = Inbox(carol, "message")
        alice.send_message(mto=f"{room}/Carol", mbody="psst", mtype="chat")
        pm = await carol_pms.wait_for(body_is("psst"))
        assert str(pm["from"]) == f"{room}/Alice"
        alice_pms = Inbox(alice, "message")
        carol.send_message(mto=f"{room}/Alice", mbody="psst back", mtype="chat")
        await alice_pms.wait_for(body_is("psst back"))

        # XEP-0410 self-ping from a and c: the room on b answers
        from slixmpp.plugins.xep_0410.self_ping import PingStatus
        for client, nick in ((alice, "Alice"), (carol, "Carol")):
            status = await client.plugin["xep_0410"].send_self_ping(JID(f"{room}/{nick}"),
                                                                    timeout=10)
            assert status == PingStatus.JOINED
        # an IQ relayed between occupants of two other nodes
        version = await carol.plugin["xep_0092"].get_version(JID(f"{room}/Alice"), timeout=10)
        assert version["from"] == JID(f"{room}/Alice")

        # the room's disco from every node, the room list too (within a heartbeat)
        for client in (alice, bob, carol):
            info = await client.plugin["xep_0030"].get_info(jid=room, timeout=10)
            assert room_name(info) == "Across"

            async def listed(client=client):
                items = await client.plugin["xep_0030"].get_items(jid=SERVICE, timeout=10)
                return [jid for jid, _, _ in items["disco_items"]["items"]]

            deadline = time.monotonic() + 10
            while await listed() != [room]:
                assert time.monotonic() < deadline, await listed()
                await asyncio.sleep(HEARTBEAT)

        # leaving from c is seen on a
        muc(carol).leave_muc(room, "Carol", "bye")
        gone = await alice_presences.wait_for(
            lambda p: p["type"] == "unavailable" and p["from"].resource == "Carol")
        assert gone["status"] == "bye"
        assert (await carol.plugin["xep_0410"].send_self_ping(JID(f"{room}/Carol"), timeout=10)
                == PingStatus.DISCONNECTED)  # not-acceptable from the room on b
        await close(alice, bob, carol)

    run(scenario)


def test_the_node_of_a_persistent_room_killed(cluster):
    redis, nodes = cluster
    a, b, c = (nodes[name] for name in NODES)
    start(redis, a, b, c)
    room = room_on("c", then="a", without="c")

    async def before():
        alice, bob, carol = await one_user_per_node(a, b, c)
        await enter(alice, room, "Alice")
        await configure(alice, room, roomname="Kept", persistentroom=True, membersonly=True)
        await muc(alice).set_affiliation(room, "member", jid=JID("bob@localhost"), timeout=10)
        await muc(alice).set_affiliation(room, "member", jid=JID("carol@localhost"),
                                         timeout=10)
        await enter(bob, room, "Bob")
        await enter(carol, room, "Carol")
        return alice, bob, carol

    async def scenario():
        alice, bob, carol = await before()
        told = {name: Inbox(client, f"muc::{room}::presence")
                for name, client in (("alice", alice), ("bob", bob))}
        c.stop(signal.SIGKILL)
        killed = time.monotonic()
        for inbox in told.values():  # the service's shutdown presence (332) to each
            out = await inbox.wait_for(
                lambda p: p["type"] == "unavailable" and "332" in status_codes(p), timeout=20)
            assert "110" in status_codes(out)
        assert time.monotonic() - killed < EXPIRY + 4 * HEARTBEAT + 2.0
        # the room is back on a, loaded from PostgreSQL: config and affiliations kept
        await wait_until(lambda: "cluster rooms: 1 stored rooms loaded here" in a.log())
        info = await bob.plugin["xep_0030"].get_info(jid=room, timeout=10)
        assert room_name(info) == "Kept"
        assert "muc_membersonly" in info["disco_info"]["features"]
        presence, occupants, _ = await enter(alice, room, "Alice")
        assert presence["muc"]["affiliation"] == "owner"
        presence, occupants, _ = await enter(bob, room, "Bob")
        assert presence["muc"]["affiliation"] == "member"
        assert {p["from"].resource for p in occupants} == {"Alice", "Bob"}
        members = await muc(alice).get_affiliation_list(room, "member", timeout=10)
        assert {str(jid) for jid in members} == {"bob@localhost", "carol@localhost"}
        # dave, no member, is still kept out
        dave = await connect(b, "dave@localhost/x")
        with pytest.raises(Exception, match="registration-required"):
            await enter(dave, room, "Dave")
        inbox = Inbox(alice, "groupchat_message")
        bob.send_message(mto=room, mbody="we are back", mtype="groupchat")
        await inbox.wait_for(body_is("we are back"))
        await close(alice, bob, dave)

    run(scenario, timeout=120)
    c.start()  # back for the clean stop at the end


def test_occupants_of_a_killed_node_leave_the_room(cluster):
    redis, nodes = cluster
    a, b, c = (nodes[name] for name in NODES)
    start(redis, a, b, c)
    room = room_on("a")

    async def scenario():
        alice, bob, carol = await one_user_per_node(a, b, c)
        await enter(alice, room, "Alice")
        await configure(alice, room)
        await enter(bob, room, "Bob")
        await enter(carol, room, "Carol")
        seen = {name: Inbox(client, f"muc::{room}::presence")
                for name, client in (("alice", alice), ("bob", bob))}
        c.stop(signal.SIGKILL)
        killed = time.monotonic()
        for inbox in seen.values():
            await inbox.wait_for(lambda p: p["type"] == "unavailable"
                                 and p["from"].resource == "Carol", timeout=20)
        # within the expiry and the heartbeats that see it
        assert time.monotonic() - killed < EXPIRY + 4 * HEARTBEAT + 2.0
        assert set(muc(alice).get_roster(room)) == {"Alice", "Bob"}
        # and nobody else was told the room went
        assert not seen["bob"].matching(lambda p: "332" in status_codes(p))
        inbox = Inbox(bob, "groupchat_message")
        alice.send_message(mto=room, mbody="still here", mtype="groupchat")
        await inbox.wait_for(body_is("still here"))
        await close(alice, bob)

    run(scenario, timeout=120)
    c.start()


def test_a_node_that_joins_takes_its_rooms_whole(cluster):
    redis, nodes = cluster
    a, b, c = (nodes[name] for name in NODES)
    start(redis, a, b)
    room = room_on("c", then="a", without="c")  # on a until c comes

    async def scenario():
        await settled((a, b), 2)
        alice = await connect(a, "alice@localhost/phone")
        bob = await connect(b, "bob@localhost/pc")
        await enter(alice, room, "Alice")
        await configure(alice, room, roomname="Moving")
        await enter(bob, room, "Bob")
        inboxes = [Inbox(alice, "groupchat_message"), Inbox(bob, "groupchat_message")]
        bob.send_message(mto=room, mbody="before", mtype="groupchat")
        for inbox in inboxes:
            await inbox.wait_for(body_is("before"))
        presences = Inbox(bob, f"muc::{room}::presence")
        c.start()
        await wait_until(lambda: f"room {room} runs here now, with 2 occupants" in c.log())
        await settled((a, b, c), 3)
        bob.send_message(mto=room, mbody="after", mtype="groupchat")
        for inbox in inboxes:
            await inbox.wait_for(body_is("after"))
        # a newcomer on the node that took it gets the history from before the move
        carol = await connect(c, "carol@localhost/laptop")
        _, occupants, history = await enter(carol, room, "Carol")
        assert {p["from"].resource for p in occupants} == {"Alice", "Bob", "Carol"}
        assert [m["body"] for m in history] == ["before", "after"]
        await close(carol)
        # c stops cleanly: the room goes back to a, nobody is told it went
        assert c.stop(signal.SIGTERM) == 0
        await wait_until(lambda: a.log().count(f"room {room} runs here now") == 1)
        alice.send_message(mto=room, mbody="home again", mtype="groupchat")
        for inbox in inboxes:
            await inbox.wait_for(body_is("home again"))
        assert not presences.matching(lambda p: "332" in status_codes(p))
        assert "no word from" not in c.log()  # a and b said they handed their rooms over
        await close(alice, bob)

    run(scenario, timeout=120)
