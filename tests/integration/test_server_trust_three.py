"""Server trust (XEP-0267) and incident reports (XEP-0268) between three real xmppd processes,
driven the way operators drive them: with xmppdctl against the running servers.

a.example admits only trusted buddies (``default_policy = "buddies-only"``); b.example and
c.example are at ``secure``. Each has a CA certificate and static routes to the other two.
A's and B's admins make their servers buddies (request, pending, approval both ways, B's admin
told by a message); then B's users may chat with A's and C's may not, though C's own request
still reaches A's pending list. A's incident report reaches B and not C. C's reports are
refused: by A's policy (not-allowed, before any plugin sees them) and by B's incident plugin
(forbidden: B is at secure, but C is no buddy). C floods A with subscription requests (C plays
a broken or hostile peer from its manhole): A keeps one request, rate-limits the rest, and
approves nothing. The relationship survives a restart of both servers, and revocation ends it
on both sides.

A peer without bidirectional streams (XEP-0288) gets A's refusals back over A's own link.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from types import MappingProxyType

import pytest

from tests.certs import CertificateAuthority
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_federation import close, user
from tests.integration.test_s2s_admin import Manhole

A, B, C = "a.example", "b.example", "c.example"
POLICIES = {A: "buddies-only", B: "secure", C: "secure"}
USERS = {A: ("alice", "admin"), B: ("bob", "admin"), C: ("carol",)}
PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", '
           '"server_trust", "incident"]\n')
FLOOD = 200  # subscription requests C's manhole sends A in one go
NOT_A_BUDDY = "is not a trusted buddy"  # A's log line when its policy refuses a stanza


# --------------------------------------------------------------------------- the servers


def three_servers(directory, s2s_extra: Mapping[str, str]) -> dict[str, XmppdProcess]:
    """a/b/c.example, not started: certificates from one test CA, static s2s routes to each
    other, the trust plugins, and admin@DOMAIN as the admin of A and B; ``s2s_extra`` adds
    lines to a server's [s2s] section."""
    ca = CertificateAuthority(directory / "pki")
    procs = {}
    for domain in (A, B, C):
        issued = ca.issue(domain)
        proc = XmppdProcess(directory / domain.split(".")[0], domain=domain,
                            certificate=(issued.cert_path, issued.key_path))
        proc.ca, proc.client_hostname_check = ca.ca_path, True  # for federation.user()
        procs[domain] = proc
    for domain, proc in procs.items():
        routes = "".join(f'"{peer}" = "127.0.0.1:{other.s2s_port}"\n'
                         for peer, other in procs.items() if other is not proc)
        admins = f'admins = ["admin@{domain}"]\n' if "admin" in USERS[domain] else ""
        text = proc.config.read_text().replace("[server]\n", f"[server]\n{admins}", 1)
        proc.config.write_text(
            text + PLUGINS
            + f'[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]\n'
            f'ca_file = "{ca.ca_path}"\ndefault_policy = "{POLICIES[domain]}"\n'
            "connect_timeout = 3.0\nauth_timeout = 5.0\n" + s2s_extra.get(domain, "")
            + f"[s2s.hosts]\n{routes}")
    return procs


@pytest.fixture
def servers(tmp_path):
    """Starts the servers named, their accounts created, with an SSH manhole on
    ``manhole_on`` if given and ``s2s_extra`` as for three_servers; returns (servers by
    domain, manhole port, client key)."""
    started = []

    def start(*domains: str, manhole_on: str | None = None,
              s2s_extra: Mapping[str, str] = MappingProxyType({})):
        procs = three_servers(tmp_path, s2s_extra)
        port = key = None
        if manhole_on is not None:
            asyncssh = pytest.importorskip("asyncssh")
            key = asyncssh.generate_private_key("ssh-ed25519")
            keys_file = tmp_path / "admin_keys"
            keys_file.write_text(key.export_public_key().decode())
            port = free_port()
            proc = procs[manhole_on]
            proc.config.write_text(proc.config.read_text() + f'[manhole]\nlisten = '
                                   f'"tcp:{port}:interface=127.0.0.1"\n'
                                   f'authorized_keys = "{keys_file}"\n')
        for domain in domains:
            proc = procs[domain]
            for name in USERS[domain]:
                created = proc.ctl("adduser", f"{name}@{domain}", PASSWORD)
                assert created.returncode == 0, created.stderr
            proc.start()
            started.append(proc)
        return procs, port, key

    yield start
    for proc in started:
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


