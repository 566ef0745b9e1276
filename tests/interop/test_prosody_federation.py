"""xmppd federates with a real Prosody 0.12: dialback, certificates with SASL EXTERNAL, refusals.

xmppd (xmppd.example) listens on 127.0.0.1 and binds its outgoing s2s connections there;
Prosody (prosody.example) runs on 127.0.0.2 (tests/interop/prosody.py). alice@xmppd.example
and bob@prosody.example are slixmpp clients: alice asks to subscribe to bob, bob's client
approves and asks back (slixmpp auto-authorizes and auto-subscribes), alice's approves; then
each sees the other's presence and they chat both ways. Every positive case asserts on what
the clients received and on how each side authenticated the other (xmppd's log lines
"authenticated by dialback" / "by certificate", and Prosody's). The refusals assert that the
message bounces, quickly, and that the refusing server's log says why.

The peers find each other through static routes or through the test DNS server
(tests/interop/dnsserver.py), which proves xmppd's SRV path against a real peer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_federation import PLUGINS, user
from tests.interop import scenarios
from tests.interop.dnsserver import TestDNSServer, xmpp_server_zone
from tests.interop.prosody import SKIP_REASON, ProsodyProcess, available, free_port, login
from tests.interop.scenarios import User, message_bounces, peer_online

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]

XMPPD, PROSODY = "xmppd.example", "prosody.example"
XMPPD_IP, PROSODY_IP = "127.0.0.1", "127.0.0.2"
ALICE, BOB = f"alice@{XMPPD}", f"bob@{PROSODY}"
ALICE_FULL, BOB_FULL = f"{ALICE}/home", f"{BOB}/desk"
BOUNCE_WITHIN = 10.0  # a refusal is immediate: well before any time-out would fire


@dataclass
class Federation:
    """One xmppd and one Prosody that know how to reach each other."""

    xmppd: XmppdProcess
    prosody: ProsodyProcess
    dns_server: TestDNSServer | None


def xmppd_s2s_config(proc: XmppdProcess, ca_file: Path, prosody_policy: str,
                     prosody_route: str | None, dns_port: int | None) -> str:
    """The [s2s] section: Prosody reached by a static route or, with ``dns_port``, by SRV."""
    lines = [
        "[s2s]",
        f'listen = ["tcp:{proc.s2s_port}:interface={XMPPD_IP}"]',
        f'bind_address = "{XMPPD_IP}"',
        f'ca_file = "{ca_file}"',
        'default_policy = "secure"',
        "connect_timeout = 3.0",
        "auth_timeout = 5.0",
    ]
    if dns_port is not None:
        lines.append(f'dns_servers = ["127.0.0.1:{dns_port}"]')
    lines += ["[s2s.policy]", f'"{PROSODY}" = "{prosody_policy}"']
    if prosody_route is not None:
        lines += ["[s2s.hosts]", f'"{PROSODY}" = "{prosody_route}"']
    return "\n".join(lines) + "\n"


def cert(issued) -> tuple[Path, Path]:
    """An Issued certificate of tests/certs.py as the (cert, key) pair servers take."""
    return issued.cert_path, issued.key_path


@pytest.fixture
def pki(tmp_path):
    return make_test_pki(tmp_path / "pki", [XMPPD, PROSODY])


@pytest.fixture
def federation(tmp_path, pki):
    """``federation(...)`` starts xmppd and Prosody; everything started is stopped after the
    test, whether it passed or not, and xmppd must have stopped cleanly, without a traceback.

    ``xmppd_certificate``: the (cert, key) xmppd presents (default: a self-signed one of its
    own); ``policy``: xmppd's level for prosody.example; ``dns``: both servers find each
    other through the test DNS server instead of static routes; any other keyword goes to
    ProsodyProcess (certificate, s2s_certificate, ca_file, dialback, s2s_secure_auth...)."""
    started: list = []

    def start(*, policy: str, xmppd_certificate: tuple[Path, Path] | None = None,
              dns: bool = False, **prosody_settings) -> Federation:
        xmppd = XmppdProcess(tmp_path / "xmppd", domain=XMPPD, certificate=xmppd_certificate)
        # c2s is not under test: alice's client trusts the test CA (or xmppd's own
        # self-signed certificate) and checks the name unless it is the wrong one on purpose
        xmppd.ca = pki.ca.ca_path
        xmppd.client_hostname_check = xmppd_certificate != cert(pki.wrong_name[XMPPD])
        prosody_s2s_port = free_port(PROSODY_IP)
        dns_server = None
        if dns:
            dns_server = TestDNSServer({
                **xmpp_server_zone(XMPPD, XMPPD_IP, xmppd.s2s_port),
                **xmpp_server_zone(PROSODY, PROSODY_IP, prosody_s2s_port)})
            dns_server.start()
            started.append(dns_server)
            routing = {"dns_port": dns_server.port}
        else:
            routing = {"static_routes": {XMPPD: (XMPPD_IP, xmppd.s2s_port)}}
        xmppd.config.write_text(xmppd.config.read_text() + PLUGINS + xmppd_s2s_config(
            xmppd, pki.ca.ca_path, policy,
            None if dns else f"{PROSODY_IP}:{prosody_s2s_port}",
            dns_server.port if dns_server else None))
        prosody = ProsodyProcess(tmp_path / "prosody", PROSODY, PROSODY_IP,
                                 s2s_port=prosody_s2s_port, s2s_timeout=5, **routing,
                                 **prosody_settings)
        result = xmppd.ctl("adduser", ALICE, PASSWORD)
        assert result.returncode == 0, result.stderr
        prosody.register("bob")
        started.append(xmppd)
        xmppd.start()
        started.append(prosody)
        prosody.start()
        return Federation(xmppd, prosody, dns_server)

    yield start
    problems = []
    for proc in reversed(started):  # Prosody, xmppd, then the DNS server
        try:
            code = proc.stop()
        except Exception as error:  # XmppdProcess.stop kills a lingering xmppd, then raises
            code = repr(error)
        if isinstance(proc, XmppdProcess) and (code != 0 or "Traceback" in proc.log()):
            problems.append(f"xmppd stopped with {code}:\n{proc.log()}")
    assert not problems, "\n".join(problems)


# ---- the users ----------------------------------------------------------------------------


def alice(fed: Federation) -> User:
    return User(lambda: user(fed.xmppd, ALICE_FULL), ALICE_FULL)


def bob(fed: Federation) -> User:
    return User(lambda: bob_online(fed.prosody), BOB_FULL)


def bob_online(prosody: ProsodyProcess):
    """bob@prosody.example/desk, logged in, roster fetched, available."""
    return peer_online(login, prosody, "bob", "desk")


def subscribe_and_chat(fed: Federation, bob_first: bool = False) -> None:
    """alice and bob subscribe to each other, see each other online, chat both ways, and
    ping each other's server. alice asks first (so xmppd connects first) unless
    ``bob_first``."""
    scenarios.subscribe_and_chat(alice(fed), bob(fed), theirs_first=bob_first)


# ---- (1) dialback --------------------------------------------------------------------------


def test_dialback_without_certificates_found_through_dns(federation):
    """Prosody has no certificate, so no TLS at all: dialback is the only proof, which
    xmppd's 'verified' policy for prosody.example accepts. Both find each other by SRV."""
    fed = federation(policy="verified", dns=True)

    subscribe_and_chat(fed)

    log = fed.xmppd.log()
    assert (f"outgoing s2s to {PROSODY} from {XMPPD} authenticated by dialback: "
            "policy verified met: reached through DNS, no TLS") in log
    assert (f"incoming s2s from {PROSODY} authenticated for {XMPPD} by dialback: "
            "policy verified met: dialback, no TLS") in log
    assert fed.dns_server.asked(f"_xmpp-server._tcp.{PROSODY}", "SRV", timeout=0)
    assert fed.dns_server.asked(f"_xmpp-server._tcp.{XMPPD}", "SRV", timeout=0)
    fed.prosody.wait_for_log(r"verified dialback key\.\.\. it is valid")  # Prosody asked us
    assert fed.prosody.stop() == 0
    assert fed.prosody.errors() == []


