"""The login and message workloads over XMPP over WebSocket (RFC 7395) instead of TCP.

The same measurements as bench/workloads.py's ``login_scram`` and ``messages``, through a
client on the ``websockets`` library: a TLS connection (wss://, the web server's own TLS, as
a browser has it), the HTTP upgrade asking for the ``xmpp`` subprotocol, then one element per
text message, ``<open/>`` for the stream header, SASL SCRAM-SHA-256 (bench/scram.py), bind,
initial presence; in the "modern" profile, stream management, carbons and CSI between the two,
as over TCP (loadgen._modern_session). Only servers whose ``Target`` has a ``websocket_url``
can be measured: the bench configures xmppd's ``websocket`` plugin and Prosody's
mod_websocket, each on an https listener, for these workloads only (bench/servers.py); for
ejabberd the workload fails with a line that says so in the report's warnings.

A ``WsConnection`` offers what the workloads use of a TCP ``Connection`` (``user``,
``send()``, ``sink``, ``close()``): what a workload sends as several stanzas in one write is
split into one WebSocket message per stanza (RFC 7395 §3.3.3), each with its own
``xmlns='jabber:client'``, and each message received is handed to the sink as it arrives.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.loadgen import (
    CHALLENGE,
    FAILURE,
    NS_SASL,
    PASSWORD,
    SUCCESS,
    LoginError,
    StreamAcks,
    Target,
    _auth,
    finish_session,
)
from bench.scram import MECHANISM as SCRAM_SHA_256
from bench.scram import ScramClient
from bench.workloads import MESSAGE_END, Plan, Results, logins, messages

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
CLOSE = f"<close xmlns='{FRAMING}'/>".encode()
OPENED = re.compile(rb"<open\b")
FEATURES = re.compile(rb"<stream:features\b|<features\b")
# RFC 7395 §3.3.3: every message is a standalone element, so a stanza declares jabber:client
# itself (Prosody insists; the TCP stream's stanzas inherit it from <stream:stream>).
_UNQUALIFIED = re.compile(rb"^<(message|presence|iq)(?=[\s/>])(?![^>]*\bxmlns=)")
_QUALIFIED = rb"<\1 xmlns='jabber:client'"
_BIND = ("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
         "<resource>{resource}</resource></bind></iq>")


class WsConnection:
    """One RFC 7395 stream (see the module docstring)."""

    def __init__(self, ws: ClientConnection, user: str) -> None:
        self.ws = ws
        self.user = user
        self.sink = None
        self.lost = False
        self.acks: StreamAcks | None = None  # once stream management is enabled
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks = [asyncio.ensure_future(self._write())]

    async def expect(self, pattern: re.Pattern, timeout: float) -> re.Match:
        """The first message that matches ``pattern`` (others are skipped); a failure or a
        closed connection first raises LoginError."""
        async def wait() -> re.Match:
            while True:
                try:
                    message = await self.ws.recv(decode=False)
                except ConnectionClosed as error:
                    raise LoginError(f"WebSocket closed: {error}") from None
                failure = FAILURE.search(message)
                if failure is not None:
                    raise LoginError(failure.group().decode(errors="replace"))
                match = pattern.search(message)
                if match is not None:
                    return match

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise LoginError(f"no {pattern.pattern!r} in {timeout}s") from None

    def start(self) -> None:
        """From now on, messages go to the sink (the login, which ``expect()``s, is over)."""
        self._tasks.append(asyncio.ensure_future(self._read()))

    async def _read(self) -> None:
        try:
            while True:
                message = await self.ws.recv(decode=False)
                if self.acks is not None:
                    answer = self.acks.received(message)
                    if answer:
                        self._outgoing.put_nowait(answer)
                if self.sink is not None:
                    self.sink(message)
        except ConnectionClosed:
            self.lost = True

    async def _write(self) -> None:
        try:
            while True:
                await self.ws.send(await self._outgoing.get(), text=True)
        except ConnectionClosed:
            self.lost = True

    def send(self, data: bytes) -> None:
        """Queue ``data``, one message per ``</message>``-ended stanza (what the workloads
        send several at a time); anything after the last one goes as one more message, and
        with stream management an ``<r/>`` as loadgen.StreamAcks asks."""
        request = self.acks.sent(data) if self.acks is not None else b""
        *stanzas, rest = data.split(MESSAGE_END)
        for stanza in stanzas:
            self._outgoing.put_nowait(_UNQUALIFIED.sub(_QUALIFIED, stanza + MESSAGE_END))
        for element in (rest, request):
            if element:
                self._outgoing.put_nowait(_UNQUALIFIED.sub(_QUALIFIED, element))

    def close(self) -> None:
        """``<close/>`` and the WebSocket closing handshake, in the background."""
        for task in self._tasks:
            task.cancel()
        if not self.lost:
            self.lost = True
            asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        try:
            await self.ws.send(CLOSE, text=True)
            await self.ws.close()
        except (ConnectionClosed, OSError):
            pass

    def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.lost = True
        if self.ws.transport is not None:
            self.ws.transport.abort()


def _open(domain: str) -> bytes:
    return f"<open xmlns='{FRAMING}' to='{domain}' version='1.0'/>".encode()


async def ws_login(target: Target, user: str, context: ssl.SSLContext, *,
                   mechanism: str = SCRAM_SHA_256, password: str = PASSWORD,
                   resource: str = "bench", presence: bool = True,
                   timeout: float = 30.0) -> WsConnection:
    """A bound, available session of ``user`` over WebSocket, like loadgen.login over TCP."""
    _require_endpoint(target)
    if mechanism != SCRAM_SHA_256:
        raise ValueError(f"the WebSocket client speaks {SCRAM_SHA_256}, not {mechanism}")
    secure = urlsplit(target.websocket_url).scheme == "wss"
    try:
        ws = await connect(target.websocket_url, subprotocols=["xmpp"], compression=None,
                           ssl=context if secure else None,
                           server_hostname=target.domain if secure else None,
                           open_timeout=timeout, ping_interval=None, max_size=2**20)
    except (WebSocketException, OSError, TimeoutError) as error:
        raise LoginError(f"WebSocket handshake failed: {error}") from error
    conn = WsConnection(ws, user)
    try:
        conn.send(_open(target.domain))
        await conn.expect(FEATURES, timeout)
        scram = ScramClient(user, password)
        conn.send(_auth(SCRAM_SHA_256, scram.first()))
        challenge = await conn.expect(CHALLENGE, timeout)
        final = scram.final(base64.b64decode(challenge.group(1)))
        conn.send(b"<response xmlns='%s'>%s</response>" % (NS_SASL.encode(),
                                                           base64.b64encode(final)))
        success = await conn.expect(SUCCESS, timeout)
        scram.verify(base64.b64decode(success.group(1) or b""))
        conn.send(_open(target.domain))
        await conn.expect(FEATURES, timeout)
        await finish_session(conn, target, _BIND.format(resource=resource).encode(), presence,
                             timeout)
    except BaseException:
        conn.abort()
        raise
    conn.start()
    return conn


async def ws_login_many(target: Target, users: Sequence[str], concurrency: int,
                        context: ssl.SSLContext | None = None,
                        timeout: float = 60.0) -> list[WsConnection]:
    """Sessions for ``users``, ``concurrency`` logins at a time (all or none)."""
    context = context or target.client_context()
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int, user: str) -> WsConnection:
        async with gate:
            return await ws_login(target, user, context, resource=f"w{number}", timeout=timeout)

    tasks = [asyncio.ensure_future(one(i, user)) for i, user in enumerate(users)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        for conn in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(conn, WsConnection):
                conn.close()
        raise


def _require_endpoint(target: Target) -> None:
    """Fail the workload up front (the login workload counts a LoginError as one failed
    login and goes on) when the bench gave this server no WebSocket endpoint."""
    if not target.websocket_url:
        raise RuntimeError(f"{target.name}: no WebSocket endpoint configured in the bench")


async def ws_login_scram(target: Target, plan: Plan) -> Results:
    """login_scram's measurement, each login over WebSocket."""
    _require_endpoint(target)
    return await logins(target, plan, SCRAM_SHA_256, connect=ws_login)


async def ws_messages(target: Target, plan: Plan) -> Results:
    """messages' measurement, every session over WebSocket."""
    _require_endpoint(target)
    return await messages(target, plan, connect_many=ws_login_many)


WORKLOADS = {"ws_login_scram": ws_login_scram, "ws_messages": ws_messages}
