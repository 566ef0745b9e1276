"""SRV resolution for s2s: order, weights, ".", static routes, fallback; and a real DNS server."""

from __future__ import annotations

import random

import pytest
from twisted.internet import defer, reactor
from twisted.names import authority, dns, error, server
from twisted.trial import unittest

from tests.helpers import sync
from xmppd.s2s.srv import (
    S2SResolver,
    SRVRecord,
    Target,
    weighted_order,
)

TIMEOUT = (1, 2)


class FakeDNS:
    """Answers lookupService from a dict: name -> [(priority, weight, port, target)] or an
    exception; unknown names are NXDOMAIN. Records every query."""

    def __init__(self, zone: dict):
        self.zone = zone
        self.queries: list[tuple[str, tuple]] = []

    def lookupService(self, name, timeout=None):
        self.queries.append((name, timeout))
        entry = self.zone.get(name, error.DNSNameError(name))
        if isinstance(entry, Exception):
            return defer.fail(entry)
        answers = [record if isinstance(record, dns.RRHeader) else _srv(name, *record)
                   for record in entry]
        return defer.succeed((answers, [], []))


def _srv(name: str, priority: int, weight: int, port: int, target: str) -> dns.RRHeader:
    return dns.RRHeader(name, dns.SRV,
                        payload=dns.Record_SRV(priority, weight, port, target.encode("ascii")))


class ScriptedRandom:
    """randint that returns scripted draws and remembers the ranges it was asked for."""

    def __init__(self, *draws: int):
        self.draws = list(draws)
        self.asked: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.asked.append((a, b))
        return self.draws.pop(0)


def resolve(zone: dict, domain: str = "example.org", rng=None, **kwargs):
    fake = FakeDNS(zone)
    resolver = S2SResolver(resolver=fake, rng=rng or ScriptedRandom(*[0] * 20),
                           timeout=TIMEOUT, **kwargs)
    return sync(resolver.resolve(domain)), fake


TLS = "_xmpps-server._tcp.example.org"
STARTTLS = "_xmpp-server._tcp.example.org"


# --------------------------------------------------------------------------- fallback


def test_no_srv_records_falls_back_to_domain_port_5269():
    targets, fake = resolve({})
    assert targets == [Target("example.org", 5269, direct_tls=False)]
    assert fake.queries == [(TLS, TIMEOUT), (STARTTLS, TIMEOUT)]


def test_failed_lookups_count_as_absent():
    targets, _ = resolve({TLS: error.DNSQueryTimeoutError(TLS),
                          STARTTLS: error.DNSServerError(STARTTLS)})
    assert targets == [Target("example.org", 5269, False)]


def test_failed_direct_tls_lookup_keeps_the_starttls_records():
    targets, _ = resolve({TLS: error.DNSServerError(TLS),
                          STARTTLS: [(0, 0, 5269, "xmpp.example.org.")]})
    assert targets == [Target("xmpp.example.org", 5269, False)]


def test_an_unexpected_error_is_not_hidden():
    with pytest.raises(RuntimeError, match="bug"):
        resolve({TLS: RuntimeError("bug")})[0].raiseException()


def test_answers_that_are_not_srv_are_ignored():
    cname = dns.RRHeader(STARTTLS, dns.CNAME, payload=dns.Record_CNAME("elsewhere.example."))
    targets, _ = resolve({STARTTLS: [cname]})
    assert targets == [Target("example.org", 5269, False)]


# --------------------------------------------------------------------------- order


def test_starttls_records_only():
    targets, _ = resolve({STARTTLS: [(10, 0, 5269, "127.0.0.2.")]})
    assert targets == [Target("127.0.0.2", 5269, direct_tls=False)]


def test_both_services_are_merged_by_priority():
    targets, _ = resolve({
        TLS: [(20, 0, 5270, "tls-b.example."), (5, 0, 5270, "tls-a.example.")],
        STARTTLS: [(10, 0, 5269, "plain-a.example."), (30, 0, 5269, "plain-b.example.")],
    })
    assert targets == [Target("tls-a.example", 5270, True),
                       Target("plain-a.example", 5269, False),
                       Target("tls-b.example", 5270, True),
                       Target("plain-b.example", 5269, False)]


def test_weights_pick_by_running_sum_with_zero_weights_first_in_line():
    # One priority: a(10), b(20) from STARTTLS, z(0) from direct TLS.
    rng = ScriptedRandom(15, 0, 3)
    targets, _ = resolve({
        TLS: [(1, 0, 5270, "z.example.")],
        STARTTLS: [(1, 10, 5269, "a.example."), (1, 20, 5269, "b.example.")],
    }, rng=rng)
    # Line-up z(0) a(10) b(20): running sums 0, 10, 30. Draw 15 -> b; then z(0) a(10):
    # draw 0 -> z; then a alone.
    assert [t.host for t in targets] == ["b.example", "z.example", "a.example"]
    assert rng.asked == [(0, 30), (0, 10), (0, 10)]


