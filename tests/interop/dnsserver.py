"""An authoritative DNS server for test domains: A, AAAA and SRV records on a loopback port.

Peer servers under test (Prosody, xmppd) find each other through SRV records, as in production;
this serves those records from a zone the test writes. It runs twisted.names in a subprocess of
its own, so it neither shares nor fights with the reactor of the test that uses it (trial's, or
none at all when slixmpp runs in asyncio)::

    zone = xmpp_server_zone("prosody.example", "127.0.0.2", 5269)
    with TestDNSServer(zone) as dns_server:   # or start() ... stop()
        ...  # point the servers at ("127.0.0.1", dns_server.port)

Names that are IPv4/IPv6 literals (``127.0.0.2.``) answer with their own address: SRV targets
are written as IP literals, and some resolvers look a target up even when it is one.
Names outside the zone get NXDOMAIN at once, never a time-out; the names between a zone
name and its domain (``_tcp.prosody.example``) exist without records, as RFC 8020 requires of
empty non-terminals: resolvers that minimise query names (libunbound) ask for them first.

Every query received is recorded as ``(name, type)``, e.g.
``("_xmpp-server._tcp.prosody.example", "SRV")``, so a test can show that a server really
asked: ``asked(name, type)`` waits a moment for it, ``queries`` is what arrived so far.

Avoid the ``.test`` top-level domain: libunbound (Prosody's resolver) answers it locally.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from twisted.names import dns

READY = "LISTENING"
QUERY = "QUERY"
TTL = 60


@dataclass(frozen=True)
class A:
    address: str


@dataclass(frozen=True)
class AAAA:
    address: str


@dataclass(frozen=True)
class SRV:
    """``target`` is a host name or an IP literal, e.g. ``"127.0.0.2."``; ``"."`` means
    "no service here" (RFC 2782)."""

    target: str
    port: int
    priority: int = 0
    weight: int = 0


Record = A | AAAA | SRV
Zone = Mapping[str, Sequence[Record]]
_RECORD_TYPES = {cls.__name__: cls for cls in (A, AAAA, SRV)}


def xmpp_server_zone(domain: str, ip: str, port: int, *, direct_tls_port: int | None = None
                     ) -> dict[str, list[Record]]:
    """The records a federating XMPP server publishes: ``_xmpp-server._tcp.domain`` SRV
    pointing at ``ip:port`` (and ``_xmpps-server._tcp`` when given a direct TLS port), plus the
    domain's own A record. Merge several with ``{**zone_a, **zone_b}``."""
    zone: dict[str, list[Record]] = {
        f"_xmpp-server._tcp.{domain}": [SRV(f"{ip}.", port)],
        domain: [A(ip)],
    }
    if direct_tls_port is not None:
        zone[f"_xmpps-server._tcp.{domain}"] = [SRV(f"{ip}.", direct_tls_port)]
    return zone