def test_dialback_over_tls_with_self_signed_certificates(federation, pki):
    """Both sides present self-signed certificates on s2s that the other cannot validate
    (Prosody's clients still get a CA-signed one on c2s): TLS is on both ways (Prosody
    requires it, so does xmppd's 'secure') and dialback is the proof."""
    fed = federation(policy="secure", certificate=cert(pki.good[PROSODY]),
                     ca_file=pki.ca.ca_path, s2s_certificate=cert(pki.self_signed[PROSODY]))

    subscribe_and_chat(fed)

    log = fed.xmppd.log()
    assert (f"outgoing s2s to {PROSODY} from {XMPPD} authenticated by dialback: "
            "policy secure met: reached through DNS, TLS") in log
    assert (f"incoming s2s from {PROSODY} authenticated for {XMPPD} by dialback: "
            "policy secure met: dialback, TLS") in log
    assert "authenticated by certificate" not in log
    fed.prosody.wait_for_log(r"verified dialback key\.\.\. it is valid")
    assert fed.prosody.stop() == 0
    assert fed.prosody.errors() == []


# ---- (2) certificates and SASL EXTERNAL ----------------------------------------------------


@pytest.mark.parametrize("bidi", [False, True], ids=["plain", "prosody-bidi"])
def test_ca_certificates_and_sasl_external_both_ways(federation, pki, bidi):
    """CA-signed certificates on both sides, dialback off in Prosody, s2s_secure_auth on;
    xmppd's policy for prosody.example is 'trusted' (a certificate or nothing). Without
    Prosody's mod_s2s_bidi it takes one stream each way. With it, both sides offer XEP-0288:
    xmppd, connecting first, asks for it, and Prosody sends everything back on that one
    stream (it never connects to xmppd), which xmppd takes on Prosody's certificate."""
    fed = federation(policy="trusted", xmppd_certificate=cert(pki.good[XMPPD]),
                     certificate=cert(pki.good[PROSODY]), ca_file=pki.ca.ca_path,
                     dialback=False, s2s_secure_auth=True, bidi=bidi)

    subscribe_and_chat(fed)

    log = fed.xmppd.log()
    assert (f"outgoing s2s to {PROSODY} from {XMPPD} authenticated by certificate: "
            "policy trusted met: certificate (SASL EXTERNAL) + reached through DNS, TLS") in log
    incoming = (f"incoming s2s from {PROSODY} authenticated for {XMPPD} by certificate: "
                "policy trusted met: certificate (SASL EXTERNAL), TLS")
    bidirectional = (f"outgoing s2s to {PROSODY} from {XMPPD} is bidirectional: stanzas "
                     f"from {PROSODY} to {XMPPD} are taken on it")
    assert "dialback" not in log
    fed.prosody.wait_for_log(rf"Accepting SASL EXTERNAL identity from {re.escape(XMPPD)}")
    if bidi:
        assert bidirectional in log and incoming not in log
        fed.prosody.wait_for_log(r"Requested bidirectional stream")
        fed.prosody.wait_for_log(rf"Setting up to handle route from {re.escape(PROSODY)} to "
                                 rf"{re.escape(XMPPD)}")
        assert f"SASL EXTERNAL with {XMPPD} succeeded" not in fed.prosody.log()
    else:
        assert incoming in log and bidirectional not in log
        fed.prosody.wait_for_log(rf"SASL EXTERNAL with {re.escape(XMPPD)} succeeded")  # out
    assert "dialback" not in fed.prosody.log()
    assert fed.prosody.stop() == 0
    assert fed.prosody.errors() == []


