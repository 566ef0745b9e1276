"""Server buddies (XEP-0267) and incident reports (XEP-0268) between two real xmppd processes
federating on loopback (test_federation's pair()), driven by their admins in the SSH manhole:
an admin's request, pending on the other side, approval there and back, mutual trust, an
incident report reaching the buddy, all of it surviving a restart, then revocation.

The same through xmppdctl, with a third server, the buddies-only policy, a flood of requests
and a restart of both sides, is in test_server_trust_three.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.integration import test_federation as federation
from tests.integration.serverproc import free_port
from tests.integration.test_federation import A, B
from tests.integration.test_s2s_admin import Manhole

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", '
           '"server_trust", "incident"]\n')
OUT = re.compile(r"OUT=(.*?)\r?\n")


class Admin:
    """One admin in one server's manhole: calls the AdminAPI and reads back its results."""

    def __init__(self, manhole: Manhole) -> None:
        self.manhole = manhole
        self.calls = 0

    async def start(self) -> None:
        await self.manhole.run("import json; results = {}")

    async def call(self, expression: str, timeout: float = 15.0):
        """The result of ``expression`` (an AdminAPI call returning a Deferred), as JSON
        values; an error comes back as {'error': message}."""
        self.calls += 1
        key = f"r{self.calls}"
        await self.manhole.run(
            f"_ = ({expression}).addCallbacks(lambda r: results.__setitem__('{key}', r), "
            f"lambda f: results.__setitem__('{key}', {{'error': f.getErrorMessage()}}))")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            output = await self.manhole.run(f"print('OUT=' + json.dumps('{key}' in results))")
            if _out(output):
                break
            assert asyncio.get_running_loop().time() < deadline, f"{expression} never fired"
            await asyncio.sleep(0.2)
        return _out(await self.manhole.run(f"print('OUT=' + json.dumps(results['{key}']))"))

    async def states(self) -> dict[str, str]:
        """The server roster: peer domain -> RFC 6121 state name."""
        return {row["domain"]: row["state"] for row in await self.call("admin.trust_list()")}

    async def wait_for_states(self, expected: dict[str, str], timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (states := await self.states()) != expected:
            assert asyncio.get_running_loop().time() < deadline, f"{states} != {expected}"
            await asyncio.sleep(0.3)


def _out(output: str):
    found = OUT.findall(output)
    assert found, output
    return json.loads(found[-1])


@pytest.fixture
def trusting_pair(tmp_path, monkeypatch):
    """pair() with the trust plugins and an SSH manhole on each server; yields a function
    that starts them and returns (a, b, client key, {server: manhole port})."""
    asyncssh = pytest.importorskip("asyncssh")
    key = asyncssh.generate_private_key("ssh-ed25519")
    keys_file = tmp_path / "admin_keys"
    keys_file.write_text(key.export_public_key().decode())
    monkeypatch.setattr(federation, "PLUGINS", PLUGINS)
    started = []

    def start():
        a, b = federation.pair(tmp_path, "secure", "secure")
        ports = {}
        for proc in (a, b):
            ports[proc] = free_port()
            proc.config.write_text(proc.config.read_text() + f'[manhole]\nlisten = '
                                   f'"tcp:{ports[proc]}:interface=127.0.0.1"\n'
                                   f'authorized_keys = "{keys_file}"\n')
            proc.start()
            started.append(proc)
        return a, b, key, ports

    yield start
    for proc in started:
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


def test_two_admins_make_their_servers_buddies_and_share_incidents(trusting_pair):
    import asyncssh

    a, b, key, ports = trusting_pair()

    async def admin_of(proc, stack):
        connection = await stack.enter_async_context(asyncssh.connect(
            "127.0.0.1", ports[proc], username="admin", client_keys=[key], known_hosts=None))
        admin = Admin(Manhole(await connection.create_process(term_type="dumb")))
        await admin.start()
        return admin

    async def scenario():
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            admin_a, admin_b = await admin_of(a, stack), await admin_of(b, stack)
            assert await admin_a.states() == {}
            assert await admin_a.call("admin.incident_report('too early')") == []

            # A's admin asks; B stores the request and waits for its admin.
            rows = await admin_a.call(f"admin.trust_request('{B}')")
            assert [row["state"] for row in rows] == ["None + Pending Out"]
            await admin_b.wait_for_states({A: "None + Pending In"})
            pending = await admin_b.call("admin.trust_pending()")
            assert [row["domain"] for row in pending] == [A]
            await asyncio.sleep(1)
            assert await admin_a.states() == {B: "None + Pending Out"}  # nothing automatic

            # B's admin approves (subscribed, and subscribe back); A's admin approves that.
            await admin_b.call(f"admin.trust_approve('{A}')")
            await admin_a.wait_for_states({B: "To + Pending In"})
            await admin_a.call(f"admin.trust_approve('{B}')")
            await admin_a.wait_for_states({B: "Both"})
            await admin_b.wait_for_states({A: "Both"})
            (row,) = await admin_a.call("admin.trust_list()")
            assert row["available"] is True  # the link the subscriptions went over

            assert await admin_a.call("admin.incident_report('spam from clueless.lit', "
                                      "['abuser@clueless.lit'], 'high')") == [B]
            await _received(admin_b, 1)

    asyncio.run(scenario())
    assert f"{A} asks to subscribe to the server presence of {B}" in b.log()

    assert b.stop() == 0, b.log()
    b.start()

    async def after_restart():
        from contextlib import AsyncExitStack

        async with AsyncExitStack() as stack:
            admin_a, admin_b = await admin_of(a, stack), await admin_of(b, stack)
            assert await admin_b.states() == {A: "Both"}
            assert await admin_a.call("admin.incident_report('still there?')") == [B]
            received = await _received(admin_b, 2)
            assert [r["description"] for r in received][-1] == "still there?"

            await admin_a.call(f"admin.trust_revoke('{B}')")
            assert await admin_a.states() == {}
            await admin_b.wait_for_states({})
            assert await admin_a.call("admin.incident_report('gone')") == []

    asyncio.run(after_restart())


async def _received(admin: Admin, count: int, timeout: float = 20.0) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        listed = await admin.call("admin.incident_list()")
        received = [row for row in listed if row["direction"] == "received"]
        if len(received) >= count:
            assert all(row["domain"] == A for row in received)
            return received
        assert asyncio.get_running_loop().time() < deadline, listed
        await asyncio.sleep(0.3)
