"""SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484) against a real xmppd over real TLS.

slixmpp has no SASL2, so the SASL2 side is a raw client here: SCRAM from tests/scramclient.py
(written from RFC 5802) and HT-* from draft-schmaus-kitten-sasl-ht with hashlib/hmac; the
other side of every conversation is slixmpp, logging in with legacy SASL as before.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import socket
import sqlite3
import struct
import xml.etree.ElementTree as ET

import pytest

from tests.integration.conftest import PASSWORD, login, logout, serve
from tests.integration.rawclient import RawClient
from tests.integration.serverproc import XmppdProcess
from tests.scramclient import ScramClient

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
SASL2 = "urn:xmpp:sasl:2"
BIND2 = "urn:xmpp:bind:0"
FAST = "urn:xmpp:fast:0"
SM = "urn:xmpp:sm:3"
CARBONS = "urn:xmpp:carbons:2"
CSI = "urn:xmpp:csi:0"
AGENT = "5f3c2a4e-0d8b-4c1e-9a7f-2b6d1e8c4a90"


@pytest.fixture
def server(tmp_path):
    """The default plugins (FAST among them); no back-off after a failed login, which
    would only slow the failures tested here (xmppd.limits has its own tests)."""
    yield from serve(XmppdProcess(tmp_path, extra="[limits]\nauth_delay = 0.0\n"))


def q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Sasl2Client(RawClient):
    """A raw client that speaks SASL2 after STARTTLS; what it reads goes through an XML pull
    parser, one top-level element at a time."""

    def __init__(self, server, openssl: bool = False) -> None:
        super().__init__(server.c2s_port, timeout=10.0)
        self.header()
        self.plain_features = self.read_until(b"</stream:features>")
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.read_until(b"<proceed")
        if openssl:
            self.tls = self.starttls_openssl(str(server.cert))
            self.endp = None
        else:
            self.starttls(str(server.cert))
            self.tls = self.sock
            self.endp = hashlib.sha256(self.sock.getpeercert(binary_form=True)).digest()
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.queue: list[ET.Element] = []
        self.seen: list[str] = []  # the local names of every top-level element read
        self.header()
        self.features = self.element("features")

    def _read(self, timeout: float = 20.0) -> None:
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError(f"stream closed; read {self.seen}")
        self.parser.feed(chunk)
        for event, element in self.parser.read_events():
            if event == "start":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.queue.append(element)
                    self.seen.append(local(element))

    def next(self) -> ET.Element:
        while not self.queue:
            self._read()
        return self.queue.pop(0)

    def element(self, *names: str) -> ET.Element:
        """The next top-level element named one of ``names``; others before it are skipped."""
        while True:
            element = self.next()
            if local(element) in names:
                return element

    def answer(self) -> ET.Element:
        """The next <success/>, <failure/> or <challenge/>."""
        return self.element("success", "failure", "challenge")

    def authentication(self) -> ET.Element:
        return self.features.find(q(SASL2, "authentication"))

    def mechanisms(self) -> list[str]:
        return [m.text for m in self.authentication().findall(q(SASL2, "mechanism"))]

    def authenticate(self, mechanism: str, initial: bytes | None, extra: str = "",
                     agent: str | None = AGENT) -> ET.Element:
        ua = (f"<user-agent id='{agent}'><software>rawtest</software>"
              f"<device>Test Phone</device></user-agent>") if agent else ""
        ir = f"<initial-response>{b64(initial)}</initial-response>" if initial is not None else ""
        self.send(f"<authenticate xmlns='{SASL2}' mechanism='{mechanism}'>{ir}{ua}{extra}"
                  "</authenticate>")
        return self.answer()

    def scram(self, extra: str = "", password: str = PASSWORD, agent: str | None = AGENT,
              scram: ScramClient | None = None, mechanism: str = "SCRAM-SHA-256"
              ) -> ET.Element:
        scram = scram or ScramClient("sha-256", "alice", password)
        challenge = self.authenticate(mechanism, scram.first(), extra, agent)
        if challenge.tag != q(SASL2, "challenge"):
            return challenge
        self.server_first = base64.b64decode(challenge.text)
        self.send(f"<response xmlns='{SASL2}'>{b64(scram.final(self.server_first))}"
                  "</response>")
        outcome = self.answer()
        if outcome.tag == q(SASL2, "success"):
            data = base64.b64decode(outcome.find(q(SASL2, "additional-data")).text)
            assert data == scram.expected_success_data()
        return outcome

    def ht(self, token: str, mechanism: str = "HT-SHA-256-NONE", fast: str = "",
           extra: str = "", cb: bytes = b"", agent: str = AGENT) -> ET.Element:
        proof = hmac.new(token.encode(), b"Initiator" + cb, "sha256").digest()
        outcome = self.authenticate(mechanism, b"alice\0" + proof,
                                    f"<fast xmlns='{FAST}' {fast}/>{extra}", agent)
        if outcome.tag == q(SASL2, "success"):
            data = base64.b64decode(outcome.find(q(SASL2, "additional-data")).text)
            assert data == hmac.new(token.encode(), b"Responder" + cb, "sha256").digest()
        return outcome

    def drop(self) -> None:
        """Lose the connection without a close (RST), as a phone changing networks."""
        raw = self.sock if isinstance(self.sock, socket.socket) else None
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


def local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def condition(failure: ET.Element) -> str:
    assert failure.tag == q(SASL2, "failure"), ET.tostring(failure)
    for child in failure:
        if child.tag.startswith(f"{{{SASL}}}"):
            return child.tag.split("}")[1]
    raise AssertionError(ET.tostring(failure))


def bind2(tag: str = "rawtest", *features: str) -> str:
    return f"<bind xmlns='{BIND2}'><tag>{tag}</tag>{''.join(features)}</bind>"


# -- SASL2 and Bind 2


def test_sasl2_only_after_tls_and_beside_legacy(server):
    client = Sasl2Client(server)
    assert b"urn:xmpp:sasl:2" not in client.plain_features  # XEP-0388 §11: not before TLS
    legacy = client.features.find(q(SASL, "mechanisms"))
    assert [m.text for m in legacy] == client.mechanisms()
    assert "SCRAM-SHA-256-PLUS" in client.mechanisms()
    inline = client.authentication().find(q(SASL2, "inline"))
    bind_features = {f.get("var") for f in inline.find(q(BIND2, "bind")).find(q(BIND2, "inline"))}
    assert bind_features == {SM, CARBONS, CSI}  # the default plugins
    assert inline.find(q(SM, "sm")) is not None
    fast = [m.text for m in inline.find(q(FAST, "fast"))]
    # TLS 1.3: tls-exporter and tls-server-end-point, never tls-unique (so no -UNIQ)
    assert fast == ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    client.close()


def test_sasl2_before_tls_is_refused(server):
    client = RawClient(server.c2s_port)
    client.header()
    client.read_until(b"</stream:features>")
    plain = b64(b"\0alice\0" + PASSWORD.encode())
    client.send(f"<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>"
                f"{plain}</initial-response></authenticate>")
    answer = client.read_until(b"</failure>")
    assert b"<encryption-required" in answer and SASL2.encode() in answer
    client.close()


def test_scram_bind2_inline_in_one_round_trip_then_messages(server):
    async def scenario():
        phone = Sasl2Client(server)
        success = phone.scram(bind2("rawtest", f"<enable xmlns='{SM}' resume='true'/>",
                                    f"<enable xmlns='{CARBONS}'/>"))
        assert success.tag == q(SASL2, "success"), ET.tostring(success)
        jid = success.find(q(SASL2, "authorization-identifier")).text
        assert jid.startswith("alice@localhost/rawtest/")
        bound = success.find(q(BIND2, "bound"))
        enabled = bound.find(q(SM, "enabled"))
        assert enabled.get("resume") == "true" and enabled.get("id")
        phone.element("features")  # no restart: the features follow <success/>
        phone.send("<presence/>")

        bob = await login(server, "bob@localhost/desk")  # legacy SASL, slixmpp
        got = asyncio.get_running_loop().create_future()
        bob.add_event_handler("message", lambda m: got.done() or got.set_result(m))
        bob.send_message(mto=jid, mbody="hello phone", mtype="chat")
        message = await asyncio.to_thread(phone.element, "message")
        assert message.find("{jabber:client}body").text == "hello phone"
        phone.send("<message to='bob@localhost/desk' type='chat'><body>hi bob</body></message>")
        answer = await asyncio.wait_for(got, 10)
        assert answer["body"] == "hi bob" and str(answer["from"]) == jid

        # carbons were enabled inline: alice's other client's message reaches the phone
        desk = await login(server, "alice@localhost/desk")
        desk.send_message(mto="bob@localhost/desk", mbody="from the desk", mtype="chat")
        carbon = await asyncio.to_thread(phone.element, "message")
        assert carbon.find(q(CARBONS, "sent")) is not None, ET.tostring(carbon)
        # stream management counts: <r/> is answered
        phone.send(f"<r xmlns='{SM}'/>")
        ack = await asyncio.to_thread(phone.element, "a")
        assert int(ack.get("h")) >= 2  # presence and message
        for client in (bob, desk):
            await logout(client)
        phone.close()

    asyncio.run(scenario())
    assert "alice@localhost authenticated with SCRAM-SHA-256 from" in server.log()


def test_bad_input(server):
    client = Sasl2Client(server)
    failure = client.authenticate("X-UNKNOWN", None)
    assert condition(failure) == "invalid-mechanism"
    client.send(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>"
                "<initial-response>not base64!</initial-response></authenticate>")
    assert condition(client.answer()) == "incorrect-encoding"
    client.close()
    client = Sasl2Client(server)
    assert condition(client.scram(password="wrong")) == "not-authorized"
    client.send(f"<response xmlns='{SASL2}'>AAAA</response>")  # no exchange under way
    assert b"policy-violation" in client.read_until_closed()
    client.close()
    client = Sasl2Client(server)
    client.send(f"<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'><initial-response>"
                f"{b64(b'n,,n=alice,r=abc')}</initial-response></authenticate><message/>")
    assert b"</stream:stream>" in client.read_until_closed()  # nothing else while it runs
    client.close()


def test_downgrade_protection_under_sasl2(server):
    client = Sasl2Client(server)
    scram = ScramClient("sha-256", "alice", PASSWORD)
    assert client.scram(scram=scram).tag == q(SASL2, "success")
    attributes = dict(a.split("=", 1) for a in client.server_first.decode().split(","))
    bindings = [b.get("type") for b in client.features.find(
        q("urn:xmpp:sasl-cb:0", "sasl-channel-binding"))]
    seen = "\x1e".join(sorted(client.mechanisms())) + "\x1f" + "\x1e".join(sorted(bindings))
    expected = b64(hashlib.sha256(seen.encode()).digest())
    assert attributes["h"] == expected  # the list this client saw: no downgrade
    stripped = [m for m in client.mechanisms() if not m.endswith("-PLUS")]
    tampered = "\x1e".join(sorted(stripped)) + "\x1f" + "\x1e".join(sorted(bindings))
    assert attributes["h"] != b64(hashlib.sha256(tampered.encode()).digest())  # would be seen
    client.close()
    # 'y' (the client thinks we cannot bind) while -PLUS is offered: refused, as in SASL1
    client = Sasl2Client(server)
    downgraded = ScramClient("sha-256", "alice", PASSWORD, gs2_header="y,,")
    assert condition(client.scram(scram=downgraded)) == "not-authorized"
    client.close()


# -- FAST


def fast_token(server, mechanism: str = "HT-SHA-256-NONE") -> tuple[str, str]:
    client = Sasl2Client(server)
    success = client.scram(f"<request-token xmlns='{FAST}' mechanism='{mechanism}'/>"
                           + bind2())
    token = success.find(q(FAST, "token"))
    assert token is not None, ET.tostring(success)
    client.close()
    return token.get("token"), token.get("expiry")


def test_fast_token_login_without_scram(server):
    token, expiry = fast_token(server)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expiry)
    client = Sasl2Client(server)
    success = client.ht(token, fast="count='1'", extra=bind2())
    assert success.tag == q(SASL2, "success"), ET.tostring(success)
    assert success.find(q(SASL2, "authorization-identifier")).text.startswith(
        "alice@localhost/rawtest/")
    client.element("features")
    client.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert client.element("iq").get("type") == "result"
    client.close()
    assert "alice@localhost authenticated with HT-SHA-256-NONE" in server.log()
    assert token not in server.log()

    # stored hashed: the database has the SHA-256, never the token
    database = server.directory / "data" / "xmppd.sqlite"
    rows = sqlite3.connect(database).execute("SELECT value FROM store_map").fetchall()
    dump = "".join(value for (value,) in rows)
    assert token not in dump
    assert b64(hashlib.sha256(token.encode()).digest()) in dump

    # a wrong token, another device, or a replayed count fail
    for kwargs in ({"token": "x" * 128}, {"token": token, "agent": "another-device"},
                   {"token": token, "fast": "count='1'"}):
        client = Sasl2Client(server)
        assert condition(client.ht(**kwargs)) == "not-authorized"
        client.close()


def test_fast_rotation_and_revocation(server):
    token, _ = fast_token(server)
    client = Sasl2Client(server)
    success = client.ht(token, extra=f"<request-token xmlns='{FAST}' "
                                     "mechanism='HT-SHA-256-NONE'/>")
    new = success.find(q(FAST, "token")).get("token")
    client.close()
    assert new != token
    client = Sasl2Client(server)
    assert client.ht(new).tag == q(SASL2, "success")  # the new one works...
    client.close()
    client = Sasl2Client(server)
    assert condition(client.ht(token)) == "not-authorized"  # ...and ended the old one
    client.close()

    listed = server.ctl("fast", "list", "alice@localhost")
    assert listed.returncode == 0, listed.stderr
    assert "rawtest" in listed.stdout and "HT-SHA-256-NONE" in listed.stdout
    assert new not in listed.stdout
    revoked = server.ctl("fast", "revoke", "alice@localhost")
    assert revoked.returncode == 0, revoked.stderr
    client = Sasl2Client(server)
    assert condition(client.ht(new)) == "not-authorized"
    client.close()
    assert server.ctl("fast", "list", "nobody@elsewhere").returncode != 0


def test_fast_channel_bound_tokens(server):
    token, _ = fast_token(server, "HT-SHA-256-ENDP")
    client = Sasl2Client(server)
    assert client.ht(token, "HT-SHA-256-ENDP", cb=client.endp).tag == q(SASL2, "success")
    client.close()
    client = Sasl2Client(server)
    assert condition(client.ht(token, "HT-SHA-256-NONE")) == "not-authorized"  # its mechanism
    client.close()
    client = Sasl2Client(server)  # the wrong binding data: another TLS channel's
    assert condition(client.ht(token, "HT-SHA-256-ENDP", cb=b"\0" * 32)) == "not-authorized"
    client.close()
    # tls-exporter where the client can export keying material (pyOpenSSL, TLS 1.3)
    client = Sasl2Client(server, openssl=True)
    assert "HT-SHA-256-EXPR" in [m.text for m in client.authentication().find(
        q(SASL2, "inline")).find(q(FAST, "fast"))]
    exporter = client.tls.export_keying_material(b"EXPORTER-Channel-Binding", 32)
    success = client.scram(f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-EXPR'/>")
    expr = success.find(q(FAST, "token")).get("token")
    client.close()
    client = Sasl2Client(server, openssl=True)
    exporter = client.tls.export_keying_material(b"EXPORTER-Channel-Binding", 32)
    assert client.ht(expr, "HT-SHA-256-EXPR", cb=exporter).tag == q(SASL2, "success")
    client.close()


# -- stream management inline


def test_sm_resume_inline_after_a_dropped_connection(server):
    async def scenario():
        phone = Sasl2Client(server)
        success = phone.scram(bind2("rawtest", f"<enable xmlns='{SM}' resume='true'/>"))
        jid = success.find(q(SASL2, "authorization-identifier")).text
        sm_id = success.find(q(BIND2, "bound")).find(q(SM, "enabled")).get("id")
        phone.element("features")
        phone.send("<presence/>")
        phone.send(f"<r xmlns='{SM}'/>")
        await asyncio.to_thread(phone.element, "a")
        phone.drop()

        bob = await login(server, "bob@localhost/desk")
        bob.send_message(mto=jid, mbody="while you were away", mtype="chat")
        await asyncio.sleep(1.0)

        again = Sasl2Client(server)
        success = again.scram(f"<resume xmlns='{SM}' previd='{sm_id}' h='0'/>" + bind2())
        assert success.tag == q(SASL2, "success"), ET.tostring(success)
        resumed = success.find(q(SM, "resumed"))
        assert resumed is not None and resumed.get("previd") == sm_id
        assert success.find(q(BIND2, "bound")) is None  # bind ignored after a resume
        assert success.find(q(SASL2, "authorization-identifier")).text == jid
        message = await asyncio.to_thread(again.element, "message")
        assert message.find("{jabber:client}body").text == "while you were away"
        after = again.seen[again.seen.index("success") + 1:]
        assert "features" not in after, after  # none after a resumption (XEP-0198 §7)
        # an unknown id: <failed/> in <success/>, and Bind 2 binds a new session
        other = Sasl2Client(server)
        success = other.scram(f"<resume xmlns='{SM}' previd='nope' h='0'/>"
                              + bind2("other"), agent="11111111-2222-4333-8444-555555555555")
        assert success.find(q(SM, "failed")) is not None
        assert success.find(q(BIND2, "bound")) is not None
        await logout(bob)
        again.close()
        other.close()

    asyncio.run(scenario())
    assert "resumed from" in server.log()


def test_legacy_sasl_client_unaffected(server):
    async def scenario():
        client = await login(server, "alice@localhost/legacy")
        assert client.boundjid.full == "alice@localhost/legacy"
        await logout(client)

    asyncio.run(scenario())