def test_prosody_asks_for_a_bidirectional_stream_with_dialback(federation, pki):
    """Prosody connects first (bob asks first), over TLS with a self-signed s2s certificate,
    and asks for XEP-0288 before dialback: once xmppd has verified Prosody's key (over a
    connection of its own to Prosody, which is only for that), everything xmppd sends goes
    back on Prosody's stream; xmppd never sets up a link of its own."""
    fed = federation(policy="secure", certificate=cert(pki.good[PROSODY]),
                     ca_file=pki.ca.ca_path, s2s_certificate=cert(pki.self_signed[PROSODY]),
                     bidi=True)

    subscribe_and_chat(fed, bob_first=True)

    log = fed.xmppd.log()
    assert (f"incoming s2s from {PROSODY} authenticated for {XMPPD} by dialback: "
            "policy secure met: dialback, TLS") in log
    assert (f"s2s to {PROSODY} from {XMPPD} may go out on the bidirectional stream from "
            f"{PROSODY} ({PROSODY_IP}:") in log
    assert f"outgoing s2s to {PROSODY} from {XMPPD} authenticated" not in log
    fed.prosody.wait_for_log(r"Requesting bidirectional stream")
    assert fed.prosody.stop() == 0
    assert fed.prosody.errors() == []


# ---- (3) wrong-name certificates -----------------------------------------------------------


