"""A lean XMPP client for load: pre-rendered XML over asyncio sockets, no XML parser.

A ``Connection`` is an asyncio protocol. While it logs in it keeps what it received and
``expect()`` wakes the login when a pattern shows up (regular expressions on bytes, enough for
the handful of answers a login gets); once logged in, a workload installs a ``sink`` that sees
every decrypted chunk as it arrives and does its own cheap counting. Everything we send is
rendered once up front, so the load generator's CPU goes into sockets and TLS, not into
building stanzas.

A login is what a real client does, one round trip at a time: stream header ▸ STARTTLS ▸ TLS
handshake (the ssl module, OpenSSL) ▸ header ▸ SASL SCRAM-SHA-256 (or PLAIN, only inside TLS)
▸ header ▸ bind ▸ initial presence, done when the server echoes that presence back (RFC 6121
§4.2.2: a user's own resources see its presence, the sender included). With a ``Target``
whose ``starttls`` is False (the ``login_scram_notls`` workload) the STARTTLS steps are left
out: SCRAM on the plain TCP stream.

Against a server in the "modern" profile (``Target.modern``) a client behaves like today's
mobile and desktop clients: after bind it enables stream management (XEP-0198) and carbons
(XEP-0280) and says it is active (XEP-0352), one round trip each, before its presence. Once
SM is on, the connection counts the stanzas it receives (cheaply: the openings of message,
presence and iq elements, less the messages wrapped in a ``<forwarded/>``, which can only
undercount, and an undercount is harmless), answers every ``<r/>`` with ``<a h=.../>``, and asks
for an ack itself after every 5 stanzas it sends.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.scram import MECHANISM as SCRAM_SHA_256
from bench.scram import ScramClient

PLAIN = "PLAIN"
MECHANISMS = (SCRAM_SHA_256, PLAIN)
PASSWORD = "correct horse battery staple"

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
PRESENCE = b"<presence/>"
NS_SM = "urn:xmpp:sm:3"
SM_ENABLE = b"<enable xmlns='urn:xmpp:sm:3'/>"
SM_REQUEST = b"<r xmlns='urn:xmpp:sm:3'/>"
SM_REQUEST_EVERY = 5  # stanzas sent between two of our <r/>
CARBONS_ENABLE = (b"<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
CSI_ACTIVE = b"<active xmlns='urn:xmpp:csi:0'/>"
STREAM_END = b"</stream:stream>"
_BIND = ("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
         "<resource>{resource}</resource></bind></iq>")

FEATURES = re.compile(rb"</stream:features>")
PROCEED = re.compile(rb"<proceed\b")
CHALLENGE = re.compile(rb"<challenge\b[^>]*>([^<]*)</challenge>")
SUCCESS = re.compile(rb"<success\b[^>]*?(?:/>|>([^<]*)</success>)")
BOUND = re.compile(rb"<iq\b[^>]*\bid=['\"]bind['\"][^>]*>.*?</iq>", re.DOTALL)
SM_ENABLED = re.compile(rb"<enabled\b[^>]*>")
CARBONS_ENABLED = re.compile(rb"<iq\b[^>]*\bid=['\"]carbons['\"][^>]*>")
_STANZA_OPENING = re.compile(rb"<(?:message|presence|iq)[\s/>]")
_FORWARDED = re.compile(rb"<forwarded[\s/>]")
_SERVER_REQUEST = re.compile(rb"<r[\s/>]")
_LONGEST_TAG = 11  # len(b"<forwarded ")
OWN_PRESENCE = re.compile(rb"<presence\b[^>]*?(?:/>|>.*?</presence>)", re.DOTALL)
# What ends a login early: SASL or TLS failure, a stream error, an error answer to bind.
FAILURE = re.compile(rb"<failure\b.*?(?:/>|</failure>)|<failed\b.*?(?:/>|</failed>)"
                     rb"|<stream:error>.*?</stream:error>"
                     rb"|<iq\b[^>]*\btype=['\"]error['\"].*?</iq>", re.DOTALL)


class LoginError(Exception):
    """The server refused a step of the login, or closed the connection, or took too long."""


@dataclass(frozen=True)
class Target:
    """One server under test: where to connect and which process to watch."""

    name: str  # "xmppd", "prosody" or "ejabberd"
    host: str
    port: int  # the STARTTLS (5222-style) listener
    domain: str
    cafile: Path  # the server's (self-signed) certificate, trusted by the client
    pid: int
    modern: bool = False  # clients enable SM, carbons and CSI (see the module docstring)
    websocket_url: str = ""  # wss://... of RFC 7395, when the bench set one up (bench/websocket.py)
    starttls: bool = True  # False: log in on the plain TCP stream (bench/workloads.py WITHOUT_TLS)
    # modern clients leave these out ("smacks", "carbons", "csi"): bench/run.py --modern-without
    modern_without: frozenset[str] = frozenset()

    @property
    def header(self) -> bytes:
        return ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream="
                f"'http://etherx.jabber.org/streams' to='{self.domain}' version='1.0'>").encode()

    def jid(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def client_context(self) -> ssl.SSLContext:
        """A verifying TLS client context; make one per workload and share it."""
        return ssl.create_default_context(cafile=str(self.cafile))


class Connection(asyncio.Protocol):
    """One client stream (see the module docstring)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.sink: Callable[[bytes], None] | None = None
        self.lost = False
        self.user = ""
        self._pattern: re.Pattern | None = None
        self._waiter: asyncio.Future | None = None
        self.acks: StreamAcks | None = None  # once stream management is enabled

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.acks is not None:
            answer = self.acks.received(data)
            if answer:
                self.transport.write(answer)
        if self.sink is not None:
            self.sink(data)
            return
        self.received += data
        if self._waiter is not None and not self._waiter.done():
            self._check()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(LoginError(f"connection closed; got {bytes(self.received)!r}"))

    # -- for the login and the workloads

    def send(self, data: bytes) -> None:
        if self.acks is not None:
            data += self.acks.sent(data)
        self.transport.write(data)

    async def expect(self, pattern: re.Pattern, timeout: float) -> re.Match:
        """Wait for ``pattern``; the bytes up to its end are consumed. A failure first raises."""
        self._pattern = pattern
        self._waiter = asyncio.get_running_loop().create_future()
        self._check()
        try:
            return await asyncio.wait_for(self._waiter, timeout)
        except TimeoutError:
            raise LoginError(f"no {pattern.pattern!r} in {timeout}s; got "
                             f"{bytes(self.received[-300:])!r}") from None
        finally:
            self._waiter = None

    def _check(self) -> None:
        data = bytes(self.received)  # matches must not see the buffer shrink under them
        failure = FAILURE.search(data)
        match = self._pattern.search(data)
        if failure is not None and (match is None or failure.start() < match.start()):
            self._waiter.set_exception(LoginError(failure.group().decode(errors="replace")))
        elif match is not None:
            del self.received[:match.end()]
            self._waiter.set_result(match)

    def close(self) -> None:
        """End the stream politely and close; the server's answer is not waited for."""
        if self.transport is not None and not self.lost:
            self.transport.write(STREAM_END)
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def login(target: Target, user: str, context: ssl.SSLContext, *,
                mechanism: str = SCRAM_SHA_256, password: str = PASSWORD,
                resource: str = "bench", presence: bool = True,
                timeout: float = 30.0, local_host: str | None = None) -> Connection:
    """A bound (and, with ``presence``, available) session of ``user``; see the module doc.
    ``local_host``: the source address (loopback has 28,000 ports per source address and
    destination; bench/scaling.py spreads 50,000 sessions over several)."""
    loop = asyncio.get_running_loop()
    local_addr = (local_host, 0) if local_host else None
    transport, conn = await asyncio.wait_for(
        loop.create_connection(Connection, target.host, target.port, local_addr=local_addr),
        timeout)
    conn.user = user
    try:
        header = target.header
        conn.send(header)
        await conn.expect(FEATURES, timeout)
        if target.starttls:
            conn.send(STARTTLS)
            await conn.expect(PROCEED, timeout)
            conn.transport = await loop.start_tls(transport, conn, context,
                                                  server_hostname=target.domain,
                                                  ssl_handshake_timeout=timeout)
            conn.send(header)
            await conn.expect(FEATURES, timeout)
        await _authenticate(conn, user, password, mechanism, timeout)
        conn.send(header)
        await conn.expect(FEATURES, timeout)
        await finish_session(conn, target, _BIND.format(resource=resource).encode(), presence,
                             timeout)
    except BaseException:
        conn.abort()
        raise
    conn.received.clear()
    return conn


