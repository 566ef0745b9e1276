"""XMPP over WebSocket (RFC 7395) against a real server: a client written here on the
``websockets`` library negotiates over wss://, logs in with SCRAM-SHA-256, binds and chats
with a slixmpp client on TCP; the handshake refuses a missing ``xmpp`` subprotocol and a
forbidden Origin; bad and huge messages get the stream errors TCP gets; see-other-uri;
XEP-0156 host-meta (XRD and JSON) names the endpoint."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import ssl
import urllib.request
import xml.etree.ElementTree as ET

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.integration.conftest import PASSWORD, login, logout, serve
from tests.integration.serverproc import XmppdProcess, free_port
from tests.scramclient import ScramClient

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
STREAMS = "http://etherx.jabber.org/streams"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
CLIENT = "jabber:client"
ALLOWED = "https://chat.example.org"


def web_server(tmp_path, websocket_options: str = "") -> XmppdProcess:
    https_port, http_port = free_port(), free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[http]
https = ["tcp:{https_port}:interface=127.0.0.1"]
listen = ["tcp:{http_port}:interface=127.0.0.1"]
cors_origins = ["{ALLOWED}"]

[plugins]
enabled = ["disco", "ping", "roster", "presence", "smacks", "websocket"]

[plugins.websocket]
{websocket_options}
""")
    proc.https_port, proc.http_port = https_port, http_port
    return proc


@pytest.fixture
def server(tmp_path):
    yield from serve(web_server(tmp_path))


def tls(proc: XmppdProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(proc.cert))


def wss(proc: XmppdProcess) -> str:
    return f"wss://localhost:{proc.https_port}/xmpp-websocket"


def run(test):
    """An asyncio test run to completion by pytest (no asyncio plugin here)."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return wrapper


class WsClient:
    """One RFC 7395 stream over a websockets connection; every message is parsed."""

    def __init__(self, ws) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> ET.Element:
        message = await asyncio.wait_for(self.ws.recv(), 10)
        assert isinstance(message, str)
        return ET.fromstring(message)

    async def open(self, to: str = "localhost") -> ET.Element:
        """Send <open/>; returns the stream features after checking the server's <open/>."""
        await self.send(f"<open xmlns='{FRAMING}' to='{to}' version='1.0'/>")
        opened = await self.recv()
        assert opened.tag == f"{{{FRAMING}}}open", ET.tostring(opened)
        assert opened.get("from") == to and opened.get("version") == "1.0" and opened.get("id")
        features = await self.recv()
        assert features.tag == f"{{{STREAMS}}}features", ET.tostring(features)
        return features

    async def login(self, user: str, resource: str = "web") -> str:
        features = await self.authenticate(user)
        assert features.find(f"{{{BIND}}}bind") is not None
        await self.send(f"<iq xmlns='{CLIENT}' type='set' id='b1'><bind xmlns='{BIND}'>"
                        f"<resource>{resource}</resource></bind></iq>")
        bound = await self.recv()
        assert bound.tag == f"{{{CLIENT}}}iq" and bound.get("type") == "result"
        return bound.find(f"{{{BIND}}}bind/{{{BIND}}}jid").text

    async def authenticate(self, user: str) -> ET.Element:
        """SCRAM-SHA-256, then the restarted stream's features."""
        features = await self.open()
        assert features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None
        mechanisms = [m.text for m in features.iter(f"{{{SASL}}}mechanism")]
        assert "SCRAM-SHA-256" in mechanisms, mechanisms
        scram = ScramClient("sha-256", user, PASSWORD)
        await self.send(scram.auth_xml())
        challenge = await self.recv()
        assert challenge.tag == f"{{{SASL}}}challenge", ET.tostring(challenge)
        await self.send(scram.response_xml(challenge.text))
        success = await self.recv()
        assert success.tag == f"{{{SASL}}}success", ET.tostring(success)
        assert base64.b64decode(success.text) == scram.expected_success_data()
        return await self.open()

    async def expect_stream_error(self, condition: str) -> None:
        error = await self.recv()
        if error.tag == f"{{{FRAMING}}}open":  # as on TCP, our header before an early error
            error = await self.recv()
        assert error.tag == f"{{{STREAMS}}}error", ET.tostring(error)
        assert error.find(f"{{urn:ietf:params:xml:ns:xmpp-streams}}{condition}") is not None, \
            ET.tostring(error)
        assert (await self.recv()).tag == f"{{{FRAMING}}}close"
        await self.expect_closed()

    async def expect_closed(self) -> None:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(self.ws.recv(), 10)