def test_xmppd_refuses_prosodys_wrong_name_certificate_under_trusted(federation, pki):
    """Prosody presents, on s2s, a certificate from the right CA but for another name: under
    'trusted' xmppd neither connects out (alice's message bounces at once, the log says
    "name mismatch") nor accepts Prosody's dialback instead (bob's message bounces)."""
    fed = federation(policy="trusted", xmppd_certificate=cert(pki.good[XMPPD]),
                     certificate=cert(pki.good[PROSODY]), ca_file=pki.ca.ca_path,
                     s2s_certificate=cert(pki.wrong_name[PROSODY]))

    bounce = message_bounces(lambda: user(fed.xmppd, ALICE_FULL), BOB)
    assert bounce["condition"] == "remote-server-not-found"
    assert "name mismatch" in bounce["text"]
    assert bounce["seconds"] < BOUNCE_WITHIN
    log = fed.xmppd.log()
    assert (f"s2s outgoing {PROSODY} ({PROSODY_IP}:{fed.prosody.s2s_port}) refused: "
            "certificate required: name mismatch: cert is for wrong.example") in log

    bounce = message_bounces(lambda: bob_online(fed.prosody), ALICE)
    # Prosody bounces what was queued for a failed link with either condition
    assert bounce["condition"] in ("remote-server-not-found", "remote-server-timeout")
    assert bounce["seconds"] < BOUNCE_WITHIN
    log = fed.xmppd.log()
    assert f"s2s incoming {PROSODY} ({PROSODY_IP}:" in log
    assert "refused: dialback refused: valid certificate required (policy trusted" in log
    assert "authenticated by" not in log
    fed.prosody.wait_for_log(r"Outgoing s2s stream prosody\.example->xmppd\.example closed: "
                             r"dialback authentication failed")


def test_prosody_refuses_xmppds_wrong_name_certificate(federation, pki):
    """The other way round: xmppd presents a wrong-name certificate to a Prosody that wants
    valid certificates (s2s_secure_auth, no dialback): Prosody refuses the stream with
    not-authorized, and alice's message bounces at once."""
    fed = federation(policy="trusted", xmppd_certificate=cert(pki.wrong_name[XMPPD]),
                     certificate=cert(pki.good[PROSODY]), ca_file=pki.ca.ca_path,
                     dialback=False, s2s_secure_auth=True)

    bounce = message_bounces(lambda: user(fed.xmppd, ALICE_FULL), BOB)
    assert bounce["condition"] == "remote-server-not-found"
    assert bounce["seconds"] < BOUNCE_WITHIN
    fed.prosody.wait_for_log(r"certificate identity validation result: invalid")
    fed.prosody.wait_for_log(r"Forbidding insecure connection to/from xmppd\.example because "
                             r"its certificate is not valid for this name")
    assert "Accepting SASL EXTERNAL" not in fed.prosody.log()
    log = fed.xmppd.log()
    assert f"s2s to {PROSODY} failed: {PROSODY} refused us: not-authorized" in log
    assert "authenticated by" not in log


