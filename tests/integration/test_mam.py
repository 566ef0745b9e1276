"""XEP-0313 over real TLS with slixmpp's own xep_0313 plugin: two users exchange several
hundred messages, one pages through its archive forwards and backwards and gets the same ids
both ways (the ids its messages arrived with); a forged stanza-id from a client is stripped;
the archive survives a restart."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.integration.conftest import login, logout, serve
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "version", "roster", "presence", "offline",'
           ' "mam"]\n')
SID = "{urn:xmpp:sid:0}stanza-id"
EACH_WAY = 150


def running(tmp_path, extra: str = ""):
    yield from serve(XmppdProcess(tmp_path, extra=PLUGINS + extra))


@pytest.fixture
def archive(tmp_path):
    yield from running(tmp_path)


@pytest.fixture
def slow_archive(tmp_path):
    """Batches wait ten seconds: only what the server does before an answer commits them."""
    yield from running(tmp_path, "[plugins.mam]\nbatch_ms = 10000\n")


async def connect(proc, jid: str):
    client = await login(proc, jid)
    client.register_plugin("xep_0313")
    messages = Inbox(client, "message")
    client.send_presence()
    return client, messages


def stanza_ids(message) -> list[tuple[str, str]]:
    return [(each.get("by"), each.get("id")) for each in message.xml.findall(SID)]


def chats(inbox: Inbox) -> list:
    return inbox.matching(lambda message: message["body"])


async def archive_ids(client, reverse: bool) -> list[str]:
    """Every id of the client's archive, paged 40 at a time (RSM), in archive order."""
    ids = [str(message["mam_result"]["id"]) async for message in
           client.plugin["xep_0313"].iterate(rsm={"max": 40}, reverse=reverse)]
    return list(reversed(ids)) if reverse else ids


def test_hundreds_of_messages_paged_both_ways_forged_id_stripped_after_restart(archive):
    async def first_run() -> list[str]:
        alice, _alice_inbox = await connect(archive, "alice@localhost/phone")
        bob, bob_inbox = await connect(archive, "bob@localhost/desk")
        for number in range(EACH_WAY):
            alice.send_message(mto="bob@localhost", mbody=f"a{number}", mtype="chat")
            bob.send_message(mto="alice@localhost", mbody=f"b{number}", mtype="chat")
        await bob_inbox.wait_for(lambda message: message["body"] == f"a{EACH_WAY - 1}", 30)
        received = chats(bob_inbox)
        assert [message["body"] for message in received] == [f"a{n}" for n in range(EACH_WAY)]
        arrived_with = []
        for message in received:
            ((by, id),) = stanza_ids(message)
            assert by == "bob@localhost"
            arrived_with.append(id)

        forwards = await archive_ids(bob, reverse=False)
        backwards = await archive_ids(bob, reverse=True)
        assert len(forwards) == 2 * EACH_WAY
        assert forwards == backwards
        assert [id for id in forwards if id in set(arrived_with)] == arrived_with

        # A client cannot forge the id the recipient's archive gives.
        forged = alice.make_message(mto="bob@localhost", mbody="forged", mtype="chat")
        forged.xml.append(_stanza_id("bob@localhost", "not-yours"))
        forged.xml.append(_stanza_id("localhost", "nor-ours"))
        forged.send()
        message = await bob_inbox.wait_for(lambda message: message["body"] == "forged")
        ((by, id),) = stanza_ids(message)
        assert by == "bob@localhost" and id not in ("not-yours", "nor-ours")
        last = [message async for message in bob.plugin["xep_0313"].iterate(
            rsm={"max": 1}, reverse=True, total=1)]
        assert str(last[0]["mam_result"]["id"]) == id
        assert last[0]["mam_result"]["forwarded"]["stanza"]["body"] == "forged"
        await logout(alice)
        await logout(bob)
        return forwards + [id]

    async def after_restart(before: list[str]) -> None:
        bob, _ = await connect(archive, "bob@localhost/desk")
        assert await archive_ids(bob, reverse=False) == before
        await logout(bob)

    kept = asyncio.run(first_run())
    assert archive.stop() == 0, archive.log()
    archive.start()
    asyncio.run(after_restart(kept))


def _stanza_id(by: str, id: str):
    from xml.etree import ElementTree

    element = ElementTree.Element(SID)
    element.set("by", by)
    element.set("id", id)
    return element


def test_a_ping_reply_proves_the_archive_copies_on_disk(slow_archive):
    """The README's promise with batched archive writes: alice's ping is answered only once
    the archive entries of her earlier messages (hers and bob's, bob offline) are committed;
    a SIGKILL right after loses none of them."""
    count = 40

    async def send() -> None:
        alice, _ = await connect(slow_archive, "alice@localhost/phone")
        for number in range(count):
            alice.send_message(mto="bob@localhost", mbody=f"durable {number}", mtype="chat")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=10)
        slow_archive.stop(signal.SIGKILL)

    async def read() -> None:
        for user in ("alice", "bob"):
            client, _ = await connect(slow_archive, f"{user}@localhost/desk")
            bodies = [str(message["mam_result"]["forwarded"]["stanza"]["body"]) async for
                      message in client.plugin["xep_0313"].iterate(rsm={"max": 25})]
            assert bodies == [f"durable {number}" for number in range(count)], user
            await logout(client)

    asyncio.run(send())
    slow_archive.start()
    asyncio.run(read())