class TestDNSServer:
    """The server process: ``start()``, ``port``, ``queries``, ``stop()``."""

    __test__ = False  # a helper, not a pytest test class

    def __init__(self, zone: Zone, *, ip: str = "127.0.0.1", start_timeout: float = 15.0
                 ) -> None:
        self.zone = zone
        self.ip = ip
        self.port: int | None = None
        self._queries: list[tuple[str, str]] = []
        self._query_arrived = threading.Condition()
        self._start_timeout = start_timeout
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._errors: list[str] = []

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError("the DNS server is not running")
        return self.ip, self.port

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self._query_arrived:
            return list(self._queries)

    def asked(self, name: str, rtype: str = "SRV", timeout: float = 2.0) -> bool:
        """Whether a query for ``name`` (of type "A", "SRV", ...) arrived, waiting up to
        ``timeout``: the record of a query can trail the answer by a moment."""
        wanted = (_normal(name), rtype)
        with self._query_arrived:
            return self._query_arrived.wait_for(lambda: wanted in self._queries, timeout)

    def start(self) -> None:
        """Start serving the zone on UDP and TCP ``ip:port``, one free port for both."""
        if self._process is not None:
            raise RuntimeError("the DNS server is already running")
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), self.ip],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._process.stdin.write(encode_zone(self.zone) + "\n")
        self._process.stdin.flush()  # stdin stays open: the server exits when it closes
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read_output, args=(ready,), daemon=True)
        self._reader.start()
        if not ready.wait(self._start_timeout) or self.port is None:
            self.stop()
            raise RuntimeError(f"the DNS server did not start:\n{''.join(self._errors)}")

    def stop(self) -> None:
        """Stop the process (closing its stdin ends it; a kill if it lingers)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
            process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join(5)
        self._errors.append(process.stderr.read())
        process.stderr.close()
        self.port = None

    def log(self) -> str:
        """What the server process wrote to stderr (after ``stop()``)."""
        return "".join(self._errors)

    def _read_output(self, ready: threading.Event) -> None:
        for line in self._process.stdout:
            word, _, rest = line.rstrip("\n").partition(" ")
            if word == READY:
                self.port = int(rest)
                ready.set()
            elif word == QUERY:
                name, _, rtype = rest.rpartition(" ")
                with self._query_arrived:
                    self._queries.append((name, rtype))
                    self._query_arrived.notify_all()
        ready.set()  # the process ended

    def __enter__(self) -> TestDNSServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def encode_zone(zone: Zone) -> str:
    """The zone as one line of JSON, the way the server process reads it."""
    return json.dumps([[name, type(record).__name__, asdict(record)]
                       for name, records in zone.items() for record in records])


def decode_zone(text: str) -> dict[str, list[Record]]:
    zone: dict[str, list[Record]] = {}
    for name, kind, fields in json.loads(text):
        zone.setdefault(_normal(name), []).append(_RECORD_TYPES[kind](**fields))
    return zone


def ask(address: tuple[str, int], name: str, rtype: int, *, tcp: bool = False,
        timeout: float = 2.0, recursion_desired: bool = True) -> dns.Message:
    """One query, the plain socket way, over UDP or TCP; for tests that check the server."""
    query = dns.Message(id=int(time.monotonic_ns() & 0xFFFF), recDes=recursion_desired)
    query.queries = [dns.Query(name, rtype, dns.IN)]
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        if tcp:
            payload = query.toStr()
            sock.sendall(struct.pack("!H", len(payload)) + payload)
            length, = struct.unpack("!H", _read_exactly(sock, 2))
            data = _read_exactly(sock, length)
        else:
            sock.send(query.toStr())
            data = sock.recv(65535)
    answer = dns.Message()
    answer.fromStr(data)
    return answer


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the DNS server closed the connection mid-answer")
        data += chunk
    return data


def _normal(name: str | bytes) -> str:
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.lower().rstrip(".")


def _rr_payload(record: Record):
    if isinstance(record, A):
        return dns.A, dns.Record_A(record.address, ttl=TTL)
    if isinstance(record, AAAA):
        return dns.AAAA, dns.Record_AAAA(record.address, ttl=TTL)
    return dns.SRV, dns.Record_SRV(record.priority, record.weight, record.port,
                                   record.target.rstrip(".") or ".", ttl=TTL)


def _ip_literal_records(name: str) -> list[Record]:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return []
    return [A(name) if address.version == 4 else AAAA(name)]


# ---- the server process -------------------------------------------------------------------

def _serve(ip: str, zone: dict[str, list[Record]]) -> None:
    from twisted.internet import defer, reactor
    from twisted.internet.error import CannotListenError
    from twisted.names import common, error, server

    class ZoneResolver(common.ResolverBase):
        """Answers from the zone with the authoritative bit set; NXDOMAIN elsewhere."""

        def _lookup(self, name, cls, rtype, timeout):
            key = _normal(name)
            print(QUERY, key, dns.QUERY_TYPES.get(rtype, str(rtype)), flush=True)
            records = zone.get(key) or _ip_literal_records(key)
            if not records and not any(name.endswith("." + key) for name in zone):
                return defer.fail(error.AuthoritativeDomainError(key))
            answers = []
            for record in records:
                record_type, payload = _rr_payload(record)
                if record_type == rtype or rtype == dns.ALL_RECORDS:
                    answers.append(dns.RRHeader(key, record_type, dns.IN, TTL, payload,
                                                auth=True))
            return defer.succeed((answers, [], []))

    class Factory(server.DNSServerFactory):
        def _responseFromMessage(self, message, *args, **kwargs):
            # RFC 1035 §4.1.1: RD is copied into the response. Erlang's resolver (ejabberd)
            # drops a reply that does not echo it ("unknown"); twisted.names leaves it out.
            response = super()._responseFromMessage(message, *args, **kwargs)
            response.recDes = message.recDes
            return response

        def sendReply(self, protocol, message, address):
            message.auth = True  # we are the authority for all we answer, NXDOMAIN included
            message.recAv = True  # a forwarding resolver (libunbound) wants "recursion"
            super().sendReply(protocol, message, address)

    factory = Factory(authorities=[ZoneResolver()])
    for _attempt in range(20):
        udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface=ip)
        port = udp.getHost().port
        try:
            reactor.listenTCP(port, factory, interface=ip)
        except CannotListenError:
            udp.stopListening()
            continue
        break
    else:
        raise SystemExit("no port free for both UDP and TCP")

    def wait_for_stdin_to_close() -> None:
        sys.stdin.read()
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=wait_for_stdin_to_close, daemon=True).start()
    print(READY, port, flush=True)
    reactor.run()


def main(argv: Iterable[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ip = args[0] if args else "127.0.0.1"
    _serve(ip, decode_zone(sys.stdin.readline()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
