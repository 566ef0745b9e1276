"""Federation found through DNS: SRV records served by a real DNS server on loopback, one peer
reachable only by direct TLS (XEP-0368, _xmpps-server), the other by STARTTLS."""

from __future__ import annotations

import asyncio

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess, free_port
from tests.integration.test_federation import PLUGINS, A, B, chat_across, close
from tests.interop.dnsserver import TestDNSServer, xmpp_server_zone


def test_peers_found_through_srv_with_direct_tls(tmp_path):
    pki = make_test_pki(tmp_path / "pki", [A, B])
    a = XmppdProcess(tmp_path / "a", domain=A,
                     certificate=(pki.good[A].cert_path, pki.good[A].key_path))
    b = XmppdProcess(tmp_path / "b", domain=B,
                     certificate=(pki.good[B].cert_path, pki.good[B].key_path))
    a_direct = free_port()
    # a.example publishes only _xmpps-server (its STARTTLS port is not in DNS at all);
    # b.example publishes _xmpp-server (STARTTLS).
    zone = {**xmpp_server_zone(A, "127.0.0.1", a.s2s_port, direct_tls_port=a_direct),
            **xmpp_server_zone(B, "127.0.0.1", b.s2s_port)}
    del zone[f"_xmpp-server._tcp.{A}"]
    with TestDNSServer(zone) as dns:
        for proc, direct in ((a, f'direct_tls = ["tcp:{a_direct}:interface=127.0.0.1"]\n'),
                             (b, "")):
            proc.config.write_text(proc.config.read_text() + PLUGINS + (
                f'[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]\n{direct}'
                f'dns_servers = ["127.0.0.1:{dns.port}"]\nca_file = "{pki.ca.ca_path}"\n'
                'default_policy = "trusted"\nconnect_timeout = 3.0\nauth_timeout = 5.0\n'
                'bidi = false\n'))  # each side must look the other up
            proc.ca = pki.ca.ca_path
            proc.client_hostname_check = True
        assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
        assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
        a.start()
        b.start()
        try:
            async def scenario():
                clients = await chat_across(a, b)
                await close(*clients)

            asyncio.run(scenario())
            assert dns.asked(f"_xmpps-server._tcp.{A}")
            assert dns.asked(f"_xmpp-server._tcp.{B}")
        finally:
            assert a.stop() == 0, a.log()
            assert b.stop() == 0, b.log()
    assert f"outgoing s2s to {A} from {B} authenticated by certificate" in b.log()
    assert "Traceback" not in a.log() + b.log()
