"""Where to connect for a peer domain: RFC 6120 §3.2 with XEP-0368 direct TLS, via twisted.names.

Order of precedence:

1. a static route from ``[s2s.hosts]`` (tests, private deployments): only that, no DNS;
2. SRV ``_xmpps-server._tcp.<domain>`` (direct TLS) and ``_xmpp-server._tcp.<domain>``
   (STARTTLS), merged into one list as XEP-0368 §3 asks: sorted by priority, and within a
   priority in RFC 2782's weighted random order;
3. if neither name has any SRV record: ``<domain>:5269`` with STARTTLS (RFC 6120 §3.2.2).

A lone target of "." means "decidedly not available" (RFC 2782). It removes that service; and
as soon as either service published anything, even just ".", there is no A/AAAA fallback
(RFC 6120 §3.2.1 step 4, XEP-0368 §3). An empty list therefore means: this domain offers no
server-to-server service, refuse with remote-server-not-found.

Targets are host names (or IP literals) with ports: their A/AAAA look-up happens when
connecting (e.g. with a HostnameEndpoint), not here, so that address selection and connection
attempts (RFC 8305) stay with the code that connects.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import idna
from twisted.internet import defer
from twisted.names import client, dns, error
from twisted.python.failure import Failure

from xmppd.logs import get_logger

log = get_logger(__name__)

XMPP_SERVER_PORT = 5269  # RFC 6120 §14.7
DIRECT_TLS_SERVICE = "_xmpps-server._tcp."
STARTTLS_SERVICE = "_xmpp-server._tcp."
DEFAULT_TIMEOUT = (1, 3, 5)  # seconds per retry; a peer waiting on us gives up in ~10 s

# Answers that mean "no such record" or "could not find out": both lead to the fallback.
_LOOKUP_FAILURES = (error.DomainError, error.DNSNameError, error.DNSServerError,
                    error.DNSFormatError, error.DNSNotImplementedError,
                    error.DNSQueryRefusedError, error.DNSUnknownError, error.ResolverError,
                    defer.TimeoutError, OSError)


@dataclass(frozen=True)
class Target:
    """One place to try: connect to host:port, with TLS at once or with STARTTLS."""

    host: str
    port: int
    direct_tls: bool


@dataclass(frozen=True)
class SRVRecord:
    """The parts of an SRV answer we use, already tagged with its service's TLS mode."""

    priority: int
    weight: int
    port: int
    host: str
    direct_tls: bool

    @property
    def target(self) -> Target:
        return Target(self.host, self.port, self.direct_tls)


@dataclass(frozen=True)
class ServiceAnswer:
    """What one SRV name said: nothing at all, "." (not available), or records."""

    published: bool
    records: tuple[SRVRecord, ...] = ()


class RandomSource(Protocol):
    """The part of ``random.Random`` the weighted order needs (injected in tests)."""

    def randint(self, a: int, b: int) -> int: ...


class SRVLookup(Protocol):
    """The part of twisted.names' IResolver we use."""

    def lookupService(self, name: str, timeout: Sequence[int] | None = None
                      ) -> defer.Deferred: ...


