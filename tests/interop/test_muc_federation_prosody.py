"""Group chat across federation with a real Prosody 0.12, both ways.

xmppd (xmppd.example, its MUC service conference.xmppd.example) on 127.0.0.1 and Prosody
(prosody.example, with ``Component "conference.prosody.example" "muc"``) on 127.0.0.2 reach
each other by static routes. Twice: with certificates from the same test CA that name each
domain and its subdomains (the services authenticate by SASL EXTERNAL like the hosts), and
without any TLS, dialback alone proving each service's domain. Every user is a slixmpp client
with its XEP-0045 plugin (the scenarios are in tests/interop/muc_scenarios.py).

On xmppd's service: bob@prosody.example finds alice's public room in the service's
disco#items and its features in disco#info, joins it and chats with alice (on xmppd) both
ways, gets alice's private message, changes nick and leaves; alice invites carol@prosody.example
(a mediated invitation), who gets it from the room and joins. On Prosody's service: alice
creates a room, finds it in the service's disco#items, bob joins it, and they chat both ways
and privately.
"""

from __future__ import annotations

import re

import pytest

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.interop import muc_scenarios
from tests.interop.muc_scenarios import peer_client
from tests.interop.prosody import SKIP_REASON, ProsodyProcess, available, free_port, login
from tests.interop.test_prosody_federation import cert

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]

XMPPD, PROSODY = "xmppd.example", "prosody.example"
XMPPD_IP, PROSODY_IP = "127.0.0.1", "127.0.0.2"
OUR_SERVICE, THEIR_SERVICE = f"conference.{XMPPD}", f"conference.{PROSODY}"


def our_config(xmppd: XmppdProcess, ca_file, prosody_s2s_port: int) -> str:
    """xmppd's plugins (MUC and blocking on) and [s2s]: Prosody and its MUC service by
    static routes."""
    route = f"{PROSODY_IP}:{prosody_s2s_port}"
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

[s2s.hosts]
"{PROSODY}" = "{route}"
"{THEIR_SERVICE}" = "{route}"
"""


@pytest.fixture(params=["certificates", "dialback"])
def servers(tmp_path, request):
    """xmppd (alice) and Prosody (bob, carol, and a MUC component), both started; both
    stopped after the test, xmppd cleanly and without a traceback."""
    pki = make_test_pki(tmp_path / "pki", [XMPPD, PROSODY])
    xmppd = XmppdProcess(tmp_path / "xmppd", domain=XMPPD, certificate=cert(pki.good[XMPPD]))
    xmppd.ca = pki.ca.ca_path
    tls = request.param == "certificates"  # else Prosody has no certificate, hence no TLS
    prosody_s2s_port = free_port(PROSODY_IP)
    xmppd.config.write_text(xmppd.config.read_text()
                            + our_config(xmppd, pki.ca.ca_path, prosody_s2s_port))
    ours = (XMPPD_IP, xmppd.s2s_port)
    prosody = ProsodyProcess(
        tmp_path / "prosody", PROSODY, PROSODY_IP, s2s_port=prosody_s2s_port, s2s_timeout=5,
        certificate=cert(pki.good[PROSODY]) if tls else None, ca_file=pki.ca.ca_path,
        static_routes={XMPPD: ours, OUR_SERVICE: ours},
        extra_config=f'Component "{THEIR_SERVICE}" "muc"\n\tmodules_enabled = {{ }}')
    assert xmppd.ctl("adduser", f"alice@{XMPPD}", PASSWORD).returncode == 0
    for user in ("bob", "carol"):
        prosody.register(user)
    xmppd.start()
    try:
        prosody.start()
        yield xmppd, prosody
    finally:
        prosody.stop()
        assert xmppd.stop() == 0, xmppd.log()
    log = xmppd.log()
    assert "Traceback" not in log, log
    proof = "certificate (SASL EXTERNAL)" if tls else "dialback"
    proven = re.findall(r"incoming s2s from (\S+) authenticated for \S+ by \S+: (.*)", log)
    assert proven and all(proof in how for _, how in proven), log


def test_prosody_users_in_a_room_on_xmppd(servers):
    xmppd, prosody = servers
    muc_scenarios.peer_users_in_our_room(
        xmppd, lambda user: peer_client(login, prosody, user), PROSODY)
    assert prosody.errors() == []


def test_an_xmppd_user_in_a_room_on_prosody(servers):
    xmppd, prosody = servers
    muc_scenarios.our_user_in_their_room(
        xmppd, lambda user: peer_client(login, prosody, user), THEIR_SERVICE)
    assert prosody.errors() == []


def test_room_rules_for_prosody_users(servers):
    xmppd, prosody = servers
    muc_scenarios.room_rules_for_peer_users(
        xmppd, lambda user: peer_client(login, prosody, user), PROSODY)
    assert prosody.errors() == []
