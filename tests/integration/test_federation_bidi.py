"""Bidirectional s2s streams (XEP-0288) between two real xmppd processes on loopback.

Set up as in test_federation (each server with its own domain, certificate, static route to
the other). alice@a.example subscribes first, so server A connects to B; with bidi on both
sides (the default) B answers on that same connection and never connects to A. That is seen
three ways: `xmppdctl s2s` on each server lists one link per direction sharing one peer
address; the kernel's table of TCP sockets (/proc/net/tcp) shows one established connection
to B's s2s port and none to A's; and B's log has no outgoing stream of its own. With bidi off
on one side, the same conversation takes one connection each way, as before.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_federation import A, B, chat_across, close, pair
from tests.integration.test_im import Inbox

pytestmark = pytest.mark.integration

ESTABLISHED = "01"  # the st column of /proc/net/tcp


@pytest.fixture
def federate(tmp_path):
    """``federate(...)`` starts A and B (test_federation.pair); ``bidi_b=False`` turns
    XEP-0288 off on B. Both must stop cleanly, without a traceback."""
    started: list[XmppdProcess] = []

    def start(policy: str = "secure", cert_kind: str = "good", bidi_b: bool = True):
        a, b = pair(tmp_path, policy, policy, cert_kind)
        if not bidi_b:
            b.config.write_text(b.config.read_text().replace("[s2s]\n", "[s2s]\nbidi = false\n",
                                                             1))
        assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
        assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
        for proc in (a, b):
            proc.start()
            started.append(proc)
        return a, b

    yield start
    for proc in started:
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


def s2s_rows(proc: XmppdProcess) -> list[dict]:
    """`xmppdctl s2s` on the running server, its table read back into dicts."""
    result = proc.ctl("s2s")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if not lines:
        return []
    header = [name.lower() for name in lines[0].split()]
    return [dict(zip(header, line.split(), strict=True)) for line in lines[1:]]


async def rows_when(proc: XmppdProcess, check, timeout: float = 10.0) -> list[dict]:
    """Poll `xmppdctl s2s` (off the clients' event loop) until ``check(rows)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await asyncio.to_thread(s2s_rows, proc)
        if check(rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


def established_to(port: int) -> int:
    """How many established TCP connections were accepted on local ``port``: the sockets
    whose local end is that port (on loopback the client ends are listed too, with an
    ephemeral local port, so each connection counts once)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == ESTABLISHED:
                count += 1
    return count


def two_way(rows: list[dict], remote: str) -> bool:
    return sorted(row["direction"] for row in rows if row["remote"] == remote) == [
        "incoming", "outgoing"]


def test_one_connection_carries_both_directions(federate):
    a, b = federate("secure")

    async def scenario():
        alice, bob = await chat_across(a, b)  # both ways: subscriptions, presence, chat
        rows_a = await rows_when(a, lambda rows: two_way(rows, B))
        rows_b = await rows_when(b, lambda rows: two_way(rows, A))
        await close(alice, bob)
        return rows_a, rows_b

    rows_a, rows_b = asyncio.run(scenario())
    # A: both directions on the connection it opened to B's s2s port
    assert {(r["local"], r["remote"], r["auth"], r["tls"]) for r in rows_a} == {
        (A, B, "certificate", "yes")}
    assert {r["peer"] for r in rows_a} == {f"127.0.0.1:{b.s2s_port}"}
    # B: both directions on the connection that came from A (A's ephemeral port)
    assert {(r["local"], r["remote"], r["auth"]) for r in rows_b} == {(B, A, "certificate")}
    (peer_b,) = {r["peer"] for r in rows_b}
    assert peer_b != f"127.0.0.1:{a.s2s_port}"
    assert (established_to(b.s2s_port), established_to(a.s2s_port)) == (1, 0)
    log_a, log_b = a.log(), b.log()
    assert f"outgoing s2s to {B} from {A} is bidirectional" in log_a
    assert (f"s2s to {A} from {B} may go out on the bidirectional stream from {A} "
            f"({peer_b})") in log_b
    assert f"outgoing s2s to {A} from {B} authenticated" not in log_b
    assert f"incoming s2s from {B}" not in log_a


def test_dialback_over_one_connection(federate):
    """Self-signed certificates: A proves itself by dialback (B checks the key over a
    connection of its own to A, which then closes) and B is taken on that same proof."""
    a, b = federate("secure", cert_kind="self_signed")

    async def scenario():
        clients = await chat_across(a, b)
        rows_a = await rows_when(a, lambda rows: two_way(rows, B))
        await close(*clients)
        return rows_a

    rows_a = asyncio.run(scenario())
    assert {(r["direction"], r["auth"], r["peer"]) for r in rows_a} == {
        ("outgoing", "dialback", f"127.0.0.1:{b.s2s_port}"),
        ("incoming", "dialback", f"127.0.0.1:{b.s2s_port}")}
    log_b = b.log()
    assert f"incoming s2s from {A} authenticated for {B} by dialback" in log_b
    assert f"outgoing s2s to {A} from {B} authenticated" not in log_b


def test_closing_the_stream_takes_both_directions_down_and_it_comes_back(federate):
    a, b = federate("secure")

    async def scenario():
        alice, bob = await chat_across(a, b)
        alice_pres, bob_pres = Inbox(alice, "presence"), Inbox(bob, "presence")
        bob_msgs = Inbox(bob, "message")
        await rows_when(a, lambda rows: two_way(rows, B))
        closed = await asyncio.to_thread(a.ctl, "s2s-close", B)
        assert closed.stdout.strip() == f"closed 2 s2s streams with {B}", closed
        # each side saw the link go down: the other's user is unavailable to its own
        await alice_pres.wait_for(lambda p: p["type"] == "unavailable"
                                  and str(p["from"]) == f"bob@{B}/work", timeout=10)
        await bob_pres.wait_for(lambda p: p["type"] == "unavailable"
                                and str(p["from"]) == f"alice@{A}/home", timeout=10)
        assert await rows_when(a, lambda rows: not rows) == []
        assert await rows_when(b, lambda rows: not rows) == []

        alice_pres.items.clear()
        bob_pres.items.clear()
        alice.send_message(mto=f"bob@{B}", mbody="after the close", mtype="chat")
        await bob_msgs.wait_for(lambda m: m["body"] == "after the close", timeout=20)
        # both re-probe when the link is back, and the answers come over the one connection
        await alice_pres.wait_for(lambda p: p["type"] == "available"
                                  and str(p["from"]) == f"bob@{B}/work", timeout=20)
        await bob_pres.wait_for(lambda p: p["type"] == "available"
                                and str(p["from"]) == f"alice@{A}/home", timeout=20)
        rows_b = await rows_when(b, lambda rows: two_way(rows, A))
        await close(alice, bob)
        return rows_b

    rows_b = asyncio.run(scenario())
    assert two_way(rows_b, A)
    assert (established_to(b.s2s_port), established_to(a.s2s_port)) == (1, 0)
    assert a.log().count(f"outgoing s2s to {B} from {A} is bidirectional") == 2
    assert f"outgoing s2s to {A} from {B} authenticated" not in b.log()


def test_without_bidi_on_one_side_each_direction_has_its_connection(federate):
    a, b = federate("secure", bidi_b=False)

    async def scenario():
        clients = await chat_across(a, b)
        rows_a = await rows_when(a, lambda rows: len(rows) == 2)
        await close(*clients)
        return rows_a

    rows_a = asyncio.run(scenario())
    peers = {r["direction"]: r["peer"] for r in rows_a}
    assert peers["outgoing"] == f"127.0.0.1:{b.s2s_port}"
    assert peers["incoming"] != peers["outgoing"]
    assert (established_to(b.s2s_port), established_to(a.s2s_port)) == (1, 1)
    assert f"outgoing s2s to {A} from {B} authenticated by certificate" in b.log()
    assert "bidirectional" not in a.log() + b.log()
