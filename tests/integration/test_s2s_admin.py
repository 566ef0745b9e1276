"""The s2s admin commands in a live manhole: two real xmppd processes federate (as in
test_federation), the operator lists server A's links, closes the one to B, and the next
message sets it up again."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.integration import test_federation as federation
from tests.integration.serverproc import free_port
from tests.integration.test_federation import (  # noqa: F401  (servers is a fixture)
    A,
    B,
    chat_across,
    close,
    servers,
)
from tests.integration.test_im import Inbox

LINKS = re.compile(r"LINKS=(\[.*?\])\r?\n")
CLOSED = re.compile(r"CLOSED=(\d+)")


@pytest.fixture
def manhole_on_a(tmp_path, monkeypatch):
    """Server A gets an SSH manhole: test_federation's pair(), which the servers fixture
    calls, is wrapped to add the [manhole] section to A's config. Yields (port, client key)."""
    asyncssh = pytest.importorskip("asyncssh")
    key = asyncssh.generate_private_key("ssh-ed25519")
    keys_file = tmp_path / "admin_keys"
    keys_file.write_text(key.export_public_key().decode())
    port = free_port()
    original_pair = federation.pair

    def pair_with_manhole(*args, **kwargs):
        a, b = original_pair(*args, **kwargs)
        a.config.write_text(a.config.read_text() + f'[manhole]\nlisten = '
                            f'"tcp:{port}:interface=127.0.0.1"\nauthorized_keys = "{keys_file}"\n')
        return a, b

    monkeypatch.setattr(federation, "pair", pair_with_manhole)
    return port, key


class Manhole:
    """One SSH session to the manhole; ``run`` evaluates a line and returns what it printed."""

    def __init__(self, process) -> None:
        self.process = process
        self.commands = 0

    async def run(self, line: str, timeout: float = 15.0) -> str:
        self.commands += 1
        # The marker only appears once evaluated: the echoed input spells it in two halves.
        marker = f"ran-{self.commands}"
        self.process.stdin.write(f"{line}\nprint('ran-' + '{self.commands}')\n")
        output = ""
        while marker not in output:
            chunk = await asyncio.wait_for(self.process.stdout.read(65536), timeout)
            if not chunk:
                raise AssertionError(f"the manhole closed; it printed:\n{output}")
            output += chunk
        return output

    async def links(self) -> list[dict]:
        output = await self.run("print('LINKS=' + __import__('json').dumps(admin.list_s2s()))")
        found = LINKS.search(output)
        assert found, output
        return json.loads(found.group(1))

    async def outgoing_to(self, domain: str) -> list[dict]:
        return [row for row in await self.links()
                if row["direction"] == "outgoing" and row["remote"] == domain]


async def until(check, timeout: float = 10.0, every: float = 0.2):
    """Call async ``check`` until it returns something true; returns that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() >= deadline:
            return result
        await asyncio.sleep(every)


def test_list_and_close_s2s_links_in_the_manhole(manhole_on_a, servers):  # noqa: F811
    import asyncssh

    port, key = manhole_on_a
    a, b = servers("secure", "secure")

    async def scenario():
        alice, bob = await chat_across(a, b)
        bob_messages, alice_messages = Inbox(bob, "message"), Inbox(alice, "message")
        async with asyncssh.connect("127.0.0.1", port, username="admin", client_keys=[key],
                                    known_hosts=None) as connection:
            manhole = Manhole(await connection.create_process(term_type="dumb"))

            (link,) = await manhole.outgoing_to(B)
            assert link["local"] == A
            assert link["auth"] == "certificate"
            assert link["tls"] is True
            assert re.fullmatch(r"127\.0\.0\.1:\d+", link["peer"]), link
            incoming = [row for row in await manhole.links() if row["direction"] == "incoming"]
            assert [(row["remote"], row["tls"]) for row in incoming] == [(B, True)]

            closed = CLOSED.search(await manhole.run("print('CLOSED=%d' % "
                                                     "admin.close_s2s('B.Example.'))"))
            assert closed and int(closed.group(1)) == 2, "one link each way"
            assert await until(lambda: _none(manhole.links)), "the links did not close"

            alice.send_message(mto=f"bob@{B}", mbody="after the close", mtype="chat")
            message = await bob_messages.wait_for(lambda m: m["body"] == "after the close",
                                                  timeout=20)
            assert str(message["from"]) == f"alice@{A}/home"
            bob.send_message(mto=f"alice@{A}/home", mbody="still here", mtype="chat")
            await alice_messages.wait_for(lambda m: m["body"] == "still here", timeout=20)

            (again,) = await manhole.outgoing_to(B)
            assert (again["auth"], again["tls"]) == ("certificate", True)
            manhole.process.close()
        await close(alice, bob)

    asyncio.run(scenario())
    log = a.log()
    assert "closed 2 s2s stream(s) with b.example" in log
    assert log.count(f"outgoing s2s to {B} from {A} authenticated by certificate") == 2
    assert "Traceback" not in log + b.log()


async def _none(links) -> bool:
    return not await links()