# --------------------------------------------------------------------------- the operators


def table_rows(output: str) -> list[dict[str, str]]:
    """xmppdctl's table (a header of column names, values aligned under them, some with
    spaces) as one dict per row, keyed by the lower-case column name."""
    lines = output.splitlines()
    if not lines:
        return []
    starts = [(m.start(), m.group().lower()) for m in re.finditer(r"\S+", lines[0])]
    ends = [start for start, _ in starts[1:]] + [None]
    columns = list(zip(starts, ends, strict=True))
    return [{name: line[start:end].strip() for (start, name), end in columns}
            for line in lines[1:]]


class Operator:
    """An admin at one server's shell, running xmppdctl against the running server."""

    def __init__(self, proc: XmppdProcess) -> None:
        self.proc = proc

    async def run(self, *args: str) -> str:
        """xmppdctl ARGS, which must succeed; returns what it printed."""
        done = await asyncio.to_thread(self.proc.ctl, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    async def rows(self, *args: str) -> list[dict[str, str]]:
        return table_rows(await self.run(*args))

    async def states(self) -> dict[str, str]:
        """`trust list`: peer domain -> state ('Both', 'None + Pending In', ...)."""
        return {row["domain"]: row["state"] for row in await self.rows("trust", "list")}

    async def wait_for_states(self, expected: dict[str, str], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while (states := await self.states()) != expected:
            assert time.monotonic() < deadline, f"{self.proc.domain}: {states} != {expected}"
            await asyncio.sleep(0.2)

    async def incidents(self) -> list[dict[str, str]]:
        return await self.rows("incident", "list")


async def wait_for_log(proc: XmppdProcess, text: str, count: int = 1,
                       timeout: float = 10.0) -> None:
    """Until ``text`` is in the server's log ``count`` times."""
    deadline = time.monotonic() + timeout
    while proc.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count}x by {proc.domain}"
        await asyncio.sleep(0.1)


class RoguePeer:
    """C's manhole, where C's own admin bypasses what xmppdctl allows: sending A a flood of
    subscription requests, and incident reports to servers that are not its buddies. It also
    records the IQ errors coming back to C's domain, which the server otherwise drops."""

    def __init__(self, manhole: Manhole) -> None:
        self.manhole = manhole

    async def start(self) -> None:
        await self.manhole.run(
            "import json; from twisted.words.xish import domish; "
            "from xmppd.plugins.server_trust import send_presence; "
            "from xmppd.trust.incidents import build_report; answers = []; "
            "_route = server.router.route")
        await self.manhole.run(
            "server.router.route = lambda stanza, origin: (answers.append(("
            "stanza.sender.host, stanza.element.toXml())) if stanza.kind == 'iq' and "
            "stanza.type == 'error' else None, _route(stanza, origin))[1]")

    async def flood(self, count: int) -> None:
        await self.manhole.run(f"_ = [send_presence(server.router.route, '{C}', '{A}', "
                               f"'subscribe') for _ in range({count})]")

    async def file_incident(self, to: str) -> None:
        await self.manhole.run(
            f"iq = domish.Element((None, 'iq')); iq['type'] = 'set'; iq['id'] = 'rogue-{to}'; "
            f"iq['from'] = '{C}'; iq['to'] = '{to}'; "
            f"iq.addChild(build_report('{C}', 'ROGUE-1', 'unsolicited', 0.0)); "
            "server.router.send_from_server(iq)")

    async def answer_from(self, domain: str, timeout: float = 10.0) -> str:
        """The IQ error ``domain`` answered C with, as XML."""
        deadline = time.monotonic() + timeout
        while True:
            output = await self.manhole.run("print('ANSWERS=' + json.dumps(answers))")
            found = re.findall(r"ANSWERS=(.*?)\r?\n", output)
            assert found, output
            for sender, xml in json.loads(found[-1]):
                if sender == domain:
                    return xml
            assert time.monotonic() < deadline, f"no answer from {domain}: {found[-1]}"
            await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- chat


async def delivered(sender, to: str, body: str, inbox) -> None:
    sender.send_message(mto=to, mbody=body, mtype="chat")
    await inbox.wait_for(lambda m: m["body"] == body, timeout=10)


async def bounced(sender, sender_inbox, to: str, body: str) -> None:
    """``body`` comes back to ``sender`` with not-allowed (the buddies-only refusal)."""
    sender.send_message(mto=to, mbody=body, mtype="chat")
    error = await sender_inbox.wait_for(
        lambda m: m["type"] == "error" and m["from"].bare == to and m["body"] == body,
        timeout=5)
    assert error["error"]["condition"] == "not-allowed", error


async def refused_by(proc: XmppdProcess, sender, sender_inbox, to: str, body: str,
                     inbox) -> None:
    """``proc`` refuses ``body`` on arrival (its sender's server is not a buddy): it bounces,
    ``proc`` says why in its log, and the recipient (``inbox``) never sees it."""
    refusal = f"{sender.boundjid.domain} {NOT_A_BUDDY}"
    before = proc.log().count(refusal)
    await bounced(sender, sender_inbox, to, body)
    await wait_for_log(proc, refusal, before + 1)
    assert not inbox.matching(lambda m: m["body"] == body)


# --------------------------------------------------------------------------- the story


def test_three_servers_buddies_only_incidents_flood_restart_revoke(servers):
    import asyncssh

    procs, manhole_port, key = servers(A, B, C, manhole_on=C)
    a, b, c = procs[A], procs[B], procs[C]
    op_a, op_b, op_c = Operator(a), Operator(b), Operator(c)

    async def become_buddies():
        admin_b, admin_b_messages, _ = await user(b, f"admin@{B}/console")
        alice, alice_messages, _ = await user(a, f"alice@{A}/home")
        bob, bob_messages, _ = await user(b, f"bob@{B}/work")

        # A is buddies-only: B is not a buddy yet, so bob cannot reach alice.
        await refused_by(a, bob, bob_messages, f"alice@{A}", "too early", alice_messages)

        # A's admin asks B; B keeps the request for its admin, who is told.
        (row,) = await op_a.rows("trust", "request", B)
        assert (row["domain"], row["state"]) == (B, "None + Pending Out")
        await op_b.wait_for_states({A: "None + Pending In"})
        assert [row["domain"] for row in await op_b.rows("trust", "pending")] == [A]
        news = await admin_b_messages.wait_for(
            lambda m: f"{A} asks to subscribe to the server presence of {B}" in m["body"])
        assert (news["from"], news["subject"]) == (B, "Server trust")
        await asyncio.sleep(1)  # nothing happens on its own
        assert await op_a.states() == {B: "None + Pending Out"}
        assert await op_b.states() == {A: "None + Pending In"}

        # B's admin approves, which asks back; A's admin approves that.
        await op_b.run("trust", "approve", A)
        await op_a.wait_for_states({B: "To + Pending In"})
        assert [row["domain"] for row in await op_a.rows("trust", "pending")] == [B]
        await op_a.run("trust", "approve", B)
        await op_a.wait_for_states({B: "Both"})
        await op_b.wait_for_states({A: "Both"})
        for op, peer in ((op_a, B), (op_b, A)):
            (row,) = await op.rows("trust", "list")
            assert (row["domain"], row["subscription"]) == (peer, "both")

        await delivered(bob, f"alice@{A}", "now we may talk", alice_messages)
        await delivered(alice, f"bob@{B}/work", "indeed", bob_messages)
        return admin_b, admin_b_messages, alice, alice_messages, bob

    async def strangers_and_incidents(admin_b_messages, alice, alice_messages):
        carol, carol_messages, _ = await user(c, f"carol@{C}/desk")
        await refused_by(a, carol, carol_messages, f"alice@{A}", "hello stranger",
                         alice_messages)
        await bounced(alice, alice_messages, f"carol@{C}", "no")  # refused on the way out
        assert not carol_messages.matching(lambda m: m["body"] == "no")

        # A's incident report goes to its buddy B, and not to C.
        assert await op_a.run("incident", "report", "spam from clueless.lit") == f"{B}\n"
        (received,) = await _incidents_arriving(op_b)
        assert (received["direction"], received["domain"]) == ("received", A)
        assert received["description"] == "spam from clueless.lit"
        await admin_b_messages.wait_for(
            lambda m: m["subject"] == "Incident report" and "spam from clueless.lit" in m["body"])
        assert await op_c.incidents() == []
        await close(carol)

    async def c_asks_then_floods():
        # C's admin asks A the proper way: it reaches A's pending list though A is
        # buddies-only (subscription presence passes).
        await op_c.run("trust", "request", A)
        await op_a.wait_for_states({B: "Both", C: "None + Pending In"})

        async with asyncssh.connect("127.0.0.1", manhole_port, username="admin",
                                    client_keys=[key], known_hosts=None) as connection:
            rogue = RoguePeer(Manhole(await connection.create_process(term_type="dumb")))
            await rogue.start()
            refusal = f"{C} {NOT_A_BUDDY}"
            refused_before = a.log().count(refusal)
            await rogue.flood(FLOOD)
            # After the flood, on the same link: A handles a link's stanzas in order, so its
            # refusal of this report means every request before it was handled.
            await rogue.file_incident(A)
            await wait_for_log(a, refusal, refused_before + 1, timeout=20)
            assert "<not-allowed" in await rogue.answer_from(A)
            # B is not at buddies-only: its incident plugin refuses, as XEP-0268 §7 asks.
            await rogue.file_incident(B)
            assert "<forbidden" in await rogue.answer_from(B)
            await wait_for_log(b, f"incident: refused <report/> from {C}: not a trusted "
                                  "server buddy")
            connection.close()

        pending = await op_a.rows("trust", "pending")
        assert [(row["domain"], row["state"]) for row in pending] == [(C, "None + Pending In")]
        assert await op_c.states() == {A: "None + Pending Out"}  # A sent nothing back
        log = a.log()
        assert log.count(f"{C} asks to subscribe to the server presence of {A}") == 1
        assert log.count(f"{C} sends too many subscription stanzas") == 1
        assert f"admin action approve {C}" not in log
        assert [row["direction"] for row in await op_a.incidents()] == ["sent"]  # not C's
        assert len(await op_b.incidents()) == 1

    async def after_restart():
        await op_a.wait_for_states({B: "Both", C: "None + Pending In"})
        await op_b.wait_for_states({A: "Both"})
        alice, alice_messages, _ = await user(a, f"alice@{A}/home")
        bob, bob_messages, _ = await user(b, f"bob@{B}/work")
        await delivered(bob, f"alice@{A}", "still friends", alice_messages)
        (row,) = [row for row in await op_a.rows("trust", "list") if row["domain"] == B]
        assert row["available"] == "yes"  # the link the message came over

        # A's admin ends it: both sides forget, and A refuses B's users again.
        await op_a.run("trust", "revoke", B)
        assert await op_a.states() == {C: "None + Pending In"}
        await op_b.wait_for_states({})
        await refused_by(a, bob, bob_messages, f"alice@{A}", "after the end",
                         alice_messages)
        await bounced(alice, alice_messages, f"bob@{B}", "and from this side")
        await close(alice, bob)

    async def story():
        admin_b, admin_b_messages, alice, alice_messages, bob = await become_buddies()
        await strangers_and_incidents(admin_b_messages, alice, alice_messages)
        await c_asks_then_floods()
        await close(admin_b, alice, bob)

    asyncio.run(story())
    assert f"{A} asks to subscribe to the server presence of {B}" in b.log()
    for proc in (a, b):
        assert proc.stop() == 0, proc.log()
        proc.start()
    asyncio.run(after_restart())


def test_a_refusal_bounces_to_a_peer_without_bidirectional_streams(servers):
    procs, _, _ = servers(A, B, s2s_extra={B: "bidi = false\n"})

    async def scenario():
        bob, bob_messages, _ = await user(procs[B], f"bob@{B}/work")
        await bounced(bob, bob_messages, f"alice@{A}", "is anyone there?")
        await close(bob)

    asyncio.run(scenario())


async def _incidents_arriving(operator: Operator, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not (rows := await operator.incidents()):
        assert time.monotonic() < deadline, f"no incident reached {operator.proc.domain}"
        await asyncio.sleep(0.2)
    return rows
