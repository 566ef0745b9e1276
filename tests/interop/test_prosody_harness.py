"""The interop harness works: the test DNS server answers as a real one, and a real Prosody
runs on a loopback alias, serves clients, finds its peers through our DNS server or static
routes, and federates with dialback alone or with CA certificates and SASL EXTERNAL.

Two Prosody servers federating with each other prove each configuration before xmppd relies on
it; the Prosody tests skip (with the reason) only where Prosody is not installed.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import pytest
from twisted.names import dns
from twisted.trial import unittest

from tests.certs import make_test_pki
from tests.interop.dnsserver import A, TestDNSServer, ask, xmpp_server_zone
from tests.interop.prosody import SKIP_REASON, ProsodyProcess, available, free_port, login
from xmppd.s2s.srv import S2SResolver, Target

requires_prosody = pytest.mark.skipif(not available(), reason=SKIP_REASON)

A_DOMAIN, B_DOMAIN, XMPPD_DOMAIN = "prosody-a.example", "prosody-b.example", "xmppd-a.example"
PEER_IPS = {A_DOMAIN: "127.0.0.2", B_DOMAIN: "127.0.0.3"}


# ---- loopback aliases ---------------------------------------------------------------------

@pytest.mark.parametrize("ip", ["127.0.0.2", "127.0.0.3"])
def test_loopback_aliases_need_no_setup(ip):
    with socket.socket() as server:
        server.bind((ip, 0))
        server.listen()
        with socket.socket() as client:
            client.bind((ip, 0))  # what "bind outgoing connections to our own address" does
            client.connect(server.getsockname())
            accepted, peer = server.accept()
            accepted.close()
    assert peer[0] == ip


# ---- the DNS server -----------------------------------------------------------------------

@pytest.fixture
def dns_server():
    zone = {**xmpp_server_zone("prosody.example", "127.0.0.2", 5269, direct_tls_port=5270),
            "www.prosody.example": [A("127.0.0.9")]}
    with TestDNSServer(zone) as server:
        yield server


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_server_answers_srv_and_a_authoritatively(dns_server, tcp):
    srv = ask(dns_server.address, "_xmpp-server._tcp.prosody.example", dns.SRV, tcp=tcp)
    assert srv.rCode == dns.OK and srv.auth
    [record] = srv.answers
    assert (record.payload.target.name, record.payload.port) == (b"127.0.0.2", 5269)

    direct = ask(dns_server.address, "_xmpps-server._tcp.PROSODY.example.", dns.SRV, tcp=tcp)
    assert [r.payload.port for r in direct.answers] == [5270]

    address = ask(dns_server.address, "prosody.example", dns.A, tcp=tcp)
    assert [r.payload.dottedQuad() for r in address.answers] == ["127.0.0.2"]
    assert dns_server.asked("prosody.example", "A")
    assert not dns_server.asked("prosody.example", "AAAA", timeout=0)


@pytest.mark.parametrize("recursion_desired", [True, False])
@pytest.mark.parametrize("name", ["_xmpp-server._tcp.prosody.example", "elsewhere.example"])
def test_dns_server_copies_recursion_desired_into_its_answers(dns_server, name,
                                                               recursion_desired):
    """RFC 1035 §4.1.1; Erlang's resolver (ejabberd) drops an answer that does not."""
    answer = ask(dns_server.address, name, dns.SRV, recursion_desired=recursion_desired)
    assert answer.recDes == recursion_desired


def test_dns_server_says_nxdomain_outside_the_zone_and_nodata_where_names_exist(dns_server):
    assert ask(dns_server.address, "elsewhere.example", dns.A).rCode == dns.ENAME
    assert ask(dns_server.address, "_xmpp-server._tcp.elsewhere.example", dns.SRV
               ).rCode == dns.ENAME
    for name, rtype in [("_tcp.prosody.example", dns.SRV),  # an empty non-terminal
                        ("prosody.example", dns.AAAA),  # a name without that type
                        ("example", dns.A)]:
        answer = ask(dns_server.address, name, rtype)
        assert (answer.rCode, answer.answers) == (dns.OK, []), name


def test_dns_server_answers_ip_literal_names_with_themselves(dns_server):
    answer = ask(dns_server.address, "127.0.0.2.", dns.A)
    assert [r.payload.dottedQuad() for r in answer.answers] == ["127.0.0.2"]


def test_dns_server_stops_and_frees_its_port():
    server = TestDNSServer({"a.example": [A("127.0.0.5")]})
    server.start()
    address = server.address
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(address)  # nobody holds it any more


