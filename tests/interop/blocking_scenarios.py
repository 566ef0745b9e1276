"""Blocking (XEP-0191) across federation, as alice on xmppd and bob on a real peer server
(Prosody, ejabberd) live it: subscribed to each other, alice blocks bob. Bob is sent alice's
unavailable presence, his messages bounce with service-unavailable and reach no resource of
alice's, hers to him bounce with not-acceptable and <blocked/>, and her later presence
changes do not reach him. Unblocked, they see each other again and chat.
"""

from __future__ import annotations

import asyncio

from tests.integration.serverproc import XmppdProcess
from tests.integration.test_im import Inbox
from tests.integration.test_muc import connect
from tests.interop.muc_scenarios import WAIT, Peer, body_is, close
from tests.interop.scenarios import presence, wait_until

QUIET = 2.0  # seconds in which nothing may arrive


async def befriend(alice, alice_presences: Inbox, bob, bob_presences: Inbox) -> None:
    """Subscriptions both ways (slixmpp authorizes and asks back), each seeing the other;
    both fetch their rosters first, which makes them interested resources (RFC 6121)."""
    ours, theirs = alice.boundjid.bare, bob.boundjid.bare
    for client in (alice, bob):
        await client.get_roster(timeout=WAIT)
        client.send_presence()
    alice.send_presence_subscription(pto=theirs)
    await wait_until(lambda: alice.client_roster[theirs]["subscription"] == "both"
                     and bob.client_roster[ours]["subscription"] == "both")
    await alice_presences.wait_for(presence("available", theirs), WAIT)
    await bob_presences.wait_for(presence("available", ours), WAIT)


def a_blocked_remote_contact(xmppd: XmppdProcess, peer: Peer) -> None:
    async def scenario() -> None:
        alice = await connect(xmppd, f"alice@{xmppd.domain}/home")
        alice.register_plugin("xep_0191")
        bob = await peer("bob")
        ours, theirs = f"alice@{xmppd.domain}", bob.boundjid.bare
        try:
            alice_messages, alice_presences = Inbox(alice, "message"), Inbox(alice, "presence")
            bob_messages, bob_presences = Inbox(bob, "message"), Inbox(bob, "presence")
            bob_errors = Inbox(bob, "message_error")
            alice_errors = Inbox(alice, "message_error")
            await befriend(alice, alice_presences, bob, bob_presences)

            await alice.plugin["xep_0191"].block(theirs, timeout=WAIT)
            await bob_presences.wait_for(presence("unavailable", f"{ours}/home"), WAIT)

            bob.send_message(mto=ours, mbody="can you hear me?", mtype="chat")
            bounced = await bob_errors.wait_for(lambda m: True, WAIT)
            assert bounced["error"]["condition"] == "service-unavailable"
            alice.send_message(mto=theirs, mbody="not to bob", mtype="chat")
            refused = await alice_errors.wait_for(lambda m: True, WAIT)
            assert refused["error"]["condition"] == "not-acceptable"
            assert refused.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None

            seen = len(bob_presences.items)
            alice.send_presence(pshow="away", pstatus="blocked you")
            await asyncio.sleep(QUIET)
            leaked = [p for p in bob_presences.items[seen:] if p["from"].bare == ours]
            assert not leaked, [str(p) for p in leaked]
            assert not alice_messages.matching(body_is("can you hear me?"))
            assert not bob_messages.matching(body_is("not to bob"))

            await alice.plugin["xep_0191"].unblock(theirs, timeout=WAIT)
            await bob_presences.wait_for(
                lambda p: p["from"].full == f"{ours}/home" and p["show"] == "away", WAIT)
            bob.send_message(mto=ours, mbody="back again", mtype="chat")
            await alice_messages.wait_for(body_is("back again"), WAIT)
        finally:
            await close(alice, bob)

    asyncio.run(scenario())
