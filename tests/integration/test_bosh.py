"""BOSH (XEP-0124/0206) against a real server, with a client written here on aiohttp: a
session over HTTPS logs in with SCRAM-SHA-256, restarts, binds and chats with a slixmpp
client on TCP; a repeated request gets its first answer again, a request that arrives
before the one it follows waits for it, stale and far-ahead rids and unknown sids end the
session with item-not-found, too many requests at once, polling faster than told and too
many sessions from one address are refused; the CORS preflight; the client's terminate."""

from __future__ import annotations

import asyncio
import random
import ssl
import xml.etree.ElementTree as ET

import aiohttp
import pytest

from tests.integration.conftest import PASSWORD, login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port
from tests.scramclient import ScramClient

HTTPBIND = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
STREAMS = "http://etherx.jabber.org/streams"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
CLIENT = "jabber:client"
ALLOWED = "https://chat.example.org"


def bosh_server(tmp_path, bosh_options: str = "") -> XmppdProcess:
    port = free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[http]
https = ["tcp:{port}:interface=127.0.0.1"]
cors_origins = ["{ALLOWED}"]

[plugins]
enabled = ["disco", "ping", "roster", "presence", "websocket", "bosh"]

[plugins.bosh]
max_wait = 3
max_sessions_per_address = 3
{bosh_options}
""")
    proc.https_port = port
    return proc


@pytest.fixture
def server(tmp_path):
    yield from serve(bosh_server(tmp_path))


class BoshClient:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.rid = random.randint(1_000_000, 9_000_000)
        self.sid: str | None = None

    async def raw(self, body: str, headers: dict | None = None) -> tuple[int, bytes]:
        async with self.http.post(self.url, data=body.encode(), headers={
                "Content-Type": "text/xml; charset=utf-8", **(headers or {})}) as answer:
            return answer.status, await answer.read()

    def body(self, content: str = "", rid: int | None = None, **attributes: str) -> str:
        if rid is None:
            self.rid += 1
            rid = self.rid
        attributes = {"rid": str(rid), **({"sid": self.sid} if self.sid else {}), **attributes}
        text = " ".join(f"{k}='{v}'" for k, v in attributes.items())
        return f"<body xmlns='{HTTPBIND}' xmlns:xmpp='{XBOSH}' {text}>{content}</body>"

    async def post(self, content: str = "", rid: int | None = None, **attributes) -> ET.Element:
        status, data = await asyncio.wait_for(self.raw(self.body(content, rid, **attributes)), 15)
        assert status == 200, (status, data)
        body = ET.fromstring(data)
        assert body.tag == f"{{{HTTPBIND}}}body", data
        return body

    async def create(self, hold: int = 1) -> ET.Element:
        body = await self.post(to="localhost", wait="3", hold=str(hold), ver="1.6",
                               **{"xmpp:version": "1.0", "xml:lang": "en"})
        self.sid = body.get("sid")
        assert self.sid and body.get("requests") == str(hold + 1) and body.get("authid")
        return body

    async def until(self, tag: str) -> ET.Element:
        """Poll until an element ``tag`` arrives (empty answers after ``wait``)."""
        for _ in range(10):
            body = await self.post()
            assert body.get("type") != "terminate", ET.tostring(body)
            for child in body:
                if child.tag == tag:
                    return child
        raise AssertionError(f"no {tag}")

    async def login(self, user: str) -> str:
        created = await self.create()
        mechanisms = [m.text for m in created.iter(f"{{{SASL}}}mechanism")]
        assert "SCRAM-SHA-256" in mechanisms, ET.tostring(created)
        scram = ScramClient("sha-256", user, PASSWORD)
        body = await self.post(scram.auth_xml())
        challenge = body.find(f"{{{SASL}}}challenge")
        body = await self.post(scram.response_xml(challenge.text))
        assert body.find(f"{{{SASL}}}success") is not None, ET.tostring(body)
        body = await self.post(to="localhost", **{"xmpp:restart": "true", "xml:lang": "en"})
        assert body.find(f"{{{STREAMS}}}features/{{{BIND}}}bind") is not None
        body = await self.post(f"<iq xmlns='{CLIENT}' type='set' id='b'><bind xmlns='{BIND}'>"
                               f"<resource>bosh</resource></bind></iq>")
        return body.find(f"{{{CLIENT}}}iq/{{{BIND}}}bind/{{{BIND}}}jid").text


def run(server, scenario):
    async def main():
        context = ssl.create_default_context(cafile=str(server.cert))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            await scenario(lambda: BoshClient(
                http, f"https://localhost:{server.https_port}/http-bind"))
    asyncio.run(main())


def ping(id_: str) -> str:
    return (f"<iq xmlns='{CLIENT}' type='get' id='{id_}' to='localhost'>"
            f"<ping xmlns='urn:xmpp:ping'/></iq>")


def test_bosh_client_chats_with_a_tcp_client(server):
    async def scenario(new):
        alice = new()
        assert await alice.login("alice") == "alice@localhost/bosh"
        bob = await login(server, "bob@localhost")
        got = asyncio.get_running_loop().create_future()
        bob.add_event_handler("message", lambda m: got.done() or got.set_result(m))
        try:
            await alice.post(f"<message xmlns='{CLIENT}' to='{bob.boundjid.full}' type='chat'>"
                             f"<body>over BOSH</body></message>")
            message = await asyncio.wait_for(got, 10)
            assert (message["body"], message["from"]) == ("over BOSH", "alice@localhost/bosh")
            # a held request carries bob's message as soon as it comes
            waiting = asyncio.ensure_future(alice.post())
            await asyncio.sleep(0.5)
            assert not waiting.done()
            bob.send_message(mto="alice@localhost/bosh", mbody="back over BOSH", mtype="chat")
            body = await asyncio.wait_for(waiting, 5)
            assert body.find(f"{{{CLIENT}}}message/{{{CLIENT}}}body").text == "back over BOSH"
        finally:
            await logout(bob)
        body = await alice.post(f"<presence xmlns='{CLIENT}' type='unavailable'/>",
                                type="terminate")
        assert body.get("type") == "terminate"
        body = await alice.post()
        assert (body.get("type"), body.get("condition")) == ("terminate", "item-not-found")
    run(server, scenario)


def test_repeated_and_out_of_order_requests(server):
    async def scenario(new):
        alice = new()
        await alice.login("alice")
        # a request whose answer was lost is sent again: the same answer
        rid = alice.rid + 1
        first = await alice.post(ping("p1"))
        assert first.find(f"{{{CLIENT}}}iq").get("id") == "p1"
        status, again = await alice.raw(alice.body(ping("p1"), rid=rid))
        assert status == 200 and ET.fromstring(again).find(f"{{{CLIENT}}}iq").get("id") == "p1"
        # rid+2 arrives before rid+1: it waits, then both are handled in rid order
        later = asyncio.ensure_future(alice.post(ping("second"), rid=alice.rid + 2))
        await asyncio.sleep(0.5)
        earlier = asyncio.ensure_future(alice.post(ping("first"), rid=alice.rid + 1))
        answers = await asyncio.wait_for(asyncio.gather(earlier, later), 15)
        alice.rid += 2
        ids = [iq.get("id") for body in answers for iq in body.iter(f"{{{CLIENT}}}iq")]
        assert ids == ["first", "second"], ids
        # a held request whose connection breaks is sent again: it takes the old one's place
        # and gets what comes for the client
        lost_rid = alice.rid + 1
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=ssl.create_default_context(cafile=str(server.cert)))) as other:
            lost = asyncio.ensure_future(BoshClient(other, alice.url).raw(
                alice.body(rid=lost_rid)))
            await asyncio.sleep(0.5)
            lost.cancel()
        alice.rid += 1
        resent = asyncio.ensure_future(alice.post(rid=lost_rid))
        await asyncio.sleep(0.5)
        following = asyncio.ensure_future(alice.post(ping("after-loss")))
        body = await asyncio.wait_for(resent, 10)
        assert [iq.get("id") for iq in body.iter(f"{{{CLIENT}}}iq")] == ["after-loss"]
        await asyncio.wait_for(following, 10)
        # a stale rid, one not kept any more: the session ends
        stale = await alice.post(rid=rid - 2)
        assert (stale.get("type"), stale.get("condition")) == ("terminate", "item-not-found")
        assert (await alice.post()).get("condition") == "item-not-found"

        bob = new()
        await bob.login("bob")
        far = await bob.post(rid=bob.rid + 10)
        assert (far.get("type"), far.get("condition")) == ("terminate", "item-not-found")
    run(server, scenario)


def test_overactivity_and_too_many_sessions(server):
    async def scenario(new):
        alice = new()
        await alice.create(hold=1)  # requests = 2: one held, one more at most
        base = alice.rid
        held = asyncio.ensure_future(alice.post(rid=base + 1))
        await asyncio.sleep(0.5)
        early = asyncio.ensure_future(alice.post(rid=base + 3))  # waits for base + 2
        await asyncio.sleep(0.5)
        third = await alice.post(rid=base + 2)  # the third at once: over-activity
        assert (third.get("type"), third.get("condition")) == ("terminate", "policy-violation")
        for body in await asyncio.gather(held, early):
            assert (body.get("type"), body.get("condition")) == ("terminate", "policy-violation")

        # a polling session (hold 0) that polls faster than it was told
        poller = new()
        created = await poller.create(hold=0)
        assert created.get("polling") == "2"
        assert (await poller.post()).get("type") is None  # the first empty poll is free
        fast = await poller.post()
        assert (fast.get("type"), fast.get("condition")) == ("terminate", "policy-violation")

        clients = [new() for _ in range(3)]
        for client in clients:
            await client.create()
        refused = new()
        body = await refused.post(to="localhost", wait="3", hold="1")
        assert (body.get("type"), body.get("condition")) == ("terminate", "policy-violation")
        assert body.get("sid") is None
    run(server, scenario)


def test_bad_requests(server):
    async def scenario(new):
        client = new()
        status, data = await client.raw("<body xmlns='http://jabber.org/protocol/httpbind'")
        assert status == 400 and b"bad-request" in data
        status, data = await client.raw(f"<body xmlns='{HTTPBIND}' sid='nope' rid='5'/>")
        assert status == 200 and b"item-not-found" in data
        body = await client.post(to="elsewhere.example", wait="3", hold="1")
        assert (body.get("type"), body.get("condition")) == ("terminate", "host-unknown")
        status, _ = await client.raw(client.body(to="localhost"),
                                     headers={"Origin": "https://evil.example"})
        assert status == 403
        async with client.http.options(client.url, headers={
                "Origin": ALLOWED, "Access-Control-Request-Method": "POST"}) as answer:
            assert answer.status == 200
            assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
            assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    run(server, scenario)


def test_host_meta_names_bosh(server):
    async def scenario(new):
        client = new()
        url = f"https://localhost:{server.https_port}/.well-known/host-meta.json"
        async with client.http.get(url) as answer:
            links = {link["rel"]: link["href"] for link in (await answer.json())["links"]}
        assert links["urn:xmpp:alt-connections:xbosh"] == (
            f"https://localhost:{server.https_port}/http-bind")
    run(server, scenario)


def test_inactivity_ends_the_session(tmp_path):
    for proc in serve(bosh_server(tmp_path, "inactivity = 1")):
        async def scenario(new):
            alice = new()
            assert await alice.login("alice") == "alice@localhost/bosh"
            await asyncio.sleep(2.5)  # no request held, none sent
            body = await alice.post()
            assert (body.get("type"), body.get("condition")) == ("terminate", "item-not-found")
        run(proc, scenario)
        log = proc.log()
        assert "BOSH session of 127.0.0.1 inactive" in log
        assert "session alice@localhost/bosh ended" in log


def test_pause_keeps_the_session_past_inactivity_until_the_next_request(tmp_path):
    """XEP-0124 §10: maxpause advertised; a pause answers the held requests at once (the
    pause request with no payload), the session outlives ``inactivity`` for the pause, what
    came meanwhile waits for the next request, which ends the pause."""
    for proc in serve(bosh_server(tmp_path, "inactivity = 1")):
        async def scenario(new, proc=proc):
            alice = new()
            assert await alice.login("alice") == "alice@localhost/bosh"
            bob = await login(proc, "bob@localhost")
            try:
                held = asyncio.ensure_future(alice.post())
                await asyncio.sleep(0.3)
                assert not held.done()
                paused = await alice.post(pause="4")
                assert paused.get("type") is None and len(paused) == 0, ET.tostring(paused)
                assert (await asyncio.wait_for(held, 1)).get("type") is None
                bob.send_message(mto="alice@localhost/bosh", mbody="while paused", mtype="chat")
                await asyncio.sleep(2.5)  # past inactivity (1 s), within the pause (4 s)
                body = await alice.post()
                assert body.get("type") is None, ET.tostring(body)
                assert body.find(f"{{{CLIENT}}}message/{{{CLIENT}}}body").text == "while paused"
            finally:
                await logout(bob)
            await asyncio.sleep(2.5)  # the pause is over: inactivity applies again
            body = await alice.post()
            assert (body.get("type"), body.get("condition")) == ("terminate", "item-not-found")

            # more than maxpause is refused, and so is a pause that is not a number
            for pause, condition in (("121", "policy-violation"), ("soon", "bad-request")):
                client = new()
                created = await client.create()
                assert created.get("maxpause") == "120"
                refused = await client.post(pause=pause)
                assert (refused.get("type"), refused.get("condition")) == ("terminate", condition)
        run(proc, scenario)
        assert "inactive after a 4 s pause" not in proc.log()
        assert "BOSH session of 127.0.0.1 inactive;" in proc.log()


def test_a_session_that_never_comes_for_its_output_is_ended(tmp_path):
    """A BOSH client that sends no request while messages pile up for it is a slow reader:
    beyond [limits] max_output_buffer its stream ends with policy-violation, as a TCP
    client's does, and the session's memory stops growing."""
    proc = bosh_server(tmp_path)
    proc.config.write_text(proc.config.read_text() + "\n[limits]\nmax_output_buffer = 65536\n")

    def scenario_for(server):
        async def scenario(new):
            alice = new()
            await alice.login("alice")
            bob = await login(server, "bob@localhost")
            try:
                for n in range(100):  # 100 KiB for alice, who asks for none of it
                    bob.send_message(mto="alice@localhost/bosh", mbody=f"{n:04d}" + "x" * 1020,
                                     mtype="chat")
                await bob.plugin["xep_0199"].ping("localhost", timeout=10)  # all routed
                await asyncio.sleep(0.3)
                body = await alice.post()  # the session is gone (no request held its end)
                assert (body.get("type"), body.get("condition")) == \
                    ("terminate", "item-not-found"), ET.tostring(body)[:300]
            finally:
                await logout(bob)
        return scenario

    for server in serve(proc):
        run(server, scenario_for(server))
        log = server.log()
        assert "bytes wait for requests that do not come" in log
        assert "session alice@localhost/bosh ended after" in log and "(policy-violation)" in log
