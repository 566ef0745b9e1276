"""Abuse across federation between two real xmppd processes federating on loopback
(test_federation's pair(), CA certificates, secure policy), driven with xmppdctl and real
slixmpp clients: a blocked domain cannot exchange anything with us either way, and is again
once unblocked; strangers' first contacts are limited per domain; and a blocklist shared by a
trusted buddy (XEP-0267) as a XEP-0268 spam report is applied by the other server."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration import test_federation as federation
from tests.integration.conftest import PASSWORD
from tests.integration.test_federation import A, B, close, user

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", '
           '"server_trust", "incident", "domain_block"]\n')


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """a.example (shares its blocklist) and b.example (applies buddies' lists as 'block',
    one first-contact message per domain and hour), alice@a and bob@b; stopped after."""
    monkeypatch.setattr(federation, "PLUGINS", PLUGINS)
    a, b = federation.pair(tmp_path, "secure", "secure")
    for proc, section in ((a, "share = true\n"),
                          (b, "buddy_policy = 'block'\nstranger_messages = 1\n")):
        proc.config.write_text(proc.config.read_text() + "[plugins.domain_block]\n" + section)
    assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
    assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    a.start()
    b.start()
    yield a, b
    for proc in (a, b):
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


def ctl(proc, *args: str) -> str:
    done = proc.ctl(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


async def error_of(inbox, body: str) -> str:
    """The condition of the error bouncing the message with ``body``, read from the XML
    (slixmpp knows RFC 3920's conditions only, not policy-violation)."""
    message = await inbox.wait_for(lambda m: m["type"] == "error" and m["body"] == body,
                                   timeout=20)
    error = message.xml.find("{jabber:client}error")
    return next(child.tag.split("}")[1] for child in error
                if child.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")
                and not child.tag.endswith("}text"))


def test_a_blocked_domain_exchanges_nothing_until_unblocked(pair):
    a, b = pair
    assert "blocked: b.example" in ctl(a, "block-domain", "B.example")
    assert "b.example" in ctl(a, "blocked-domains")

    async def scenario():
        alice, alice_msgs, _ = await user(a, f"alice@{A}/home")
        bob, bob_msgs, _ = await user(b, f"bob@{B}/work")
        alice.send_message(mto=f"bob@{B}", mbody="out", mtype="chat")
        assert await error_of(alice_msgs, "out") == "not-allowed"
        bob.send_message(mto=f"alice@{A}", mbody="in", mtype="chat")
        assert await error_of(bob_msgs, "in") in ("remote-server-not-found",
                                                  "remote-server-timeout")
        assert not [m for m in alice_msgs.items if m["body"] == "in"]
        assert "b.example is blocked by the admin" in a.log()

        ctl(a, "unblock-domain", "b.example")
        alice.send_message(mto=f"bob@{B}", mbody="again", mtype="chat")
        await bob_msgs.wait_for(lambda m: m["body"] == "again", timeout=30)
        await close(alice, bob)

    asyncio.run(scenario())


def test_blocking_a_domain_closes_its_open_links(pair):
    a, b = pair

    async def scenario():
        alice, alice_msgs, _ = await user(a, f"alice@{A}/home")
        bob, bob_msgs, _ = await user(b, f"bob@{B}/work")
        alice.send_message(mto=f"bob@{B}", mbody="before", mtype="chat")
        await bob_msgs.wait_for(lambda m: m["body"] == "before", timeout=30)
        assert B in ctl(a, "s2s")
        answer = ctl(a, "block-domain", "b.example")
        closed = int(answer.split("links_closed:")[1].split()[0])
        assert closed >= 1, answer
        deadline = time.monotonic() + 10
        while B in ctl(a, "s2s") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert B not in ctl(a, "s2s")
        await close(alice, bob)

    asyncio.run(scenario())


def test_first_contacts_from_a_strangers_domain_are_limited(pair):
    a, _b = pair

    async def scenario():
        alice, alice_msgs, _ = await user(a, f"alice@{A}/home")
        bob, bob_msgs, _ = await user(_b, f"bob@{B}/work")
        alice.send_message(mto=f"bob@{B}", mbody="first", mtype="chat")
        await bob_msgs.wait_for(lambda m: m["body"] == "first", timeout=30)
        alice.send_message(mto=f"bob@{B}", mbody="second", mtype="chat")
        assert await error_of(alice_msgs, "second") == "policy-violation"
        assert not [m for m in bob_msgs.items if m["body"] == "second"]
        await close(alice, bob)

    asyncio.run(scenario())
    assert f"{A}: more than 1 first-contact messages from strangers" in _b.log()


def test_a_trusted_buddys_shared_blocklist_is_applied(pair):
    a, b = pair
    ctl(a, "trust", "request", B)
    wait_until(lambda: B in ctl(b, "trust", "pending"))
    ctl(b, "trust", "approve", A)  # grants A's request and asks back
    wait_until(lambda: B in ctl(a, "trust", "pending"))
    ctl(a, "trust", "approve", B)
    wait_until(lambda: "both" in ctl(b, "trust", "list") and "both" in ctl(a, "trust", "list"))

    assert B in ctl(a, "block-domain", "spam.example")  # shared_with: b.example
    wait_until(lambda: "spam.example" in ctl(b, "blocked-domains"))
    assert f"blocklist from trusted buddy {A}: 1 domains" in b.log()
    listing = ctl(b, "blocked-domains")
    assert "buddy_policy: block" in listing
    ctl(a, "unblock-domain", "spam.example")
    wait_until(lambda: "spam.example" not in ctl(b, "blocked-domains"))
    assert "spam.example" in ctl(b, "incident", "list")  # the report is an incident too


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.2)