def test_weights_only_shuffle_within_a_priority():
    rng = ScriptedRandom(0, 0, 0, 0)
    targets, _ = resolve({STARTTLS: [(2, 50, 1, "low.example."), (1, 1, 2, "high-1.example."),
                                     (1, 1, 3, "high-2.example.")]}, rng=rng)
    assert [t.host for t in targets] == ["high-1.example", "high-2.example", "low.example"]
    assert rng.asked == [(0, 2), (0, 1), (0, 50)]


def test_weighted_order_follows_the_weights_statistically():
    heavy = SRVRecord(0, 300, 1, "heavy", False)
    light = SRVRecord(0, 100, 1, "light", False)
    rng = random.Random(6120)
    firsts = [weighted_order([light, heavy], rng)[0] for _ in range(4000)]
    share = firsts.count(heavy) / len(firsts)
    assert 0.72 < share < 0.78  # 300 / 400 expected


def test_zero_weight_record_is_rarely_first_among_weighted_ones():
    zero = SRVRecord(0, 0, 1, "zero", False)
    one = SRVRecord(0, 1000, 1, "one", False)
    rng = random.Random(2782)
    firsts = [weighted_order([one, zero], rng)[0] for _ in range(2000)]
    assert firsts.count(zero) < 20  # only a draw of exactly 0 picks it


# --------------------------------------------------------------------------- "."


def test_dot_for_starttls_means_no_service_and_no_fallback():
    targets, _ = resolve({STARTTLS: [(0, 0, 0, ".")]})
    assert targets == []


def test_dot_for_direct_tls_keeps_starttls_records():
    targets, _ = resolve({TLS: [(0, 0, 0, ".")], STARTTLS: [(0, 0, 5269, "xmpp.example.")]})
    assert targets == [Target("xmpp.example", 5269, False)]


def test_dot_for_direct_tls_alone_forbids_the_fallback():
    # XEP-0368 §3: the domain uses SRV, so no A/AAAA guess.
    targets, _ = resolve({TLS: [(0, 0, 0, ".")]})
    assert targets == []


def test_dot_for_both_services():
    targets, _ = resolve({TLS: [(0, 0, 0, ".")], STARTTLS: [(0, 0, 0, ".")]})
    assert targets == []


def test_dot_beside_real_records_is_just_skipped():
    targets, _ = resolve({STARTTLS: [(0, 0, 0, "."), (5, 0, 5269, "xmpp.example.")]})
    assert targets == [Target("xmpp.example", 5269, False)]


# --------------------------------------------------------------------------- static routes


def test_static_route_wins_and_skips_dns():
    targets, fake = resolve({STARTTLS: [(0, 0, 5269, "xmpp.example.")]}, domain="example.org",
                            static_hosts={"example.org": ("127.0.0.2", 5299)})
    assert targets == [Target("127.0.0.2", 5299, False)]
    assert fake.queries == []


def test_static_routes_are_matched_case_insensitively_and_without_trailing_dot():
    targets, _ = resolve({}, domain="Example.ORG.",
                         static_hosts={"EXAMPLE.org": ("127.0.0.2", 5269)})
    assert targets == [Target("127.0.0.2", 5269, False)]


def test_static_route_for_an_idn_domain():
    targets, _ = resolve({}, domain="xn--bcher-kva.example",
                         static_hosts={"bücher.example": ("127.0.0.2", 5269)})
    assert targets == [Target("127.0.0.2", 5269, False)]


@pytest.mark.parametrize("route, target", [
    ("127.0.0.2:5270", Target("127.0.0.2", 5270, False)),
    ("[::1]:5269", Target("::1", 5269, False)),
    ("xmpp.example.net:5269", Target("xmpp.example.net", 5269, False)),
])
def test_static_routes_as_text(route, target):
    targets, _ = resolve({}, domain="example.net", static_hosts={"example.net": route})
    assert targets == [target]


@pytest.mark.parametrize("route", [("127.0.0.2", 0), ("127.0.0.2", 70000), ("", 5269),
                                   ("127.0.0.2", "5269"), "127.0.0.2", "127.0.0.2:http"])
def test_bad_static_route_is_refused_at_start(route):
    with pytest.raises(ValueError, match="static s2s route for 'example.net'"):
        S2SResolver(resolver=FakeDNS({}), static_hosts={"example.net": route})