class XmppdResolverAgainstTestDNSTests(unittest.TestCase):
    """xmppd's own SRV resolver, pointed at the test DNS server, finds what the zone says."""

    def setUp(self):
        self.dns_server = TestDNSServer({
            **xmpp_server_zone("prosody.example", "127.0.0.2", 5269, direct_tls_port=5270),
            **xmpp_server_zone(XMPPD_DOMAIN, "127.0.0.1", 15269),
        })
        self.dns_server.start()
        self.addCleanup(self.dns_server.stop)
        self.resolver = S2SResolver(dns_servers=[self.dns_server.address], timeout=(1, 2))

    async def test_srv_targets_in_order(self):
        targets = await self.resolver.resolve("prosody.example")
        self.assertEqual(sorted(targets, key=lambda t: t.port),
                         [Target("127.0.0.2", 5269, direct_tls=False),
                          Target("127.0.0.2", 5270, direct_tls=True)])
        self.assertEqual(await self.resolver.resolve(XMPPD_DOMAIN),
                         [Target("127.0.0.1", 15269, direct_tls=False)])

    async def test_no_srv_falls_back_to_the_domain_on_5269(self):
        self.assertEqual(await self.resolver.resolve("nowhere.example"),
                         [Target("nowhere.example", 5269, direct_tls=False)])


# ---- Prosody ------------------------------------------------------------------------------

@pytest.fixture
def pki(tmp_path):
    return make_test_pki(tmp_path / "pki", ["prosody.example", A_DOMAIN, B_DOMAIN])


@pytest.fixture
def prosodies():
    """Make ProsodyProcess objects with ``prosodies(...)``; all are stopped after the test."""
    made: list[ProsodyProcess] = []

    def make(*args, **kwargs) -> ProsodyProcess:
        made.append(ProsodyProcess(*args, **kwargs))
        return made[-1]

    yield make
    for prosody in made:
        prosody.stop()


def tls_settings(pki, domain: str) -> dict:
    issued = pki.good[domain]
    return {"certificate": (issued.cert_path, issued.key_path), "ca_file": pki.ca.ca_path}


@requires_prosody
def test_prosody_serves_a_client_over_starttls_with_a_ca_signed_certificate(
        tmp_path, pki, prosodies):
    prosody = prosodies(tmp_path / "prosody", "prosody.example", "127.0.0.2",
                        **tls_settings(pki, "prosody.example"))
    prosody.register("alice")
    prosody.start()

    async def scenario():
        client = await login(prosody, "alice")
        try:
            assert str(client.boundjid) == "alice@prosody.example/test"
            assert client.is_connected()
            assert await client.plugin["xep_0199"].ping(jid="prosody.example", timeout=5) >= 0
        finally:
            client.disconnect()
            await asyncio.wait_for(client.disconnected, 5)

    asyncio.run(scenario())
    prosody.wait_for_log(r"TLS handshake complete \(TLSv1\.[23]")  # c2s really used TLS
    assert prosody.stop() == 0
    assert prosody.errors() == []


@requires_prosody
@pytest.mark.parametrize("routing", ["dns", "static"])
def test_prosody_connects_to_a_peer_where_dns_or_a_static_route_says(
        tmp_path, prosodies, routing):
    """The way Prosody will reach xmppd: it opens s2s to our listener at 127.0.0.1:port, from
    its own address, after asking our DNS server (or using the static route)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with TestDNSServer(xmpp_server_zone(XMPPD_DOMAIN, "127.0.0.1", port)) as dns_server:
            routes = {"static_routes": {XMPPD_DOMAIN: ("127.0.0.1", port)}} \
                if routing == "static" else {"dns_port": dns_server.port}
            prosody = prosodies(tmp_path / "prosody", "prosody.example", "127.0.0.2", **routes)
            prosody.register("alice")
            prosody.start()

            async def send_one_message():
                client = await login(prosody, "alice")
                client.send_message(mto=f"bob@{XMPPD_DOMAIN}", mbody="hello")
                await asyncio.sleep(0.2)
                client.disconnect()

            asyncio.run(send_one_message())
            header, peer = read_stream_header(listener)
            asked_srv = dns_server.asked(f"_xmpp-server._tcp.{XMPPD_DOMAIN}", "SRV",
                                         timeout=1 if routing == "dns" else 0)
    assert peer[0] == "127.0.0.2"
    assert re.search(r"""to=['"]xmppd-a\.example['"]""", header)
    assert re.search(r"""from=['"]prosody\.example['"]""", header)
    assert asked_srv == (routing == "dns"), dns_server.queries


def read_stream_header(listener: socket.socket, timeout: float = 10.0) -> tuple[str, tuple]:
    listener.settimeout(timeout)
    connection, peer = listener.accept()
    with connection:
        connection.settimeout(timeout)
        data = b""
        while not re.search(rb"<stream:stream[^>]*>", data):
            chunk = connection.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace"), peer