async def finish_session(conn, target: Target, bind: bytes, presence: bool,
                         timeout: float) -> None:
    """What every login does once authenticated, whatever carries it (TCP or WebSocket):
    bind, the modern profile's enables, and with ``presence`` the first presence."""
    conn.send(bind)
    await conn.expect(BOUND, timeout)
    if target.modern:
        await _modern_session(conn, timeout, target.modern_without)
    if presence:
        conn.send(PRESENCE)
        await conn.expect(OWN_PRESENCE, timeout)


async def _modern_session(conn: Connection, timeout: float,
                          without: frozenset[str] = frozenset()) -> None:
    """Stream management, carbons and CSI, as a modern client sets them up after bind
    (less those in ``without``: a server without that feature, for attributing costs)."""
    if "smacks" not in without:
        conn.send(SM_ENABLE)
        await conn.expect(SM_ENABLED, timeout)
        conn.acks = StreamAcks()
    if "carbons" not in without:
        conn.send(CARBONS_ENABLE)
        await conn.expect(CARBONS_ENABLED, timeout)
    if "csi" not in without:
        conn.send(CSI_ACTIVE)


class StreamAcks:
    """XEP-0198 counting for a client that never parses XML (see the module docstring)."""

    def __init__(self) -> None:
        self.handled = 0  # stanzas received since SM was enabled (h)
        self.unrequested = 0  # stanzas sent since our last <r/>
        self._tail = b""

    def received(self, data: bytes) -> bytes:
        """Count ``data``'s stanzas; the ``<a/>`` answers to the server's ``<r/>`` in it."""
        chunk = self._tail + data
        new = len(self._tail)  # a match that ends inside the old tail was counted before

        def count(pattern: re.Pattern) -> int:
            return sum(1 for match in pattern.finditer(chunk) if match.end() > new)

        self.handled += count(_STANZA_OPENING) - count(_FORWARDED)
        self._tail = chunk[-(_LONGEST_TAG - 1):]
        requests = count(_SERVER_REQUEST)
        return (b"<a xmlns='%s' h='%d'/>" % (NS_SM.encode(), self.handled % 2**32)) * requests

    def sent(self, data: bytes) -> bytes:
        """Count ``data``'s stanzas; an ``<r/>`` to send after it if 5 more went out."""
        self.unrequested += len(_STANZA_OPENING.findall(data))
        if self.unrequested < SM_REQUEST_EVERY:
            return b""
        self.unrequested = 0
        return SM_REQUEST