def test_other_domains_still_use_dns():
    targets, fake = resolve({STARTTLS: [(0, 0, 5269, "xmpp.example.")]}, domain="example.org",
                            static_hosts={"example.net": ("127.0.0.2", 5269)})
    assert targets == [Target("xmpp.example", 5269, False)]


# --------------------------------------------------------------------------- names


def test_idn_domain_is_looked_up_by_its_a_label():
    _, fake = resolve({}, domain="bücher.example")
    assert [q for q, _ in fake.queries] == ["_xmpps-server._tcp.xn--bcher-kva.example",
                                            "_xmpp-server._tcp.xn--bcher-kva.example"]


@pytest.mark.parametrize("domain, host", [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1")])
def test_ip_literal_domain_needs_no_dns(domain, host):
    targets, fake = resolve({}, domain=domain)
    assert targets == [Target(host, 5269, False)]
    assert fake.queries == []


@pytest.mark.parametrize("domain", ["", ".", "a b.example", "a..example", "x" * 64 + ".example",
                                    "user@example.org", "bad_idn\u2028.example"])
def test_nonsense_domain_fails_with_value_error(domain):
    failure, fake = resolve({}, domain=domain)
    assert failure.check(ValueError)
    assert "not a domain name" in failure.getErrorMessage()
    assert fake.queries == []


# --------------------------------------------------------------------------- a real DNS server


class MemoryAuthority(authority.FileAuthority):
    """A zone held in memory (FileAuthority does the answering; we only fill its tables)."""

    def __init__(self, origin: bytes, records: dict[bytes, list]):
        self._zone = (origin, records)
        super().__init__(None)

    def loadFile(self, filename) -> None:
        origin, records = self._zone
        soa = dns.Record_SOA(mname=b"ns." + origin, rname=b"hostmaster." + origin, serial=1,
                             refresh=60, retry=60, expire=60, minimum=60, ttl=60)
        self.soa = (origin, soa)
        self.records = {origin: [soa]}
        for name, rrs in records.items():
            self.records.setdefault(name.lower(), []).extend(rrs)


class RealDNSServerTests(unittest.TestCase):
    """The real path: twisted.names client -> UDP on loopback -> twisted.names server."""

    def setUp(self):
        zone = MemoryAuthority(b"example.org", {
            b"_xmpp-server._tcp.example.org": [
                dns.Record_SRV(10, 60, 5269, b"127.0.0.2.", ttl=60),
                dns.Record_SRV(10, 0, 5279, b"127.0.0.4.", ttl=60),
                dns.Record_SRV(20, 0, 5269, b"127.0.0.5.", ttl=60),
            ],
            b"_xmpps-server._tcp.example.org": [dns.Record_SRV(5, 0, 5270, b"127.0.0.3.",
                                                               ttl=60)],
            b"_xmpps-server._tcp.nodirect.example.org": [dns.Record_SRV(0, 0, 0, b".",
                                                                        ttl=60)],
            b"_xmpp-server._tcp.nodirect.example.org": [dns.Record_SRV(0, 0, 5269,
                                                                       b"127.0.0.6.", ttl=60)],
            b"_xmpp-server._tcp.closed.example.org": [dns.Record_SRV(0, 0, 0, b".", ttl=60)],
        })
        factory = server.DNSServerFactory(authorities=[zone])
        self.port = reactor.listenUDP(0, dns.DNSDatagramProtocol(controller=factory),
                                      interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        address = ("127.0.0.1", self.port.getHost().port)
        self.resolver = S2SResolver([address], {"static.example": ("127.0.0.9", 5269)},
                                    reactor, rng=ScriptedRandom(*[0] * 10), timeout=(2,))

    @defer.inlineCallbacks
    def test_srv_records_from_a_dns_server(self):
        targets = yield self.resolver.resolve("example.org")
        self.assertEqual(targets, [Target("127.0.0.3", 5270, True),
                                   Target("127.0.0.4", 5279, False),
                                   Target("127.0.0.2", 5269, False),
                                   Target("127.0.0.5", 5269, False)])

    @defer.inlineCallbacks
    def test_dot_from_a_dns_server(self):
        self.assertEqual((yield self.resolver.resolve("nodirect.example.org")),
                         [Target("127.0.0.6", 5269, False)])
        self.assertEqual((yield self.resolver.resolve("closed.example.org")), [])

    @defer.inlineCallbacks
    def test_nxdomain_from_a_dns_server_falls_back(self):
        targets = yield self.resolver.resolve("nothing.example.org")
        self.assertEqual(targets, [Target("nothing.example.org", 5269, False)])

    @defer.inlineCallbacks
    def test_static_route_beside_a_dns_server(self):
        self.assertEqual((yield self.resolver.resolve("static.example")),
                         [Target("127.0.0.9", 5269, False)])
