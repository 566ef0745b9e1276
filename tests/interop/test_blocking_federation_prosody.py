"""Blocking (XEP-0191) across federation with a real Prosody 0.12: alice on xmppd and bob on
Prosody are subscribed to each other; alice blocks bob. Bob is sent alice's unavailable
presence, his messages bounce with service-unavailable and reach no resource of alice's, hers
to him bounce with not-acceptable and <blocked/>, and her later presence changes do not reach
him. Unblocked, they see each other again and chat. The servers (twice: certificates and
dialback) are those of tests/interop/test_muc_federation_prosody.py.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.test_im import Inbox
from tests.integration.test_muc import connect
from tests.interop.muc_scenarios import WAIT, body_is, close, peer_client
from tests.interop.prosody import SKIP_REASON, available, login
from tests.interop.scenarios import presence, wait_until
from tests.interop.test_muc_federation_prosody import PROSODY, XMPPD, servers  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]

ALICE, BOB = f"alice@{XMPPD}", f"bob@{PROSODY}"
QUIET = 2.0  # seconds in which nothing may arrive


async def befriend(alice, alice_presences: Inbox, bob, bob_presences: Inbox) -> None:
    """Subscriptions both ways (slixmpp authorizes and asks back), each seeing the other;
    both fetch their rosters first, which makes them interested resources (RFC 6121)."""
    for client in (alice, bob):
        await client.get_roster(timeout=WAIT)
        client.send_presence()
    alice.send_presence_subscription(pto=BOB)
    await wait_until(lambda: alice.client_roster[BOB]["subscription"] == "both"
                     and bob.client_roster[ALICE]["subscription"] == "both")
    await alice_presences.wait_for(presence("available", BOB), WAIT)
    await bob_presences.wait_for(presence("available", ALICE), WAIT)


def test_a_blocked_remote_contact(servers):  # noqa: F811
    xmppd, prosody = servers

    async def scenario() -> None:
        alice = await connect(xmppd, f"{ALICE}/home")
        alice.register_plugin("xep_0191")
        bob = await peer_client(login, prosody, "bob")
        try:
            alice_messages, alice_presences = Inbox(alice, "message"), Inbox(alice, "presence")
            bob_messages, bob_presences = Inbox(bob, "message"), Inbox(bob, "presence")
            bob_errors = Inbox(bob, "message_error")
            alice_errors = Inbox(alice, "message_error")
            await befriend(alice, alice_presences, bob, bob_presences)

            await alice.plugin["xep_0191"].block(BOB, timeout=WAIT)
            await bob_presences.wait_for(presence("unavailable", f"{ALICE}/home"), WAIT)

            bob.send_message(mto=ALICE, mbody="can you hear me?", mtype="chat")
            bounced = await bob_errors.wait_for(lambda m: True, WAIT)
            assert bounced["error"]["condition"] == "service-unavailable"
            alice.send_message(mto=BOB, mbody="not to bob", mtype="chat")
            refused = await alice_errors.wait_for(lambda m: True, WAIT)
            assert refused["error"]["condition"] == "not-acceptable"
            assert refused.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None

            seen = len(bob_presences.items)
            alice.send_presence(pshow="away", pstatus="blocked you")
            await asyncio.sleep(QUIET)
            leaked = [p for p in bob_presences.items[seen:] if p["from"].bare == ALICE]
            assert not leaked, [str(p) for p in leaked]
            assert not alice_messages.matching(body_is("can you hear me?"))
            assert not bob_messages.matching(body_is("not to bob"))

            await alice.plugin["xep_0191"].unblock(BOB, timeout=WAIT)
            await bob_presences.wait_for(
                lambda p: p["from"].full == f"{ALICE}/home" and p["show"] == "away", WAIT)
            bob.send_message(mto=ALICE, mbody="back again", mtype="chat")
            await alice_messages.wait_for(body_is("back again"), WAIT)
        finally:
            await close(alice, bob)

    asyncio.run(scenario())
    assert prosody.errors() == []
