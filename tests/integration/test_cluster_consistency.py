"""What one account's clients on two real xmppd nodes (twistd, one PostgreSQL, one real Redis)
must see the same whichever node acts:

- deleting the account (``xmppdctl deluser`` on one node, XEP-0077 cancel from a client on
  the other) ends its sessions on every node with ``<not-authorized/>``, as on one node;
- roster writes of one account racing from two nodes are serialized: nothing is lost, and
  every resource sees the pushes in version order (RFC 6121 §2.6);
- a PEP item published while Redis is down reaches the other node's subscribers once it is
  back."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import login
from tests.integration.test_cluster import registry, wait_until
from tests.integration.test_cluster_roster import HEARTBEAT, befriend, run, running_cluster
from tests.integration.test_im import Inbox
from tests.integration.test_pep import PLUGINS, connect, metadata_id, publish_avatar

WITH_REGISTER = PLUGINS.replace('"pep"]', '"pep", "register"]')


@pytest.fixture
def cluster(tmp_path):
    """Redis, PostgreSQL and two nodes a, b with alice, bob and carol."""
    with running_cluster(tmp_path, ("a", "b"), WITH_REGISTER) as (redis, nodes):
        yield redis, nodes["a"], nodes["b"]


def ended_with(client) -> asyncio.Future:
    """The condition of the stream error that ends ``client``'s stream (None: closed without
    one)."""
    ended = asyncio.get_running_loop().create_future()
    client.add_event_handler("stream_error", lambda error: ended.done()
                             or ended.set_result(error["condition"]))
    client.add_event_handler("disconnected", lambda *_: ended.done() or ended.set_result(None))
    return ended


# -- deleting an account


def test_deluser_on_one_node_ends_the_sessions_on_every_node(cluster):
    redis, a, b = cluster

    async def scenario():
        phone = await login(a, "alice@localhost/phone")
        desk = await login(b, "alice@localhost/desk")
        bob = await login(b, "bob@localhost/pc")
        ends = {client: ended_with(client) for client in (phone, desk, bob)}
        await wait_until(lambda: "alice@localhost/phone" in registry(redis, "a")
                         and "alice@localhost/desk" in registry(redis, "b"))
        deleted = a.ctl("deluser", "alice@localhost")
        assert deleted.returncode == 0, deleted.stderr
        for client in (phone, desk):  # node b's session too, as node a's
            assert await asyncio.wait_for(ends[client], 10) == "not-authorized"
        await wait_until(lambda: not registry(redis, "b").keys() - {"bob@localhost/pc"})
        assert not ends[bob].done()  # another account's session stays
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        bob.disconnect()
        await wait_until(lambda: "account alice@localhost deleted on node a: 1 sessions "
                                 "ended here" in b.log())

    run(scenario)


def test_in_band_removal_on_one_node_ends_the_sessions_on_the_other(cluster):
    redis, a, b = cluster

    async def scenario():
        phone = await login(a, "carol@localhost/phone")
        desk = await login(b, "carol@localhost/desk")
        desk_end, phone_end = ended_with(desk), ended_with(phone)
        await wait_until(lambda: "carol@localhost/phone" in registry(redis, "a")
                         and "carol@localhost/desk" in registry(redis, "b"))
        desk.register_plugin("xep_0077")
        await desk.plugin["xep_0077"].cancel_registration()  # XEP-0077 §3.2, on node b
        assert await asyncio.wait_for(phone_end, 10) == "not-authorized"  # on node a
        await asyncio.wait_for(desk_end, 10)
        await wait_until(lambda: not registry(redis, "a") and not registry(redis, "b"))

    run(scenario)
    assert "carol@localhost" not in a.ctl("users").stdout


def test_a_deletion_while_the_subscriptions_are_cut_reaches_the_other_node_after(cluster):
    redis, a, b = cluster

    async def scenario():
        desk = await login(b, "bob@localhost/desk")
        ended = ended_with(desk)
        await wait_until(lambda: "bob@localhost/desk" in registry(redis, "b"))
        deleting = asyncio.create_task(asyncio.to_thread(a.ctl, "deluser", "bob@localhost"))
        while not deleting.done():  # nobody listens until the deletion is done
            redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            await asyncio.sleep(0.05)
        deleted = await deleting
        assert deleted.returncode == 0, deleted.stderr
        # heard at a try made in a moment the subscription was back, or once it stays back
        assert await asyncio.wait_for(ended, 30) == "not-authorized"
        # the node logs it once the sessions are told (the line may trail the stream error)
        await wait_until(lambda: "account bob@localhost deleted on node a: 1 sessions ended "
                                 "here" in b.log())

    run(scenario)


# -- one account's roster written from two nodes at once


def roster_set(client, contact: str, name: str):
    iq = client.Iq(stype="set")
    iq["roster"]["items"] = {contact: {"name": name, "groups": ["race"]}}
    return iq.send(timeout=30)


def pushed_versions(inbox: Inbox) -> list[tuple[int, str, str]]:
    """(version, contact, name) of each roster push the client got, in arrival order."""
    seen = []
    for iq in inbox.items:
        if iq["type"] == "set":
            for contact, item in iq["roster"]["items"].items():
                seen.append((int(iq["roster"]["ver"]), str(contact), item["name"]))
    return seen


def test_roster_writes_racing_from_two_nodes_are_serialized(cluster):
    """alice's phone on node a and desk on node b each add 25 contacts at once: every write
    lands, each gets its own version, and each resource gets every push in version order
    (RFC 6121 §2.6: a client that keeps the last version must never see an older one
    after a newer); both nodes then answer a roster get with all of them."""
    redis, a, b = cluster
    count = 25

    async def scenario():
        phone = await login(a, "alice@localhost/phone")
        desk = await login(b, "alice@localhost/desk")
        inboxes = {phone: Inbox(phone, "roster_update"), desk: Inbox(desk, "roster_update")}
        for client in (phone, desk):
            await client.get_roster()
        await wait_until(lambda: "alice@localhost/phone" in registry(redis, "a")
                         and "alice@localhost/desk" in registry(redis, "b"))
        await asyncio.gather(*(roster_set(client, f"{who}{i}@example.org", f"{who} {i}")
                               for i in range(count)
                               for client, who in ((phone, "p"), (desk, "d"))))
        for inbox in inboxes.values():
            await wait_until(lambda inbox=inbox: len(pushed_versions(inbox)) >= 2 * count)
        expected = {f"{who}{i}@example.org": f"{who} {i}" for i in range(count)
                    for who in ("p", "d")}
        for client, inbox in inboxes.items():
            seen = pushed_versions(inbox)
            versions = [version for version, _, _ in seen]
            assert versions == sorted(set(versions)), (client.boundjid, versions)
            assert {contact: name for _, contact, name in seen} == expected
        for client in (phone, desk):  # what each node keeps or reads is the whole roster
            get = client.Iq(stype="get")
            get.enable("roster")  # no 'ver': the whole roster
            roster = await get.send(timeout=10)
            items = roster["roster"]["items"]
            assert {str(jid): item["name"] for jid, item in items.items()} == expected
            assert int(roster["roster"]["ver"]) == max(v for v, _, _ in
                                                       pushed_versions(inboxes[phone]))
        phone.disconnect()
        desk.disconnect()

    run(scenario)


def test_a_rename_racing_a_subscription_on_another_node_keeps_both(cluster):
    """Node a stores alice's outgoing subscription to bob (her phone's subscribe) while node
    b stores her desk's rename of bob, again and again: each item must keep both halves
    (a rename that read the item before the subscription landed would write it back
    without its 'ask')."""
    redis, a, b = cluster
    rounds = 12

    async def scenario():
        phone = await login(a, "alice@localhost/phone")
        desk = await login(b, "alice@localhost/desk")
        await wait_until(lambda: "alice@localhost/phone" in registry(redis, "a")
                         and "alice@localhost/desk" in registry(redis, "b"))
        for i in range(rounds):
            contact = f"bob{i}@example.org"
            await roster_set(desk, contact, "before")
            phone.send_presence_subscription(pto=contact)
            await roster_set(desk, contact, f"bob {i}")

        async def lost() -> list:
            """The items of either node missing a half (the subscriptions are handled
            after the renames' answers: they may still be on their way)."""
            missing = []
            for client in (phone, desk):
                get = client.Iq(stype="get")
                get.enable("roster")
                items = (await get.send(timeout=10))["roster"]["items"]
                for i in range(rounds):
                    item = items[f"bob{i}@example.org"]
                    if (item["name"], item["ask"]) != (f"bob {i}", "subscribe"):
                        missing.append((str(client.boundjid), i, item["name"], item["ask"]))
            return missing

        for _ in range(50):
            if not await lost():
                break
            await asyncio.sleep(0.2)
        assert await lost() == []
        phone.disconnect()
        desk.disconnect()

    run(scenario)


# -- PEP across a Redis outage


def test_a_pep_item_published_while_redis_is_down_reaches_the_other_node_after(cluster):
    redis, a, b = cluster

    async def scenario():
        await befriend(a)

        alice, alice_events = await connect(a, "alice@localhost/phone")
        bob, bob_events = await connect(b, "bob@localhost/desk")
        await wait_until(lambda: "alice@localhost/phone" in registry(redis, "a")
                         and "bob@localhost/desk" in registry(redis, "b"))
        await asyncio.sleep(1.0)  # the caps of each are resolved
        await publish_avatar(alice, "before")
        await bob_events.wait_for(lambda m: metadata_id(m) == "before", timeout=20)

        # the subscriptions cut (node a can still publish, nobody listens for a second)
        assert redis.command("CLIENT", "KILL", "TYPE", "pubsub") == 2
        await publish_avatar(alice, "cut")
        await bob_events.wait_for(lambda m: metadata_id(m) == "cut", timeout=30)

        # Redis itself down
        redis.stop()  # nothing saved: it comes back empty
        await publish_avatar(alice, "during")  # stored and sent on node a alone
        await alice_events.wait_for(lambda m: metadata_id(m) == "during", timeout=20)
        await asyncio.sleep(2 * HEARTBEAT)
        assert not bob_events.matching(lambda m: metadata_id(m) == "during")
        redis.start()
        await bob_events.wait_for(lambda m: metadata_id(m) == "during", timeout=30)
        await asyncio.sleep(4 * HEARTBEAT)  # tried again until both nodes heard it: once
        ids = [metadata_id(m) for m in bob_events.items]
        assert [ids.count(id) for id in ("before", "cut", "during")] == [1, 1, 1], ids
        alice.disconnect()
        bob.disconnect()

    run(scenario)
