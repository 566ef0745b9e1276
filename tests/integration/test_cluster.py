"""Two real xmppd nodes (twistd) on one PostgreSQL (tests.storage_engines) and one real Redis
(tests.redis_server): the session registry in Redis, messages between accounts on different
nodes with slixmpp (full JID, bare JID, replies), and a node killed with SIGKILL: its
sessions leave the registry within the heartbeat expiry, and a message to its account then
goes to offline storage, delivered when the account logs in again."""

from __future__ import annotations

import asyncio
import signal
import time

import psycopg
import pytest

from tests.integration.conftest import PASSWORD, assert_log_for_admins
from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_devices import barrier, device
from tests.integration.test_im import IM_PLUGINS, body_is, online, settle
from tests.redis_server import RedisServer
from tests.storage_engines import postgresql

HEARTBEAT = 0.5  # seconds; a node is dead after 3 missed heartbeats
EXPIRY = 3 * HEARTBEAT


def node_config(dsn: str, redis_url: str, node: str) -> str:
    return (f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
            f'[cluster]\nredis = "{redis_url}"\nnode = "{node}"\nheartbeat = {HEARTBEAT}\n'
            + IM_PLUGINS.replace('"offline"]', '"offline", "carbons"]'))


@pytest.fixture
def cluster(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()  # raises (fails the test) if redis-server cannot start
    dsn = postgresql().fresh_database()
    a = XmppdProcess(tmp_path / "a", extra=node_config(dsn, redis.url, "a"))
    b = XmppdProcess(tmp_path / "b", extra=node_config(dsn, redis.url, "b"))
    for user in ("alice", "bob"):
        assert a.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    a.start()
    b.start()
    try:
        yield redis, a, b, dsn
        stop_cleanly((a, b))
        # both left the registry on their clean stop
        assert redis.command("SMEMBERS", "xmppd:nodes") == []
        assert redis.command("KEYS", "xmppd:*") == []
    finally:
        for node in (a, b):
            node.stop(signal.SIGKILL)
        redis.stop()


def stop_cleanly(nodes) -> None:
    """Each node stops on SIGTERM with status 0, no traceback, nothing for the admins."""
    for node in nodes:
        assert node.stop(signal.SIGTERM) == 0, node.log()
        assert "Traceback" not in node.log(), node.log()
        assert_log_for_admins(node.log())


def registry(redis: RedisServer, node: str) -> dict:
    flat = redis.command("HGETALL", f"xmppd:sessions:{node}")
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def close(*clients) -> None:
    for client in clients:
        client.disconnect()
        await asyncio.wait_for(client.disconnected, 10)


def test_accounts_on_two_nodes_talk(cluster):
    redis, a, b, _ = cluster
    assert "cluster node a up" in a.log() and "cluster node b up" in b.log()
    assert sorted(redis.command("SMEMBERS", "xmppd:nodes")) == ["a", "b"]

    async def scenario():
        alice, alice_msgs, _ = await online(a, "alice@localhost/phone", priority=5,
                                            roster=False)
        bob, bob_msgs, _ = await online(b, "bob@localhost/desk", roster=False)
        await wait_until(lambda: registry(redis, "a").get("alice@localhost/phone") == "5 1 0"
                         and registry(redis, "b").get("bob@localhost/desk") == "0 1 0")
        await settle(0.3)  # the registry channel reached the other node
        # to a full JID on the other node, both ways
        alice.send_message(mto="bob@localhost/desk", mbody="hello from a", mtype="chat")
        message = await bob_msgs.wait_for(body_is("hello from a"))
        assert str(message["from"]) == "alice@localhost/phone"
        bob.send_message(mto="alice@localhost/phone", mbody="hello from b", mtype="chat")
        await alice_msgs.wait_for(body_is("hello from b"))
        # to a bare JID whose only session is on the other node (RFC 6121 §8.5.2.1.1)
        bob.send_message(mto="alice@localhost", mbody="to your bare JID", mtype="chat")
        message = await alice_msgs.wait_for(body_is("to your bare JID"))
        assert str(message["to"]) == "alice@localhost"
        alice.send_message(mto="bob@localhost", mbody="bare back", mtype="normal")
        await bob_msgs.wait_for(body_is("bare back"))
        # alice on both nodes: the bare JID goes to the highest priority, here on node b
        alice_b, alice_b_msgs, _ = await online(b, "alice@localhost/tablet", priority=10,
                                                roster=False)
        await wait_until(lambda: "alice@localhost/tablet" in registry(redis, "b"))
        await settle(0.3)
        alice.send_message(mto="alice@localhost", mbody="note to self", mtype="chat")
        await alice_b_msgs.wait_for(body_is("note to self"))
        await settle(0.5)
        assert not alice_msgs.matching(body_is("note to self"))
        # a resource with a space in it (RFC 7622 allows one) is reached on the other node
        spaced, spaced_msgs, _ = await online(b, "bob@localhost/my phone", roster=False)
        await wait_until(lambda: "bob@localhost/my phone" in registry(redis, "b"))
        await settle(0.3)
        alice.send_message(mto="bob@localhost/my phone", mbody="mind the gap", mtype="chat")
        await spaced_msgs.wait_for(body_is("mind the gap"))
        await close(spaced)
        # an IQ to a full JID on the other node reaches the client, and its answer comes back
        answer = await bob.plugin["xep_0199"].ping(jid="alice@localhost/phone", timeout=5)
        assert answer is not None
        await close(alice_b)
        await wait_until(lambda: "alice@localhost/tablet" not in registry(redis, "b"))
        await close(alice, bob)
        await wait_until(lambda: not registry(redis, "a") and not registry(redis, "b"))

    asyncio.run(scenario())


def test_a_killed_node_leaves_the_registry_and_its_mail_goes_offline(cluster):
    redis, a, b, dsn = cluster

    async def before():
        bob, _, _ = await online(b, "bob@localhost/desk", roster=False)
        await wait_until(lambda: "bob@localhost/desk" in registry(redis, "b"))
        return bob

    asyncio.run(before())
    b.stop(signal.SIGKILL)
    killed = time.monotonic()
    while registry(redis, "b") or "b" in redis.command("SMEMBERS", "xmppd:nodes"):
        # at most one heartbeat after the key expired
        assert time.monotonic() - killed < EXPIRY + 2 * HEARTBEAT + 1.0, registry(redis, "b")
        time.sleep(0.05)
    assert "cluster node b is gone (no heartbeat); its 1 sessions with it" in a.log()

    async def after():
        alice, _, _ = await online(a, "alice@localhost/phone", roster=False)
        alice.send_message(mto="bob@localhost/desk", mbody="while you were away", mtype="chat")
        alice.send_message(mto="bob@localhost", mbody="and again", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        with psycopg.connect(dsn) as connection:
            [(count,)] = connection.execute("SELECT COUNT(*) FROM offline_messages").fetchall()
        assert count == 2
        await close(alice)

    asyncio.run(after())
    b.start()  # bob logs in on the node again and gets them
    assert b.log().count("cluster node b up") == 2

    async def back():
        bob, bob_msgs, _ = await online(b, "bob@localhost/desk", roster=False)
        await bob_msgs.wait_for(body_is("while you were away"))
        await bob_msgs.wait_for(body_is("and again"))
        await close(bob)

    asyncio.run(back())


def test_a_node_without_redis_does_not_start(tmp_path):
    dsn = postgresql().fresh_database()
    port = free_port()  # nothing listens there
    node = XmppdProcess(tmp_path, extra=node_config(
        dsn, f"redis://:redis-secret@127.0.0.1:{port}/0", "a"))
    with pytest.raises(RuntimeError, match="xmppd exited with 1"):
        node.start(timeout=40)
    assert (f"[cluster] no answer from Redis at redis://127.0.0.1:{port}/0 within 10 seconds"
            in node.log()), node.log()
    assert "redis-secret" not in node.log()


def test_the_nodes_come_back_after_redis_restarts(cluster):
    redis, a, b, _ = cluster

    async def scenario():
        alice, alice_msgs, _ = await online(a, "alice@localhost/phone", roster=False)
        bob, bob_msgs, _ = await online(b, "bob@localhost/desk", roster=False)
        await wait_until(lambda: "bob@localhost/desk" in registry(redis, "b"))
        redis.stop()  # nothing saved: it comes back empty
        await settle(1)
        redis.start()
        # the heartbeats write the registry again; the subscriptions are made again
        await wait_until(lambda: "alice@localhost/phone" in registry(redis, "a")
                         and "bob@localhost/desk" in registry(redis, "b"), timeout=30)
        await wait_until(lambda: redis.command("PUBSUB", "NUMSUB", "xmppd:stanzas:a",
                                               "xmppd:stanzas:b")[1::2] == [1, 1], timeout=30)
        # A node may have seen the other dead for a moment (its heartbeat key was lost with
        # Redis) and dropped it: within two heartbeats every node's key is back, and at the
        # next one every mirror read the registry again.
        await settle(4 * HEARTBEAT)
        await wait_until(lambda: "alice@localhost/phone" in registry(redis, "a")
                         and "bob@localhost/desk" in registry(redis, "b"))
        await settle(2 * HEARTBEAT)
        alice.send_message(mto="bob@localhost", mbody="after the outage", mtype="chat")
        await bob_msgs.wait_for(body_is("after the outage"))
        bob.send_message(mto="alice@localhost/phone", mbody="got it", mtype="chat")
        await alice_msgs.wait_for(body_is("got it"))
        await close(alice, bob)

    asyncio.run(scenario())


def test_the_same_resource_on_another_node_replaces_the_session(cluster):
    redis, a, b, _ = cluster

    async def scenario():
        first, first_msgs, _ = await online(a, "alice@localhost/phone", roster=False)
        replaced = asyncio.get_running_loop().create_future()
        first.add_event_handler("stream_error", lambda error: replaced.done()
                                or replaced.set_result(error["condition"]))
        bob, _, _ = await online(a, "bob@localhost/desk", roster=False)
        await wait_until(lambda: "alice@localhost/phone" in registry(redis, "a"))
        second, second_msgs, _ = await online(b, "alice@localhost/phone", roster=False)
        assert await asyncio.wait_for(replaced, 10) == "conflict"  # as on one node
        await wait_until(lambda: "alice@localhost/phone" not in registry(redis, "a")
                         and "alice@localhost/phone" in registry(redis, "b"))
        bob.send_message(mto="alice@localhost/phone", mbody="which phone?", mtype="chat")
        await second_msgs.wait_for(body_is("which phone?"))
        assert not first_msgs.matching(body_is("which phone?"))
        await close(second, bob)  # the first one is gone

    asyncio.run(scenario())
    assert "alice@localhost/phone replaced by a new session on another node" in a.log()


def presence_from(jid: str, type: str = "available"):
    return lambda p: str(p["from"]) == jid and p["type"] == type


async def subscribed_both_ways(proc) -> None:
    """alice and bob subscribe to each other (on one node: the roster is in the database,
    shared by every node)."""
    alice, _, alice_pres = await online(proc, "alice@localhost/setup")
    bob, _, bob_pres = await online(proc, "bob@localhost/setup")
    alice.send_presence_subscription(pto="bob@localhost")  # slixmpp answers and asks back
    await alice_pres.wait_for(lambda p: p["type"] == "subscribed")
    await bob_pres.wait_for(lambda p: p["type"] == "subscribed")
    await settle()
    assert alice.client_roster["bob@localhost"]["subscription"] == "both"
    await close(alice, bob)


def test_presence_crosses_nodes(cluster):
    redis, a, b, _ = cluster

    async def scenario():
        await subscribed_both_ways(a)
        await wait_until(lambda: not registry(redis, "a"))
        bob, _, bob_pres = await online(b, "bob@localhost/desk")
        await wait_until(lambda: registry(redis, "b").get("bob@localhost/desk") == "0 1 0")
        await settle(0.3)
        # alice comes online on node a: bob on node b sees her (broadcast), and she sees
        # him (her probe, answered by node b, which holds his presence)
        alice, _, alice_pres = await online(a, "alice@localhost/phone")
        await bob_pres.wait_for(presence_from("alice@localhost/phone"))
        await alice_pres.wait_for(presence_from("bob@localhost/desk"))
        await wait_until(lambda: registry(redis, "a").get("alice@localhost/phone") == "0 1 0")
        await settle(0.3)
        # a second resource of bob's on node b: its probe is answered by node a
        bob2, _, bob2_pres = await online(b, "bob@localhost/laptop")
        await bob2_pres.wait_for(presence_from("alice@localhost/phone"))
        # a status change reaches both of bob's resources
        alice.send_presence(pstatus="in a meeting", pshow="dnd")
        for inbox in (bob_pres, bob2_pres):
            await inbox.wait_for(lambda p: str(p["from"]) == "alice@localhost/phone"
                                 and p["status"] == "in a meeting")
        # directed presence to a full JID on the other node
        alice.send_presence(pto="bob@localhost/laptop", pstatus="just for the laptop")
        await bob2_pres.wait_for(lambda p: p["status"] == "just for the laptop")
        await settle(0.5)
        assert not bob_pres.matching(lambda p: p["status"] == "just for the laptop")
        # alice's own resources on both nodes see each other (§4.2.2: she is subscribed to
        # herself)
        alice2, _, alice2_pres = await online(b, "alice@localhost/tablet")
        await alice2_pres.wait_for(lambda p: str(p["from"]) == "alice@localhost/phone"
                                   and p["status"] == "in a meeting")
        await alice_pres.wait_for(presence_from("alice@localhost/tablet"))
        await close(alice2)
        await alice_pres.wait_for(presence_from("alice@localhost/tablet", "unavailable"))
        # alice goes: bob sees her unavailable on both resources
        await close(alice)
        for inbox in (bob_pres, bob2_pres):
            await inbox.wait_for(presence_from("alice@localhost/phone", "unavailable"))
        await close(bob, bob2)

    asyncio.run(scenario())


def test_carbons_reach_resources_on_other_nodes(cluster):
    redis, a, b, _ = cluster

    async def scenario():
        phone = await device(a, "alice@localhost/phone", roster=False)
        tablet = await device(b, "alice@localhost/tablet", roster=False)
        bob = await device(a, "bob@localhost/desk", roster=False)
        await tablet.client.plugin["xep_0280"].enable()
        # the registry carries the tablet's carbons flag to node a
        await wait_until(lambda: registry(redis, "b").get("alice@localhost/tablet") == "0 1 1"
                         and registry(redis, "a").get("alice@localhost/phone") == "0 1 0")
        await settle(0.3)
        # sent from node a: the <sent/> copy reaches the tablet on node b (XEP-0280 §8)
        phone.client.send_message(mto="bob@localhost/desk", mbody="from the phone",
                                  mtype="chat")
        await bob.messages.wait_for(body_is("from the phone"))
        carbon = await tablet.carbons_sent.wait_for(
            lambda m: m["carbon_sent"]["body"] == "from the phone")
        assert str(carbon["carbon_sent"]["to"]) == "bob@localhost/desk"
        assert str(carbon["from"]) == "alice@localhost"
        # received on node a by the phone: the <received/> copy reaches the tablet (§7)
        bob.client.send_message(mto="alice@localhost/phone", mbody="for the phone",
                                mtype="chat")
        await phone.messages.wait_for(body_is("for the phone"))
        carbon = await tablet.carbons_received.wait_for(
            lambda m: m["carbon_received"]["body"] == "for the phone")
        assert str(carbon["carbon_received"]["from"]) == "bob@localhost/desk"
        # the tablet turns carbons off: no more copies
        await tablet.client.plugin["xep_0280"].disable()
        await wait_until(lambda: registry(redis, "b").get("alice@localhost/tablet") == "0 1 0")
        await settle(0.3)
        phone.client.send_message(mto="bob@localhost/desk", mbody="not copied", mtype="chat")
        await bob.messages.wait_for(body_is("not copied"))
        await barrier(phone, tablet)
        await settle(0.3)
        assert not tablet.carbons_sent.matching(lambda m: m["carbon_sent"]["body"]
                                                == "not copied")
        assert not phone.carbons_sent.items and not phone.carbons_received.items
        await close(phone.client, tablet.client, bob.client)

    asyncio.run(scenario())
