"""What the move-in tests share: data given to a real Prosody or ejabberd through the protocol
by slixmpp clients, and what a client then finds on xmppd after ``xmppdctl import``."""

from __future__ import annotations

import asyncio

VCARD_NAME = "Alice Liddell"
CONTACT_NAME = "Bobby"
GROUP = "Wonderland"


async def give_data(alice, bob_jid: str) -> None:
    """Alice (logged in to the old server) puts Bob in her roster with a name and a group,
    asks to see his presence (Bob is offline: the request waits for him) and sets her vCard."""
    roster_set = alice.update_roster(bob_jid, name=CONTACT_NAME, groups=[GROUP])
    await asyncio.wait_for(roster_set, 10)
    alice.send_presence_subscription(pto=bob_jid)
    vcard = alice.plugin["xep_0054"].make_vcard()
    vcard["FN"] = VCARD_NAME
    vcard["NICKNAME"] = "alice"
    await alice.plugin["xep_0054"].publish_vcard(vcard, timeout=10)
    await asyncio.sleep(0.5)  # the subscription request reaches the old server's storage


async def roster_of(client) -> dict:
    """The client's roster from the server: contact -> (name, groups, subscription, ask)."""
    answer = await client.get_roster(timeout=10)
    items = answer["roster"]["items"]
    return {str(jid): (item["name"], sorted(item["groups"]), item["subscription"],
                       item["ask"]) for jid, item in items.items()}


async def own_vcard(client) -> str:
    """The FN of the client's own vCard, as the server stores it."""
    answer = await client.plugin["xep_0054"].get_vcard(client.boundjid.bare, local=False,
                                                       timeout=10)
    return str(answer["vcard_temp"]["FN"])
