"""What users on xmppd and on a real peer server (Prosody, ejabberd) do in the interop tests.

A ``User`` is someone on one of the two servers: how to get them online (a coroutine giving
a logged-in slixmpp client with its message and presence inboxes, roster fetched and initial
presence sent), and their JIDs. ``subscribe_and_chat`` is the full round trip between two of
them: subscriptions both ways, presence both ways, chat both ways, and a ping of each other's
server, so every kind of stanza crosses in each direction. ``message_bounces`` is the refusal
seen by a user: the error that comes back for a message, and how soon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.integration.test_federation import close
from tests.integration.test_im import Inbox

WAIT = 15.0  # seconds for any one thing to arrive


@dataclass(frozen=True)
class User:
    """A user on one side: ``online()`` gives (client, messages, presences)."""

    online: Callable[[], Awaitable[tuple]]
    full: str  # the JID with the resource online() binds

    @property
    def bare(self) -> str:
        return self.full.split("/", 1)[0]

    @property
    def server(self) -> str:
        return self.bare.split("@", 1)[1]


async def peer_online(login, server, user: str, resource: str):
    """(client, messages, presences) for a user of a peer server's harness ``login``:
    inboxes attached before the roster and initial presence, so nothing is missed."""
    client = await login(server, user, resource=resource, available=False)
    messages, presences = Inbox(client, "message"), Inbox(client, "presence")
    await client.get_roster()
    client.send_presence()
    return client, messages, presences


def presence(kind: str, sender: str):
    """Matches a presence of type ``kind`` from ``sender`` (a full JID, or a bare one)."""
    def match(stanza) -> bool:
        came_from = str(stanza["from"]) if "/" in sender else stanza["from"].bare
        return stanza["type"] == kind and came_from == sender
    return match


def body(text: str):
    return lambda message: message["body"] == text


def subscribe_and_chat(ours: User, theirs: User, theirs_first: bool = False) -> None:
    """``ours`` (on xmppd) and ``theirs`` (on the peer) subscribe to each other, see each
    other online, chat both ways, and ping each other's server. ``ours`` asks first (so
    xmppd connects first) unless ``theirs_first``."""

    async def scenario():
        alice, alice_msgs, alice_pres = await ours.online()
        bob = None
        try:
            bob, bob_msgs, bob_pres = await theirs.online()
            first, second = (theirs, ours) if theirs_first else (ours, theirs)
            first_client = bob if theirs_first else alice
            first_pres, second_pres = ((bob_pres, alice_pres) if theirs_first
                                       else (alice_pres, bob_pres))
            first_client.send_presence_subscription(pto=second.bare)
            await second_pres.wait_for(presence("subscribe", first.bare), WAIT)
            await first_pres.wait_for(presence("subscribed", second.bare), WAIT)
            # slixmpp auto-authorizes and asks back
            await first_pres.wait_for(presence("subscribe", second.bare), WAIT)
            await second_pres.wait_for(presence("subscribed", first.bare), WAIT)
            await alice_pres.wait_for(presence("available", theirs.full), WAIT)
            await bob_pres.wait_for(presence("available", ours.full), WAIT)

            alice.send_message(mto=theirs.bare, mbody=f"hello {theirs.server}", mtype="chat")
            message = await bob_msgs.wait_for(body(f"hello {theirs.server}"), WAIT)
            assert (message["type"], str(message["from"])) == ("chat", ours.full)
            bob.send_message(mto=ours.full, mbody=f"hello {ours.server}", mtype="chat")
            message = await alice_msgs.wait_for(body(f"hello {ours.server}"), WAIT)
            assert (message["type"], str(message["from"])) == ("chat", theirs.full)

            await wait_until(lambda: alice.client_roster[theirs.bare]["subscription"] == "both"
                             and bob.client_roster[ours.bare]["subscription"] == "both")
            # IQs cross too, and their results find their way back: each pings the other server
            assert await alice.plugin["xep_0199"].ping(jid=theirs.server, timeout=WAIT) >= 0
            assert await bob.plugin["xep_0199"].ping(jid=ours.server, timeout=WAIT) >= 0
        finally:
            await close(*(client for client in (alice, bob) if client is not None))

    asyncio.run(scenario())


def message_bounces(online: Callable[[], Awaitable[tuple]], recipient: str) -> dict:
    """The user ``online()`` logs in sends ``recipient`` a chat message; returns the error
    that came back (condition, text) and how many seconds it took."""

    async def scenario():
        client, _messages, _presences = await online()
        errors = Inbox(client, "message_error")  # a bounce may come without the body
        try:
            started = time.monotonic()
            client.send_message(mto=recipient, mbody="must not arrive", mtype="chat")
            error = await errors.wait_for(lambda m: True, WAIT)
            return {"condition": error["error"]["condition"], "text": error["error"]["text"],
                    "seconds": time.monotonic() - started}
        finally:
            await close(client)

    return asyncio.run(scenario())


async def wait_until(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