# ---- (4) a self-signed Prosody that accepts our certificate (issue #10) --------------------


def self_signed_prosody_trusting_us(federation, pki, policy: str) -> Federation:
    """Common on the real network: Prosody presents a self-signed certificate on s2s,
    requires TLS, offers dialback, and trusts xmppd's CA, so it offers xmppd SASL EXTERNAL.
    Both find each other through the test DNS server (the reach xmppd relies on)."""
    return federation(policy=policy, dns=True, xmppd_certificate=cert(pki.good[XMPPD]),
                      certificate=cert(pki.good[PROSODY]), ca_file=pki.ca.ca_path,
                      s2s_certificate=cert(pki.self_signed[PROSODY]),
                      s2s_require_encryption=True)


@pytest.mark.parametrize("policy", ["secure", "verified"])
def test_self_signed_prosody_that_accepts_our_certificate(federation, pki, policy):
    """xmppd authenticates by SASL EXTERNAL; Prosody's own identity rests on xmppd having
    reached it through DNS, over TLS, which the level takes as it takes dialback. The other
    way, Prosody proves itself by dialback (its certificate does not validate here)."""
    fed = self_signed_prosody_trusting_us(federation, pki, policy)

    subscribe_and_chat(fed)

    log = fed.xmppd.log()
    assert (f"outgoing s2s to {PROSODY} from {XMPPD} authenticated by certificate: "
            f"policy {policy} met: reached through DNS, TLS") in log
    assert (f"incoming s2s from {PROSODY} authenticated for {XMPPD} by dialback: "
            f"policy {policy} met: dialback, TLS") in log
    assert " refused: " not in log
    fed.prosody.wait_for_log(rf"Accepting SASL EXTERNAL identity from {re.escape(XMPPD)}")
    # Prosody's own stream to xmppd: dialback, as xmppd cannot validate its certificate
    fed.prosody.wait_for_log(r"verified dialback key\.\.\. it is valid")
    assert f"SASL EXTERNAL with {XMPPD} succeeded" not in fed.prosody.log()
    assert fed.prosody.stop() == 0
    assert fed.prosody.errors() == []


def test_self_signed_prosody_is_refused_under_trusted(federation, pki):
    """The same Prosody under 'trusted': xmppd does not authenticate to it at all (its
    certificate is self-signed; the log says so), nor takes its dialback the other way."""
    fed = self_signed_prosody_trusting_us(federation, pki, "trusted")

    bounce = message_bounces(lambda: user(fed.xmppd, ALICE_FULL), BOB)
    assert bounce["condition"] == "remote-server-not-found"
    assert bounce["text"] == "certificate required: self-signed"
    assert bounce["seconds"] < BOUNCE_WITHIN
    assert (f"s2s outgoing {PROSODY} ({PROSODY_IP}:{fed.prosody.s2s_port}) refused: "
            "certificate required: self-signed") in fed.xmppd.log()
    assert "Accepting SASL EXTERNAL" not in fed.prosody.log()

    bounce = message_bounces(lambda: bob_online(fed.prosody), ALICE)
    assert bounce["condition"] in ("remote-server-not-found", "remote-server-timeout")
    assert bounce["seconds"] < BOUNCE_WITHIN
    log = fed.xmppd.log()
    assert "refused: dialback refused: valid certificate required (policy trusted" in log
    assert "authenticated by" not in log
