"""The dns area: can clients and servers find every domain and subdomain we serve?

Through twisted.names with the ``[s2s] dns_servers`` (or ``--dns``), else the system
resolver. Per domain and service: the SRV record (RFC 6120 §3.2.1, XEP-0368), its targets'
A/AAAA records and ports against our listeners; without SRV, the fallback (the domain's own
A/AAAA at the default port) and whether we listen there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twisted.internet import defer
from twisted.names import client, dns, error

from xmppd.check.findings import ERROR, NOTE, OK, WARN, Finding
from xmppd.check.listeners import DEFAULT_PORTS, SRV_SERVICES, Listener

AREA = "dns"
TIMEOUT = (2, 4)
ABSENT = (error.DNSNameError, error.DomainError)  # NXDOMAIN, or no records of the type


@dataclass(frozen=True)
class Advertised:
    """Where DNS sends a client or server for ``domain``: checked by the connectivity area."""

    kind: str
    domain: str
    host: str
    address: str
    port: int


def make_resolver(servers: Sequence[tuple[str, int]], reactor=None):
    """A twisted.names resolver asking only ``servers``, or the system's (resolv.conf)."""
    if servers:
        return client.Resolver(servers=list(servers), reactor=reactor)
    return client.Resolver(resolv="/etc/resolv.conf", reactor=reactor)


class DNSCheck:
    def __init__(self, resolver, listeners: list[Listener]) -> None:
        self.resolver = resolver
        self.listeners = listeners
        self.findings: list[Finding] = []
        self.advertised: list[Advertised] = []
        self.unanswered = False  # the DNS server failed: no point asking it the rest

    async def run(self, hosts: Sequence[str], services: Sequence[str]) -> list[Finding]:
        kinds = sorted({listener.kind for listener in self.listeners})
        for domain in [*hosts, *services]:
            for kind in kinds:
                if kind.startswith("c2s") and domain not in hosts:
                    continue  # clients log in to hosts; services are reached through s2s
                await self.service(domain, kind)
                if self.unanswered:
                    return self.findings  # one line says it; every other record would too
        return self.findings

    async def service(self, domain: str, kind: str) -> None:
        name = SRV_SERVICES[kind] + domain
        ports = {listener.port for listener in self.listeners if listener.kind == kind}
        try:
            records = await self.srv(name)
        except DNSTrouble as trouble:
            self.add(ERROR, f"{name}: {trouble}; the other look-ups were not tried")
            self.unanswered = True
            return
        if not records:
            await self.no_srv(domain, kind, name, ports)
            return
        if [r for r in records if r.target.name == b""]:
            self.add(WARN, f"{name}: SRV says there is no such service (target \".\"), but "
                           f"we listen for {kind} on port {', '.join(map(str, sorted(ports)))}")
            return
        for record in records:
            target, port = record.target.name.decode(), record.port
            addresses = await self.addresses(target)
            where = f"{name} → {target}:{port}"
            if not addresses:
                self.add(ERROR, f"{where}: {target} has no A or AAAA record")
                continue
            if port not in ports:
                self.add(WARN, f"{where}: we listen for {kind} on port "
                               f"{', '.join(map(str, sorted(ports)))}, not {port}")
            else:
                self.add(OK, f"{where} ({', '.join(addresses)})")
            self.advertised += [Advertised(kind, domain, target, a, port) for a in addresses]

    async def no_srv(self, domain: str, kind: str, name: str, ports: set[int]) -> None:
        if kind.endswith("-tls"):
            self.add(NOTE, f"{name}: no SRV record; direct TLS (XEP-0368) is not advertised, "
                           f"peers use STARTTLS")
            return
        default = DEFAULT_PORTS[kind]
        addresses = await self.addresses(domain)
        if not addresses:
            self.add(ERROR, f"{name}: no SRV record, and {domain} has no A or AAAA record to "
                            f"fall back to: nobody can find {kind} for {domain}")
            return
        if default not in ports:
            self.add(ERROR, f"{name}: no SRV record, so peers try {domain}:{default}, but we "
                            f"listen for {kind} on {', '.join(map(str, sorted(ports)))}")
            return
        self.add(NOTE, f"{name}: no SRV record; peers fall back to {domain}:{default} "
                       f"({', '.join(addresses)})")
        self.advertised += [Advertised(kind, domain, domain, a, default) for a in addresses]

    async def srv(self, name: str) -> list:
        try:
            answers, _authority, _additional = await self.resolver.lookupService(
                name, timeout=TIMEOUT)
        except ABSENT:
            return []
        except (error.DNSServerError, error.DNSQueryTimeoutError, defer.TimeoutError,
                error.DNSQueryRefusedError) as problem:
            raise DNSTrouble(_describe(problem)) from None
        return sorted((a.payload for a in answers if a.type == dns.SRV),
                      key=lambda r: (r.priority, -r.weight))

    async def addresses(self, name: str) -> list[str]:
        """The A and AAAA addresses of ``name`` (an IP literal is its own)."""
        found = []
        for lookup, rtype in ((self.resolver.lookupAddress, dns.A),
                              (self.resolver.lookupIPV6Address, dns.AAAA)):
            try:
                answers, _authority, _additional = await lookup(name, timeout=TIMEOUT)
            except (*ABSENT, error.DNSServerError, error.DNSQueryTimeoutError,
                    defer.TimeoutError, error.DNSQueryRefusedError):
                continue
            found += [a.payload.dottedQuad() if rtype == dns.A else _ipv6(a.payload)
                      for a in answers if a.type == rtype]
        return found

    def add(self, level: str, text: str) -> None:
        self.findings.append(Finding(level, AREA, text))


class DNSTrouble(Exception):
    """The DNS server failed or did not answer (unlike NXDOMAIN, which is an answer)."""


def _describe(problem: Exception) -> str:
    if isinstance(problem, (error.DNSQueryTimeoutError, defer.TimeoutError)):
        return "the DNS server did not answer"
    return f"the DNS server failed ({type(problem).__name__})"


def _ipv6(record) -> str:
    import socket

    return socket.inet_ntop(socket.AF_INET6, record.address)