@run
async def test_websocket_client_chats_with_a_tcp_client(server):
    async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server),
                       origin=ALLOWED) as ws:
        assert ws.subprotocol == "xmpp"
        alice = WsClient(ws)
        assert await alice.login("alice") == "alice@localhost/web"
        bob = await login(server, "bob@localhost")
        got = asyncio.get_running_loop().create_future()
        bob.add_event_handler("message", lambda msg: got.done() or got.set_result(msg))
        try:
            await alice.send(" ")  # a whitespace keepalive is ignored, not a stream error
            await alice.send(f"<message xmlns='{CLIENT}' to='{bob.boundjid.full}' type='chat'>"
                             f"<body>over a WebSocket &amp; back</body></message>")
            message = await asyncio.wait_for(got, 10)
            assert message["from"] == "alice@localhost/web"
            assert message["body"] == "over a WebSocket & back"
            bob.send_message(mto="alice@localhost/web", mbody="hello, browser", mtype="chat")
            reply = await alice.recv()
            assert reply.tag == f"{{{CLIENT}}}message"
            assert reply.get("from") == bob.boundjid.full
            assert reply.find(f"{{{CLIENT}}}body").text == "hello, browser"
            # an IQ answered by the server, to show the session is a normal one
            await alice.send(f"<iq xmlns='{CLIENT}' type='get' id='p1' to='localhost'>"
                             f"<ping xmlns='urn:xmpp:ping'/></iq>")
            pong = await alice.recv()
            assert pong.get("id") == "p1" and pong.get("type") == "result"
        finally:
            await logout(bob)
        await alice.send(f"<close xmlns='{FRAMING}'/>")
        assert (await alice.recv()).tag == f"{{{FRAMING}}}close"
        await alice.expect_closed()


@run
async def test_plain_websocket_on_loopback_and_no_origin(server):
    """A non-browser client (no Origin) over ws:// on loopback: allowed, and it counts as
    protected, so SCRAM is offered without TLS."""
    async with connect(f"ws://127.0.0.1:{server.http_port}/xmpp-websocket",
                       subprotocols=["xmpp"]) as ws:
        assert await WsClient(ws).login("bob", "plain") == "bob@localhost/plain"


@run
async def test_handshake_refusals(server):
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(wss(server), ssl=tls(server)):
            pass
    assert refused.value.response.status_code == 400
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server),
                           origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(("messages", "condition"), [
    (["<message xmlns='jabber:client'/>"], "bad-format"),  # no <open/> first
    ([f"<open xmlns='{FRAMING}' to='elsewhere.example' version='1.0'/>"], "host-unknown"),
    (["<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost'"], "not-well-formed"),
    (["<a/><b/>"], "bad-format"),  # two elements in one message
    (["<x><!-- a comment --></x>"], "restricted-xml"),
])
@run
async def test_bad_messages_get_stream_errors(server, messages, condition):
    async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server)) as ws:
        client = WsClient(ws)
        for message in messages:
            await client.send(message)
        await client.expect_stream_error(condition)


@run
async def test_huge_messages(server):
    async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server),
                       max_size=None) as ws:
        client = WsClient(ws)
        await client.open()
        await client.send(f"<message xmlns='{CLIENT}'><body>{'x' * 300_000}</body></message>")
        await client.expect_stream_error("policy-violation")
    async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server)) as ws:
        await WsClient(ws).open()
        await ws.send("<message>" + "x" * 600_000)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        # too big to be buffered at all: the connection fails (1009 if the close frame
        # makes it before the TCP connection goes)
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1009


def get(url: str, context=None) -> tuple[int, dict, bytes]:
    with urllib.request.urlopen(url, context=context, timeout=10) as answer:
        return answer.status, dict(answer.headers), answer.read()


