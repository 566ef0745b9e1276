"""Group chat across federation with a real ejabberd 23.01 (mod_muc), both ways.

xmppd (xmppd.example, its MUC service conference.xmppd.example) on 127.0.0.1 and ejabberd
(ejabberd.example, ``mod_muc`` on conference.ejabberd.example) on 127.0.0.3 find each other,
services included, through SRV records of the test DNS server. Both present certificates of
the same test CA naming each domain and its subdomains (no XmppAddr: ejabberd 23.01 crashes
on one); ejabberd has no dialback, so every stream, a service's too, is proven by SASL
EXTERNAL. The scenarios (tests/interop/muc_scenarios.py): ejabberd users find, join and use a
room on xmppd, one invited by the room; an xmppd user makes a room on ejabberd's service and
chats there with an ejabberd user. And blocking across federation
(tests/interop/blocking_scenarios.py): alice blocks her contact bob on ejabberd.
"""

from __future__ import annotations

import re

import pytest

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.interop import muc_scenarios
from tests.interop.blocking_scenarios import a_blocked_remote_contact
from tests.interop.dnsserver import TestDNSServer, xmpp_server_zone
from tests.interop.ejabberd import SKIP_REASON, EjabberdProcess, available, free_port, login
from tests.interop.muc_scenarios import peer_client
from tests.interop.test_ejabberd_federation import cert

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]

XMPPD, EJABBERD = "xmppd.example", "ejabberd.example"
XMPPD_IP, EJABBERD_IP = "127.0.0.1", "127.0.0.3"
OUR_SERVICE, THEIR_SERVICE = f"conference.{XMPPD}", f"conference.{EJABBERD}"


def our_config(xmppd: XmppdProcess, ca_file, dns_port: int) -> str:
    """xmppd's plugins (MUC and blocking on) and [s2s]: peers found through the test DNS
    server."""
    return f"""
[plugins]
enabled = ["disco", "ping", "roster", "presence", "offline", "muc", "blocking"]

[s2s]
listen = ["tcp:{xmppd.s2s_port}:interface={XMPPD_IP}"]
bind_address = "{XMPPD_IP}"
ca_file = "{ca_file}"
default_policy = "verified"
connect_timeout = 3.0
auth_timeout = 5.0
dns_servers = ["127.0.0.1:{dns_port}"]
"""


@pytest.fixture
def servers(tmp_path):
    """The DNS server, xmppd (alice) and ejabberd (bob, carol, mod_muc), started; all stopped
    after the test, xmppd cleanly and without a traceback, every incoming peer proven by its
    certificate."""
    pki = make_test_pki(tmp_path / "pki", [XMPPD, EJABBERD], with_other_names=False)
    xmppd = XmppdProcess(tmp_path / "xmppd", domain=XMPPD, certificate=cert(pki.good[XMPPD]))
    xmppd.ca = pki.ca.ca_path
    ejabberd_s2s_port = free_port(EJABBERD_IP)
    zone = {}
    for domain, ip, port in ((XMPPD, XMPPD_IP, xmppd.s2s_port),
                             (OUR_SERVICE, XMPPD_IP, xmppd.s2s_port),
                             (EJABBERD, EJABBERD_IP, ejabberd_s2s_port),
                             (THEIR_SERVICE, EJABBERD_IP, ejabberd_s2s_port)):
        zone.update(xmpp_server_zone(domain, ip, port))
    dns_server = TestDNSServer(zone)
    dns_server.start()
    xmppd.config.write_text(xmppd.config.read_text()
                            + our_config(xmppd, pki.ca.ca_path, dns_server.port))
    assert xmppd.ctl("adduser", f"alice@{XMPPD}", PASSWORD).returncode == 0
    ejabberd = EjabberdProcess(tmp_path / "ejabberd", EJABBERD, EJABBERD_IP,
                               s2s_port=ejabberd_s2s_port, dns_port=dns_server.port,
                               certificate=cert(pki.good[EJABBERD]), ca_file=pki.ca.ca_path,
                               dialback=False, modules=["mod_muc"])
    try:
        xmppd.start()
        ejabberd.start()
        for user in ("bob", "carol"):
            ejabberd.register(user)
        yield xmppd, ejabberd
    finally:
        ejabberd.stop()
        ejabberd.cleanup()
        code = xmppd.stop()
        dns_server.stop()
    log = xmppd.log()
    assert code == 0 and "Traceback" not in log, log
    proven = re.findall(r"incoming s2s from (\S+) authenticated for \S+ by \S+: (.*)", log)
    assert proven and all("certificate (SASL EXTERNAL)" in how for _, how in proven), log


def test_ejabberd_users_in_a_room_on_xmppd(servers):
    xmppd, ejabberd = servers
    muc_scenarios.peer_users_in_our_room(
        xmppd, lambda user: peer_client(login, ejabberd, user), EJABBERD)
    assert ejabberd.errors() == []


def test_an_xmppd_user_in_a_room_on_ejabberd(servers):
    xmppd, ejabberd = servers
    muc_scenarios.our_user_in_their_room(
        xmppd, lambda user: peer_client(login, ejabberd, user), THEIR_SERVICE)
    assert ejabberd.errors() == []


def test_a_blocked_contact_on_ejabberd(servers):
    xmppd, ejabberd = servers
    a_blocked_remote_contact(xmppd, lambda user: peer_client(login, ejabberd, user))
    assert ejabberd.errors() == []


def test_room_rules_for_ejabberd_users(servers):
    xmppd, ejabberd = servers
    muc_scenarios.room_rules_for_peer_users(
        xmppd, lambda user: peer_client(login, ejabberd, user), EJABBERD)
    assert ejabberd.errors() == []