async def _authenticate(conn: Connection, user: str, password: str, mechanism: str,
                        timeout: float) -> None:
    if mechanism == PLAIN:
        conn.send(_auth(PLAIN, f"\0{user}\0{password}".encode()))
        await conn.expect(SUCCESS, timeout)
        return
    if mechanism != SCRAM_SHA_256:
        raise ValueError(f"the load generator speaks {' and '.join(MECHANISMS)}, not {mechanism}")
    scram = ScramClient(user, password)
    conn.send(_auth(SCRAM_SHA_256, scram.first()))
    challenge = await conn.expect(CHALLENGE, timeout)
    final = scram.final(base64.b64decode(challenge.group(1)))
    conn.send(b"<response xmlns='%s'>%s</response>" % (NS_SASL.encode(), base64.b64encode(final)))
    success = await conn.expect(SUCCESS, timeout)
    scram.verify(base64.b64decode(success.group(1) or b""))


def _auth(mechanism: str, initial: bytes) -> bytes:
    return b"<auth xmlns='%s' mechanism='%s'>%s</auth>" % (
        NS_SASL.encode(), mechanism.encode(), base64.b64encode(initial))


async def login_many(target: Target, users: Sequence[str], concurrency: int, *,
                     context: ssl.SSLContext | None = None, mechanism: str = SCRAM_SHA_256,
                     presence: bool = True, timeout: float = 60.0) -> list[Connection]:
    """Log every user in (``concurrency`` at a time); the sessions come back in ``users``
    order. If one login fails, the others are closed and the error is raised."""
    context = context or target.client_context()
    slots = asyncio.Semaphore(concurrency)

    async def one(index: int, user: str) -> Connection:
        async with slots:
            return await login(target, user, context, mechanism=mechanism,
                               resource=f"r{index}", presence=presence, timeout=timeout)

    return await gather_sessions([one(i, user) for i, user in enumerate(users)])


async def gather_sessions(logins) -> list[Connection]:
    """The sessions of these login coroutines, in order; if one fails, the others are
    cancelled, those already made closed, and the error raised."""
    tasks = [asyncio.ensure_future(login) for login in logins]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        close_all([conn for conn in results if isinstance(conn, Connection)])
        raise


def close_all(connections: Sequence[Connection]) -> None:
    for conn in connections:
        conn.close()


async def settle(seconds: float) -> None:
    """Let the server finish what our last bytes started (its queues drain, GC runs)."""
    await asyncio.sleep(seconds)


def now() -> float:
    return time.perf_counter()