def test_host_meta(server):
    expected = f"wss://localhost:{server.https_port}/xmpp-websocket"
    base = f"https://localhost:{server.https_port}/.well-known/"
    status, headers, body = get(base + "host-meta", tls(server))
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    links = ET.fromstring(body).findall("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
    assert [(link.get("rel"), link.get("href")) for link in links] == [
        ("urn:xmpp:alt-connections:websocket", expected)]
    status, headers, body = get(base + "host-meta.json", tls(server))
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(body) == {"links": [{"rel": "urn:xmpp:alt-connections:websocket",
                                           "href": expected}]}


@run
async def test_see_other_uri(tmp_path):
    other = "wss://other.example/xmpp-websocket"
    for proc in serve(web_server(tmp_path, f'see_other_uri = "{other}"'), users=()):
        async with connect(wss(proc), subprotocols=["xmpp"], ssl=tls(proc)) as ws:
            client = WsClient(ws)
            await client.send(f"<open xmlns='{FRAMING}' to='localhost' version='1.0'/>")
            close = await client.recv()
            assert close.tag == f"{{{FRAMING}}}close" and close.get("see-other-uri") == other
            await client.expect_closed()


@run
async def test_forwarded_for_only_from_trusted_proxies(tmp_path):
    """Behind a trusted proxy (here: loopback) the client's address is X-Forwarded-For's,
    and X-Forwarded-Proto: http makes the stream unprotected (no SCRAM without TLS)."""
    configured = web_server(tmp_path)
    configured.config.write_text(configured.config.read_text().replace(
        "[http]\n", '[http]\ntrusted_proxies = ["127.0.0.1"]\n'))
    for proc in serve(configured):
        url = f"ws://127.0.0.1:{proc.http_port}/xmpp-websocket"
        async with connect(url, subprotocols=["xmpp"], additional_headers={
                "X-Forwarded-For": "198.51.100.23, 127.0.0.1",
                "X-Forwarded-Proto": "https"}) as ws:
            await WsClient(ws).login("alice")
        assert "alice@localhost authenticated with SCRAM-SHA-256 from 198.51.100.23:" in proc.log()
        async with connect(url, subprotocols=["xmpp"], additional_headers={
                "X-Forwarded-Proto": "http"}) as ws:
            features = await WsClient(ws).open()
            assert features.find(f"{{{SASL}}}mechanisms") is None, ET.tostring(features)


@run
async def test_shutdown_and_auth_timeout(server):
    """A client that never authenticates is cut at [c2s] auth_timeout, and a shutdown ends
    a WebSocket session with system-shutdown, as on TCP."""
    async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server)) as ws:
        client = WsClient(ws)
        await client.open()
        await client.expect_stream_error("connection-timeout")  # auth_timeout = 5 s
    async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server)) as ws:
        client = WsClient(ws)
        await client.login("alice")
        await asyncio.to_thread(server.stop)
        await client.expect_stream_error("system-shutdown")


SM = "urn:xmpp:sm:3"


@run
async def test_stream_management_resumes_across_websockets(server):
    """XEP-0198 on WebSocket: the connection drops, a message arrives meanwhile, and a new
    WebSocket resumes the session and gets it."""
    bob = await login(server, "bob@localhost")
    try:
        async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server)) as ws:
            alice = WsClient(ws)
            jid = await alice.login("alice")
            await alice.send(f"<enable xmlns='{SM}' resume='true'/>")
            enabled = await alice.recv()
            assert enabled.tag == f"{{{SM}}}enabled" and enabled.get("resume") == "true"
            previd = enabled.get("id")
            ws.transport.abort()  # the connection is lost, not closed
        await asyncio.sleep(0.5)
        bob.send_message(mto=jid, mbody="while you were away", mtype="chat")
        await asyncio.sleep(0.5)
        async with connect(wss(server), subprotocols=["xmpp"], ssl=tls(server)) as ws:
            alice = WsClient(ws)
            await alice.authenticate("alice")
            await alice.send(f"<resume xmlns='{SM}' h='0' previd='{previd}'/>")
            resumed = await alice.recv()
            assert resumed.tag == f"{{{SM}}}resumed", ET.tostring(resumed)
            for _ in range(5):
                element = await alice.recv()
                if element.tag == f"{{{CLIENT}}}message":
                    break
            assert element.find(f"{{{CLIENT}}}body").text == "while you were away"
    finally:
        await logout(bob)
