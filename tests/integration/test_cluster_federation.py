"""Three real xmppd nodes serving c.example (one PostgreSQL, one Redis) and a federated peer,
a fourth xmppd on its own SQLite serving p.example and q.example; every server finds the others
through SRV records served by the test DNS server (tests.interop.dnsserver).

c.example's SRV records list n1 first, then n2 and n3: the peer's links land on n1, and the
peer checks every dialback key of c.example there, whichever node made it. Certificates are
self-signed, so every link is proven by dialback (``secure``); q.example must be ``trusted``
(a valid certificate), which it cannot be, on every node.

And a node that dies with messages waiting for its users (SIGSTOP, then SIGKILL): a live node
takes over its inbox, each message goes to the account's resource on another node or to
offline storage, none is lost; the registry forgets the dead node within the expiry; its users
log in on another node. Messages sent while the nodes' Redis connections are cut all arrive.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from types import SimpleNamespace

import psycopg
import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_cluster import close, registry, wait_until
from tests.integration.test_federation import user
from tests.integration.test_im import IM_PLUGINS, body_is, settle
from tests.interop.dnsserver import SRV, A, TestDNSServer, xmpp_server_zone
from tests.redis_server import RedisServer
from tests.storage_engines import postgresql

C, P, Q = "c.example", "p.example", "q.example"
HEARTBEAT = 3.0  # seconds: long enough for a frozen node's inbox to fill before it is dead
EXPIRY = 3 * HEARTBEAT
SECRET = "the cluster's own dialback secret"


def s2s_config(proc: XmppdProcess, dns_port: int, policy: str = "") -> str:
    return (f'[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]\n'
            f'dns_servers = ["127.0.0.1:{dns_port}"]\ndefault_policy = "secure"\n'
            'connect_timeout = 3.0\nauth_timeout = 5.0\nbidi = false\n' + policy)


@pytest.fixture
def world(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    dsn = postgresql().fresh_database()
    certificate = XmppdProcess(tmp_path / "n1", domain=C)  # one self-signed certificate
    nodes = [certificate] + [XmppdProcess(tmp_path / f"n{i}", domain=C,
                                          certificate=(certificate.cert, certificate.key))
                             for i in (2, 3)]
    peer = XmppdProcess(tmp_path / "peer", domain=P)
    zone = {f"_xmpp-server._tcp.{C}": [SRV("127.0.0.1.", node.s2s_port, priority=10 * i)
                                       for i, node in enumerate(nodes)],
            C: [A("127.0.0.1")],
            **xmpp_server_zone(P, "127.0.0.1", peer.s2s_port),
            **xmpp_server_zone(Q, "127.0.0.1", peer.s2s_port)}
    dns = TestDNSServer(zone)
    dns.start()
    try:
        for i, node in enumerate(nodes, 1):
            node.config.write_text(node.config.read_text() + (
                f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
                f'[cluster]\nredis = "{redis.url}"\nnode = "n{i}"\nheartbeat = {HEARTBEAT}\n'
                f'secret = "{SECRET}"\n' + IM_PLUGINS
                + s2s_config(node, dns.port, f'[s2s.policy]\n"{Q}" = "trusted"\n')))
            node.ca, node.client_hostname_check = node.cert, True
        peer.config.write_text(peer.config.read_text().replace(
            f'domains = ["{P}"]', f'domains = ["{P}", "{Q}"]') + IM_PLUGINS
            + s2s_config(peer, dns.port))
        peer.ca, peer.client_hostname_check = peer.cert, False  # q.example shows p's
        for name in ("alice", "bob", "carol", "u1", "u2", "u3"):
            assert nodes[0].ctl("adduser", f"{name}@{C}", PASSWORD).returncode == 0
        for account in (f"pat@{P}", f"quinn@{Q}"):
            assert peer.ctl("adduser", account, PASSWORD).returncode == 0
        for proc in (*nodes, peer):
            proc.start()
        yield SimpleNamespace(redis=redis, dsn=dsn, nodes=nodes, peer=peer, dns=dns)
        for proc in (*nodes, peer):
            if proc.process.poll() is None:
                assert proc.stop(signal.SIGTERM) == 0, proc.log()
            assert "Traceback" not in proc.log(), proc.log()
            assert SECRET not in proc.log()
        assert redis.command("KEYS", "xmppd:*") == []  # the nodes left Redis as they found it
    finally:
        for proc in (*nodes, peer):
            proc.stop(signal.SIGKILL)
        dns.stop()
        redis.stop()


async def login(proc: XmppdProcess, jid: str, priority: int = 0):
    client, messages, presences = await user(proc, jid)
    if priority:
        client.send_presence(ppriority=priority)
    return client, messages, presences


async def registered(redis, *where: tuple[str, str]) -> None:
    """Each (node, full JID) is in the registry, and the mirrors had time to hear of it."""
    await wait_until(lambda: all(jid in registry(redis, node) for node, jid in where))
    await settle(0.5)


def test_a_peer_reaches_users_on_every_node_and_they_reach_it(world):
    n1, n2, n3 = world.nodes

    async def scenario():
        users = [await login(node, f"u{i}@{C}/r") for i, node in enumerate(world.nodes, 1)]
        pat, pat_msgs, pat_pres = await login(world.peer, f"pat@{P}/home")
        quinn, quinn_msgs, _ = await login(world.peer, f"quinn@{Q}/home")
        await registered(world.redis, *((f"n{i}", f"u{i}@{C}/r") for i in (1, 2, 3)))
        # users on every node reach the peer: each node opens its own link, and the peer
        # checks each node's dialback key with n1, the first in DNS
        for i, (client, _, _) in enumerate(users, 1):
            client.send_message(mto=f"pat@{P}/home", mbody=f"from node {i}", mtype="chat")
        for i in (1, 2, 3):
            message = await pat_msgs.wait_for(body_is(f"from node {i}"), timeout=20)
            assert str(message["from"]) == f"u{i}@{C}/r"
        # the peer reaches users on every node: its link lands on n1, which forwards
        for i in (1, 2, 3):
            pat.send_message(mto=f"u{i}@{C}", mbody=f"to node {i}", mtype="chat")
        for i, (_, messages, _) in enumerate(users, 1):
            message = await messages.wait_for(body_is(f"to node {i}"), timeout=20)
            assert str(message["from"]) == f"pat@{P}/home"
        # an IQ from the peer to a full JID on n3, and its answer back
        assert await pat.plugin["xep_0199"].ping(jid=f"u3@{C}/r", timeout=10) is not None
        # a subscription from the peer to an account on n2: asked there, answered from there
        pat.send_presence_subscription(pto=f"u2@{C}")
        await pat_pres.wait_for(lambda p: p["type"] == "subscribed"
                                and p["from"].bare == f"u2@{C}", timeout=20)
        await pat_pres.wait_for(lambda p: p["type"] == "available"
                                and str(p["from"]) == f"u2@{C}/r", timeout=20)
        # q.example must be trusted (a valid certificate): every node refuses it
        for i, (client, messages, _) in enumerate(users, 1):
            client.send_message(mto=f"quinn@{Q}/home", mbody=f"refused {i}", mtype="chat")
            bounce = await messages.wait_for(lambda m: m["type"] == "error"
                                             and m["from"].bare == f"quinn@{Q}", timeout=20)
            assert bounce["error"]["condition"] == "remote-server-not-found"
        quinn.send_message(mto=f"u1@{C}", mbody="from quinn", mtype="chat")
        await settle(2)
        assert not quinn_msgs.matching(body_is("from node 1"))
        assert not users[0][1].matching(body_is("from quinn"))
        await close(pat, quinn, *(client for client, _, _ in users))

    asyncio.run(scenario())
    peer_log = world.peer.log()
    assert peer_log.count(f"incoming s2s from {C} authenticated for {P} by dialback") == 3
    # every key was checked by n1, the first in DNS, whichever node had made it
    assert n1.log().count(f"dialback key of {C} checked for {P}: valid") == 3, n1.log()
    for node in (n2, n3):
        assert f"outgoing s2s to {P} from {C} authenticated by dialback" in node.log()
        assert "dialback key of" not in node.log()
    for node in world.nodes:
        assert f"s2s outgoing {Q} (127.0.0.1:{world.peer.s2s_port}) refused: certificate " \
               "required" in node.log(), node.log()
    assert ("refused: dialback refused: valid certificate required (policy trusted; dialback "
            "alone is not enough)") in n1.log()


def inbox_length(redis, node: str) -> int:
    return redis.command("XLEN", f"xmppd:inbox:{node}")


def offline_bodies(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        [(count,)] = connection.execute("SELECT COUNT(*) FROM offline_messages").fetchall()
    return count


def test_a_killed_node_loses_none_of_the_messages_waiting_for_its_users(world):
    n1, n2, n3 = world.nodes
    redis = world.redis

    async def before():
        alice, alice_msgs, _ = await login(n1, f"alice@{C}/phone")
        desk, _, _ = await login(n2, f"bob@{C}/desk", priority=10)
        laptop, laptop_msgs, _ = await login(n3, f"bob@{C}/laptop", priority=1)
        carol, _, _ = await login(n2, f"carol@{C}/home")
        pat, _, _ = await login(world.peer, f"pat@{P}/home")
        await registered(redis, ("n1", f"alice@{C}/phone"), ("n2", f"bob@{C}/desk"),
                         ("n3", f"bob@{C}/laptop"), ("n2", f"carol@{C}/home"))
        pat.send_message(mto=f"alice@{C}/phone", mbody="link up", mtype="chat")
        await alice_msgs.wait_for(body_is("link up"), timeout=20)
        # n2 freezes: it reads nothing more, its heartbeat key lives on for a while
        os.kill(n2.process.pid, signal.SIGSTOP)
        for i in range(4):
            alice.send_message(mto=f"bob@{C}/desk", mbody=f"desk {i}", mtype="chat")
            alice.send_message(mto=f"bob@{C}", mbody=f"bare {i}", mtype="chat")
            alice.send_message(mto=f"carol@{C}", mbody=f"carol {i}", mtype="chat")
            pat.send_message(mto=f"carol@{C}/home", mbody=f"pat {i}", mtype="chat")
        # accepted by n1 and put in n2's inbox (the peer's link is on n1)
        await wait_until(lambda: inbox_length(redis, "n2") == 16, timeout=EXPIRY - 1)
        return alice, laptop, laptop_msgs, pat

    alice, laptop, laptop_msgs, pat = None, None, None, None

    async def scenario():
        nonlocal alice, laptop, laptop_msgs, pat
        alice, laptop, laptop_msgs, pat = await before()
        n2.stop(signal.SIGKILL)
        killed = time.monotonic()
        while registry(redis, "n2") or "n2" in redis.command("SMEMBERS", "xmppd:nodes"):
            # at most one heartbeat after its key expired
            assert time.monotonic() - killed < EXPIRY + 2 * HEARTBEAT + 1.0
            await asyncio.sleep(0.05)
        # a live node took n2's inbox over: bob's messages went to his laptop on n3...
        for i in range(4):
            await laptop_msgs.wait_for(body_is(f"desk {i}"), timeout=20)
            await laptop_msgs.wait_for(body_is(f"bare {i}"), timeout=20)
        await wait_until(lambda: redis.command("EXISTS", "xmppd:inbox:n2") == 0)
        # ...carol's, with no resource left, to offline storage
        assert offline_bodies(world.dsn) == 8
        # her client reconnects to another node and gets them
        carol, carol_msgs, _ = await login(n3, f"carol@{C}/home")
        for i in range(4):
            await carol_msgs.wait_for(body_is(f"carol {i}"), timeout=20)
            await carol_msgs.wait_for(body_is(f"pat {i}"), timeout=20)
        # bob's desk reconnects to n1, and chats
        desk, desk_msgs, _ = await login(n1, f"bob@{C}/desk", priority=10)
        await registered(redis, ("n1", f"bob@{C}/desk"))
        pat.send_message(mto=f"bob@{C}", mbody="welcome back", mtype="chat")
        await desk_msgs.wait_for(body_is("welcome back"), timeout=20)
        await close(alice, laptop, pat, carol, desk)

    asyncio.run(scenario())
    rescuers = [node for node in (n1, n3) if "cluster node n2 is gone: 16 stanzas" in node.log()]
    assert len(rescuers) == 1, (n1.log(), n3.log())


def test_messages_sent_while_the_redis_connections_are_cut_all_arrive(world):
    n1, n2, _ = world.nodes
    redis = world.redis
    count = 200

    async def scenario():
        alice, _, _ = await login(n1, f"alice@{C}/phone")
        bob, bob_msgs, _ = await login(n2, f"bob@{C}/desk")
        await registered(redis, ("n1", f"alice@{C}/phone"), ("n2", f"bob@{C}/desk"))
        for i in range(count):
            alice.send_message(mto=f"bob@{C}/desk", mbody=f"m{i}", mtype="chat")
            if i % 40 == 20:  # every node's connections, the inbox readers' included
                await asyncio.sleep(0.01)
                redis.command("CLIENT", "KILL", "TYPE", "normal")
                redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        await wait_until(lambda: {m["body"] for m in bob_msgs.items} >= {
            f"m{i}" for i in range(count)} or offline_bodies(world.dsn), timeout=60)
        bodies = {m["body"] for m in bob_msgs.items}
        assert offline_bodies(world.dsn) == 0  # all of them live, none kept offline
        assert bodies >= {f"m{i}" for i in range(count)}
        await close(alice, bob)

    asyncio.run(scenario())
    assert "Redis connection lost" in n1.log() + n2.log()
