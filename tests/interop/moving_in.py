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


async def check_data(alice, bob_jid: str) -> None:
    """What ``give_data`` left, as Alice finds it on xmppd after the import: Bob in her roster
    with his name and group, her request still pending, and her vCard."""
    alice.register_plugin("xep_0054")
    roster = await roster_of(alice)
    assert roster == {bob_jid: (CONTACT_NAME, [GROUP], "none", "subscribe")}
    assert await own_vcard(alice) == VCARD_NAME


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


async def login_as_clients_do(proc, jid: str, password: str, timeout: float = 20.0):
    """Log in to xmppd (``proc``: tests.integration.serverproc.XmppdProcess) letting slixmpp
    choose the mechanism as it does by default, trying the next one after a failure; returns
    the client once bound and the mechanisms that failed on the way."""
    import ssl

    from slixmpp import ClientXMPP

    client = ClientXMPP(jid, password)
    client.enable_direct_tls, client.enable_plaintext = False, False
    client.ssl_context = ssl.create_default_context(cafile=str(proc.cert))
    failed: list[str] = []
    bound = asyncio.get_running_loop().create_future()
    client.add_event_handler("failed_auth", lambda _stanza: failed.append(
        client.plugin["feature_mechanisms"].mech.name))
    client.add_event_handler("session_start", lambda _event: bound.done()
                             or bound.set_result(client))
    client.add_event_handler("no_auth", lambda _event: bound.done() or bound.set_exception(
        AssertionError(f"no mechanism left after {failed}")))
    client.connect("127.0.0.1", proc.c2s_port)
    try:
        return await asyncio.wait_for(bound, timeout), failed
    except BaseException:
        client.disconnect()
        raise