class S2SResolver:
    """Resolves peer domains to an ordered list of connection targets."""

    def __init__(self, dns_servers: Sequence[tuple[str, int]] | None = None,
                 static_hosts: Mapping[str, tuple[str, int] | str] | None = None,
                 reactor=None, *, resolver: SRVLookup | None = None,
                 rng: RandomSource | None = None,
                 timeout: Sequence[int] = DEFAULT_TIMEOUT) -> None:
        """``dns_servers`` (the ``[s2s] dns_servers`` list) are asked exclusively; without
        them the system resolver (/etc/resolv.conf) is used. ``resolver`` replaces both (tests).

        A client.Resolver of our own, not createResolver(): that one also reads /etc/hosts,
        keeps a cache with its own timers, and asks resolv.conf's servers besides ours.
        """
        self._static = {_dns_name(domain): _checked_route(domain, route)
                        for domain, route in (static_hosts or {}).items()}
        if resolver is None:  # the system resolver is process-wide, on the global reactor
            resolver = (client.Resolver(servers=list(dns_servers), reactor=reactor)
                        if dns_servers else client.getResolver())
        self._resolver = resolver
        self._rng = rng if rng is not None else random.Random()
        self._timeout = tuple(timeout)

    def resolve(self, domain: str) -> defer.Deferred:
        """Deferred firing the ordered list of Targets; [] means "no s2s service there".

        DNS failures (NXDOMAIN, SERVFAIL, time-outs) are not errors: they count as "no record"
        and lead to the fallback. Fails with ValueError if ``domain`` is not a domain name or
        IP literal.
        """
        try:
            name = _dns_name(domain)
        except ValueError as problem:
            return defer.fail(problem)
        if name in self._static:
            host, port = self._static[name]
            return defer.succeed([Target(host, port, direct_tls=False)])
        if _is_ip_literal(name):
            return defer.succeed([Target(name, XMPP_SERVER_PORT, direct_tls=False)])
        lookups = [self._lookup(DIRECT_TLS_SERVICE + name, direct_tls=True),
                   self._lookup(STARTTLS_SERVICE + name, direct_tls=False)]
        gathered = defer.gatherResults(lookups, consumeErrors=True)
        gathered.addCallback(self._targets, name)
        gathered.addErrback(lambda failure: failure.value.subFailure)  # unwrap FirstError
        return gathered

    def _lookup(self, name: str, direct_tls: bool) -> defer.Deferred:
        d = self._resolver.lookupService(name, timeout=self._timeout)
        d.addCallbacks(lambda result: _service_answer(result[0], direct_tls),
                       self._lookup_failed, errbackArgs=(name,))
        return d

    def _lookup_failed(self, failure: Failure, name: str) -> ServiceAnswer:
        failure.trap(*_LOOKUP_FAILURES)
        if not failure.check(error.DNSNameError, error.DomainError):
            log.info("SRV look-up of {name} failed ({problem}); treating it as absent",
                     name=name, problem=failure.getErrorMessage() or failure.type.__name__)
        return ServiceAnswer(published=False)

    def _targets(self, answers: list[ServiceAnswer], name: str) -> list[Target]:
        if not any(answer.published for answer in answers):
            return [Target(name, XMPP_SERVER_PORT, direct_tls=False)]
        records = [record for answer in answers for record in answer.records]
        return [record.target for record in weighted_order(records, self._rng)]


def weighted_order(records: Iterable[SRVRecord], rng: RandomSource) -> list[SRVRecord]:
    """RFC 2782's order: ascending priority; within one priority, repeatedly pick a record with
    probability proportional to its weight (weight-0 records first in line, so they are
    chosen only by a draw of 0 or when nothing else is left)."""
    ordered: list[SRVRecord] = []
    remaining = list(records)
    for priority in sorted({r.priority for r in remaining}):
        group = sorted((r for r in remaining if r.priority == priority),
                       key=lambda r: r.weight != 0)
        while group:
            draw = rng.randint(0, sum(r.weight for r in group))
            ordered.append(group.pop(_first_reaching(group, draw)))
    return ordered


def _first_reaching(group: Sequence[SRVRecord], draw: int) -> int:
    """The index of the first record whose running weight sum reaches ``draw``."""
    running = 0
    for index, record in enumerate(group):
        running += record.weight
        if running >= draw:
            return index
    return len(group) - 1  # only if rng drew beyond the total


def _service_answer(answers: Sequence[dns.RRHeader], direct_tls: bool) -> ServiceAnswer:
    """Turn SRV answers into records; only "." answers mean published-but-unavailable."""
    records = []
    for rr in answers:
        if rr.type != dns.SRV:
            continue
        host = rr.payload.target.name.decode("ascii", "replace").rstrip(".")
        if host:  # "." is not a target
            records.append(SRVRecord(rr.payload.priority, rr.payload.weight, rr.payload.port,
                                     host, direct_tls))
    published = any(rr.type == dns.SRV for rr in answers)
    return ServiceAnswer(published=published, records=tuple(records))


def _dns_name(domain: str) -> str:
    """The domain as DNS wants it: lower-case A-labels, no trailing dot; IP literals as is."""
    name = domain.strip().removesuffix(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]  # RFC 7622 §3.2: an IPv6 domainpart is bracketed
    if _is_ip_literal(name):
        return name
    try:
        ascii_name = name.lower() if name.isascii() else idna.encode(name, uts46=True).decode()
    except (idna.IDNAError, UnicodeError):
        ascii_name = ""
    labels = ascii_name.split(".")
    if not ascii_name or not all(0 < len(label) <= 63 for label in labels) \
            or any(c.isspace() or c in "/\\@" for c in ascii_name):
        raise ValueError(f"cannot resolve {domain!r}: not a domain name")
    return ascii_name


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _checked_route(domain: str, route: tuple[str, int] | str) -> tuple[str, int]:
    """A static route as (host, port); "host:port" and "[v6]:port" text is accepted too."""
    if isinstance(route, str):
        host, _, port_text = route.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        port = int(port_text) if port_text.isdigit() else -1
    else:
        host, port = route
    if not host or type(port) is not int or not 0 < port < 65536:
        raise ValueError(f"static s2s route for {domain!r}: {route!r} is not host:port")
    return host, port
