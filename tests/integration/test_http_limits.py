"""The web server's connection limits on a real xmppd: with ``[http] idle_timeout`` at 1 s,
an idle HTTP connection is closed but a WebSocket session idle for longer lives on, and a
BOSH request held for its 3 s ``wait`` is answered, not cut; with ``max_connections_per_ip``
at 3 (and no ``[limits] exempt``), one address's fourth connection is closed at once."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
import pytest
from websockets.asyncio.client import connect

from tests.integration.conftest import serve
from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_bosh import BoshClient, ping
from tests.integration.test_websocket import CLIENT, WsClient
from tests.unit.test_http_server import closed_by_server

PER_IP = 3


@pytest.fixture
def server(tmp_path):
    http_port, https_port = free_port(), free_port()
    proc = XmppdProcess(tmp_path, extra=f"""
[http]
listen = ["tcp:{http_port}:interface=127.0.0.1"]
https = ["tcp:{https_port}:interface=127.0.0.1"]
idle_timeout = 1
max_connections_per_ip = {PER_IP}

[limits]
exempt = []

[plugins]
enabled = ["disco", "ping", "roster", "presence", "websocket", "bosh"]

[plugins.bosh]
max_wait = 3
""")
    proc.http_port, proc.https_port = http_port, https_port
    yield from serve(proc, ("alice", "bob"))




def test_idle_connections_are_closed_but_not_websockets(server):
    async def scenario():
        idle = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
        async with connect(f"ws://127.0.0.1:{server.http_port}/xmpp-websocket",
                           subprotocols=["xmpp"]) as ws:
            alice = WsClient(ws)
            assert await alice.login("alice") == "alice@localhost/web"
            await asyncio.sleep(3)  # three idle timeouts
            assert await asyncio.to_thread(closed_by_server, idle, 0.1)
            await alice.send(f"<iq xmlns='{CLIENT}' type='get' id='p1' to='localhost'>"
                             f"<ping xmlns='urn:xmpp:ping'/></iq>")
            pong = await alice.recv()
            assert pong.get("id") == "p1" and pong.get("type") == "result"
        idle.close()

    asyncio.run(scenario())


def test_a_held_bosh_request_outlives_the_idle_timeout(server):
    async def scenario():
        context = ssl.create_default_context(cafile=str(server.cert))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            bob = BoshClient(http, f"https://localhost:{server.https_port}/http-bind")
            assert await bob.login("bob")
            started = asyncio.get_running_loop().time()
            empty = await bob.post()  # nothing to say: held for the whole wait (3 s)
            assert asyncio.get_running_loop().time() - started >= 2.5
            assert empty.get("type") != "terminate" and len(empty) == 0
            pong = await bob.post(ping("p2"))
            if not len(pong):
                pong = await bob.post()
            assert pong[0].get("id") == "p2" and pong[0].get("type") == "result"

    asyncio.run(scenario())


def test_one_address_is_capped(server):
    held = [socket.create_connection(("127.0.0.1", server.https_port), timeout=5)
            for _ in range(PER_IP)]
    try:
        extra = socket.create_connection(("127.0.0.1", server.https_port), timeout=5)
    except ConnectionResetError:
        pass
    else:
        assert closed_by_server(extra, 5)  # before any TLS handshake
        extra.close()
    assert not closed_by_server(held[-1], 0.3)
    for sock in held:
        sock.close()
    assert "http listener refused 1 connection(s)" in server.log()
    assert f"too many HTTP connections from 127.0.0.1 ({PER_IP})" in server.log()