def federate(a: ProsodyProcess, b: ProsodyProcess, body: str, timeout: float = 15.0):
    """alice@a sends bob@b a chat message; returns the message bob got, or alice's bounce."""

    async def scenario():
        alice = await login(a, "alice")
        bob = await login(b, "bob")
        outcome = asyncio.get_running_loop().create_future()

        def arrived(message) -> None:
            if not outcome.done():
                outcome.set_result(message)

        bob.add_event_handler("message", arrived)
        alice.add_event_handler("message_error", arrived)
        alice.send_message(mto=b.jid("bob"), mbody=body, mtype="chat")
        try:
            return await asyncio.wait_for(outcome, timeout)
        finally:
            alice.disconnect()
            bob.disconnect()

    return asyncio.run(scenario())


def two_prosodies(tmp_path, prosodies, settings: dict[str, dict], *,
                  dns_port: int | None = None, s2s_ports: dict[str, int] | None = None):
    """prosody-a.example on 127.0.0.2 with alice, prosody-b.example on 127.0.0.3 with bob, not
    started; ``settings[domain]`` holds each one's own. They find each other through the DNS
    server at ``dns_port`` (its zone must list ``s2s_ports``) or, without one, through static
    routes."""
    s2s_ports = s2s_ports or {domain: free_port(ip) for domain, ip in PEER_IPS.items()}
    made = []
    for domain, ip in PEER_IPS.items():
        other = B_DOMAIN if domain == A_DOMAIN else A_DOMAIN
        routing = {"dns_port": dns_port} if dns_port is not None else \
            {"static_routes": {other: (PEER_IPS[other], s2s_ports[other])}}
        made.append(prosodies(tmp_path / domain, domain, ip, s2s_port=s2s_ports[domain],
                              **routing, **settings.get(domain, {})))
    a, b = made
    a.register("alice")
    b.register("bob")
    return a, b


@requires_prosody
def test_two_prosodies_federate_with_dialback_and_no_certificates(tmp_path, prosodies):
    """The dialback setting for xmppd's test: no certificate, no TLS on s2s, peers found
    through the test DNS server."""
    s2s_ports = {domain: free_port(ip) for domain, ip in PEER_IPS.items()}
    zone = {**xmpp_server_zone(A_DOMAIN, "127.0.0.2", s2s_ports[A_DOMAIN]),
            **xmpp_server_zone(B_DOMAIN, "127.0.0.3", s2s_ports[B_DOMAIN])}
    with TestDNSServer(zone) as dns_server:
        a, b = two_prosodies(tmp_path, prosodies, {}, dns_port=dns_server.port,
                             s2s_ports=s2s_ports)
        a.start()
        b.start()
        message = federate(a, b, "over dialback")
    assert message["type"] == "chat" and message["body"] == "over dialback"
    assert str(message["from"]) == "alice@prosody-a.example/test"
    b.wait_for_log(r"verified dialback key\.\.\. it is valid")  # b answered a's db:verify
    a.wait_for_log(r"connection prosody-b\.example->prosody-a\.example is now authenticated")
    assert a.stop() == 0 and b.stop() == 0
    assert a.errors() == [] and b.errors() == []


@requires_prosody
def test_two_prosodies_federate_with_ca_certificates_and_sasl_external(
        tmp_path, pki, prosodies):
    """The certificate setting for xmppd's test: CA-signed certificates, s2s_secure_auth, no
    dialback at all, static routes."""
    a, b = two_prosodies(tmp_path, prosodies, {
        domain: {**tls_settings(pki, domain), "dialback": False, "s2s_secure_auth": True}
        for domain in PEER_IPS})
    a.start()
    b.start()
    message = federate(a, b, "over certificates")
    assert message["type"] == "chat" and message["body"] == "over certificates"
    a.wait_for_log(r"SASL EXTERNAL with prosody-b\.example succeeded")
    b.wait_for_log(r"Accepting SASL EXTERNAL identity from prosody-a\.example")
    b.wait_for_log(r"certificate identity validation result: valid")
    assert "dialback" not in a.log() + b.log()


@requires_prosody
def test_prosody_refuses_a_wrong_name_certificate_under_secure_auth(tmp_path, pki, prosodies):
    """What xmppd's trusted-policy test expects of its peer: a certificate for the wrong name
    gets no EXTERNAL, and with dialback off the link fails and the stanza bounces."""
    a, b = two_prosodies(tmp_path, prosodies, {
        A_DOMAIN: {**tls_settings(pki, A_DOMAIN), "dialback": False, "s2s_certificate": (
            pki.wrong_name[A_DOMAIN].cert_path, pki.wrong_name[A_DOMAIN].key_path)},
        B_DOMAIN: {**tls_settings(pki, B_DOMAIN), "dialback": False, "s2s_secure_auth": True},
    })
    a.start()
    b.start()
    started = time.monotonic()
    bounce = federate(a, b, "should not arrive")
    assert bounce["type"] == "error"
    assert bounce["error"]["condition"] in ("remote-server-not-found", "remote-server-timeout")
    assert time.monotonic() - started < 10  # refused at once, not timed out
    b.wait_for_log(r"certificate identity validation result: invalid")
    assert "Accepting SASL EXTERNAL" not in b.log()

