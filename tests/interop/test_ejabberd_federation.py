"""xmppd federates with a real ejabberd 23.01: certificates with SASL EXTERNAL, dialback, refusals.

xmppd (xmppd.example) listens on 127.0.0.1 and binds its outgoing s2s connections there;
ejabberd (ejabberd.example) runs on 127.0.0.3 (tests/interop/ejabberd.py). Both find each
other through SRV records served by the test DNS server (tests/interop/dnsserver.py): ejabberd
has no static routes, and xmppd's proof of a peer it connects to is having reached it so.
alice@xmppd.example and bob@ejabberd.example are slixmpp clients that subscribe to each other,
see each other's presence, chat both ways and ping each other's server
(tests/interop/scenarios.py). Every positive case asserts on what the clients received and on
how each side authenticated the other (xmppd's log lines, and ejabberd's debug log); the
refusals assert that the message bounces, quickly, and that xmppd's log says why.

The certificates carry no XmppAddr: ejabberd 23.01 crashes on a peer certificate with one.
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
from tests.interop.dnsserver import TestDNSServer, xmpp_server_zone
from tests.interop.ejabberd import SKIP_REASON, EjabberdProcess, available, free_port, login
from tests.interop.scenarios import User, message_bounces, peer_online, subscribe_and_chat

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not available(), reason=SKIP_REASON)]

XMPPD, EJABBERD = "xmppd.example", "ejabberd.example"
XMPPD_IP, EJABBERD_IP = "127.0.0.1", "127.0.0.3"
ALICE_FULL, BOB_FULL = f"alice@{XMPPD}/home", f"bob@{EJABBERD}/desk"
BOUNCE_WITHIN = 10.0  # a refusal is immediate: well before any time-out would fire


@dataclass
class Federation:
    """One xmppd and one ejabberd that find each other through the test DNS server."""

    xmppd: XmppdProcess
    ejabberd: EjabberdProcess
    dns_server: TestDNSServer

    @property
    def alice(self) -> User:
        return User(lambda: user(self.xmppd, ALICE_FULL), ALICE_FULL)

    @property
    def bob(self) -> User:
        return User(lambda: peer_online(login, self.ejabberd, "bob", "desk"), BOB_FULL)


def xmppd_s2s_config(proc: XmppdProcess, ca_file: Path, policy: str, dns_port: int) -> str:
    return "\n".join([
        "[s2s]",
        f'listen = ["tcp:{proc.s2s_port}:interface={XMPPD_IP}"]',
        f'bind_address = "{XMPPD_IP}"',
        f'ca_file = "{ca_file}"',
        'default_policy = "secure"',
        "connect_timeout = 3.0",
        "auth_timeout = 5.0",
        f'dns_servers = ["127.0.0.1:{dns_port}"]',
        "[s2s.policy]",
        f'"{EJABBERD}" = "{policy}"',
    ]) + "\n"


def cert(issued) -> tuple[Path, Path]:
    return issued.cert_path, issued.key_path


@pytest.fixture
def pki(tmp_path):
    return make_test_pki(tmp_path / "pki", [XMPPD, EJABBERD], with_other_names=False)


@pytest.fixture
def federation(tmp_path, pki):
    """``federation(policy=..., ejabberd_certificate=..., **settings)`` starts the DNS server,
    xmppd (with its CA-signed certificate, and ``policy`` for ejabberd.example) and ejabberd
    (``settings`` go to EjabberdProcess: ca_file, dialback, starttls...), and registers bob.
    Everything started is stopped after the test; xmppd must stop cleanly, without a
    traceback, and ejabberd's working directory is removed (its logs stay in tmp_path)."""
    started: list = []

    def start(*, policy: str, ejabberd_certificate: tuple[Path, Path] | None,
              **ejabberd_settings) -> Federation:
        xmppd = XmppdProcess(tmp_path / "xmppd", domain=XMPPD, certificate=cert(pki.good[XMPPD]))
        xmppd.ca = pki.ca.ca_path
        xmppd.client_hostname_check = True
        ejabberd_s2s_port = free_port(EJABBERD_IP)
        dns_server = TestDNSServer({**xmpp_server_zone(XMPPD, XMPPD_IP, xmppd.s2s_port),
                                    **xmpp_server_zone(EJABBERD, EJABBERD_IP,
                                                       ejabberd_s2s_port)})
        dns_server.start()
        started.append(dns_server)
        xmppd.config.write_text(xmppd.config.read_text() + PLUGINS + xmppd_s2s_config(
            xmppd, pki.ca.ca_path, policy, dns_server.port))
        result = xmppd.ctl("adduser", f"alice@{XMPPD}", PASSWORD)
        assert result.returncode == 0, result.stderr
        started.append(xmppd)
        xmppd.start()
        ejabberd = EjabberdProcess(tmp_path / "ejabberd", EJABBERD, EJABBERD_IP,
                                   s2s_port=ejabberd_s2s_port, dns_port=dns_server.port,
                                   certificate=ejabberd_certificate, **ejabberd_settings)
        started.append(ejabberd)
        ejabberd.start()
        ejabberd.register("bob")
        return Federation(xmppd, ejabberd, dns_server)

    yield start
    for proc in started:  # shown with a failure: who asked the test DNS server what
        if isinstance(proc, TestDNSServer):
            print("DNS queries:", proc.queries)
    problems = []
    for proc in reversed(started):  # ejabberd, xmppd, then the DNS server
        try:
            code = proc.stop()
        except Exception as error:  # XmppdProcess.stop kills a lingering xmppd, then raises
            code = repr(error)
        if isinstance(proc, EjabberdProcess):
            proc.cleanup()
        if isinstance(proc, XmppdProcess) and (code != 0 or "Traceback" in proc.log()):
            problems.append(f"xmppd stopped with {code}:\n{proc.log()}")
    assert not problems, "\n".join(problems)


# ---- (1) CA-signed certificates: SASL EXTERNAL both ways -----------------------------------


def test_ca_certificates_and_sasl_external_both_ways(federation, pki):
    """Both present CA-signed certificates and trust the test CA; ejabberd has no dialback
    (so it takes certificates only, and checks xmppd's name), xmppd's level is 'trusted'."""
    fed = federation(policy="trusted", ejabberd_certificate=cert(pki.good[EJABBERD]),
                     ca_file=pki.ca.ca_path, dialback=False)

    subscribe_and_chat(fed.alice, fed.bob)

    log = fed.xmppd.log()
    assert (f"outgoing s2s to {EJABBERD} from {XMPPD} authenticated by certificate: "
            "policy trusted met: certificate (SASL EXTERNAL) + reached through DNS, TLS") in log
    assert (f"incoming s2s from {EJABBERD} authenticated for {XMPPD} by certificate: "
            "policy trusted met: certificate (SASL EXTERNAL), TLS") in log
    assert "dialback" not in log
    fed.ejabberd.wait_for_log(rf"Accepted inbound s2s EXTERNAL authentication "
                              rf"{re.escape(XMPPD)} -> {re.escape(EJABBERD)}")
    fed.ejabberd.wait_for_log(rf"Accepted outbound s2s EXTERNAL authentication "
                              rf"{re.escape(EJABBERD)} -> {re.escape(XMPPD)}")
    assert fed.ejabberd.stop() == 0
    assert "s2s dialback authentication" not in fed.ejabberd.log()
    assert fed.ejabberd.errors() == []


# ---- (2) a self-signed ejabberd that accepts our certificate (issue #10) -------------------


def self_signed_ejabberd_trusting_us(federation, pki, policy: str) -> Federation:
    """ejabberd presents a self-signed certificate, requires STARTTLS, offers dialback, and
    trusts xmppd's CA, so it offers xmppd SASL EXTERNAL."""
    return federation(policy=policy, ejabberd_certificate=cert(pki.self_signed[EJABBERD]),
                      ca_file=pki.ca.ca_path, dialback=True, starttls="required")


@pytest.mark.parametrize("policy", ["secure", "verified"])
def test_self_signed_ejabberd_that_accepts_our_certificate(federation, pki, policy):
    """xmppd authenticates by SASL EXTERNAL; ejabberd's identity rests on xmppd having
    reached it through DNS, over TLS, which the level takes as it takes dialback. The other
    way, ejabberd proves itself by dialback (its certificate does not validate here)."""
    fed = self_signed_ejabberd_trusting_us(federation, pki, policy)

    subscribe_and_chat(fed.alice, fed.bob)

    log = fed.xmppd.log()
    assert (f"outgoing s2s to {EJABBERD} from {XMPPD} authenticated by certificate: "
            f"policy {policy} met: reached through DNS, TLS") in log
    assert (f"incoming s2s from {EJABBERD} authenticated for {XMPPD} by dialback: "
            f"policy {policy} met: dialback, TLS") in log
    assert " refused: " not in log
    fed.ejabberd.wait_for_log(rf"Accepted inbound s2s EXTERNAL authentication "
                              rf"{re.escape(XMPPD)} -> {re.escape(EJABBERD)}")
    # ejabberd tries EXTERNAL first, which xmppd does not offer it, then dialback
    fed.ejabberd.wait_for_log(rf"Accepted outbound s2s dialback authentication "
                              rf"{re.escape(EJABBERD)} -> {re.escape(XMPPD)}")
    assert fed.ejabberd.stop() == 0
    assert fed.ejabberd.errors() == []


def test_self_signed_ejabberd_is_refused_under_trusted(federation, pki):
    """The same ejabberd under 'trusted': xmppd does not authenticate to it at all (its
    certificate is self-signed; the log says so), nor takes its dialback the other way."""
    fed = self_signed_ejabberd_trusting_us(federation, pki, "trusted")

    bounce = message_bounces(fed.alice.online, fed.bob.bare)
    assert bounce["condition"] == "remote-server-not-found"
    assert bounce["text"] == "certificate required: self-signed"
    assert bounce["seconds"] < BOUNCE_WITHIN
    assert (f"s2s outgoing {EJABBERD} ({EJABBERD_IP}:{fed.ejabberd.s2s_port}) refused: "
            "certificate required: self-signed") in fed.xmppd.log()

    bounce = message_bounces(fed.bob.online, fed.alice.bare)
    assert bounce["condition"] in ("remote-server-not-found", "remote-server-timeout")
    assert bounce["seconds"] < BOUNCE_WITHIN
    log = fed.xmppd.log()
    assert "refused: dialback refused: valid certificate required (policy trusted" in log
    assert "authenticated by" not in log
    assert re.search(r"s2s incoming ejabberd\.example \(127\.0\.0\.3:\d+\) refused", log)
    fed.ejabberd.wait_for_log(rf"Closing inbound s2s connection {re.escape(XMPPD)} -> "
                              rf"{re.escape(EJABBERD)}: Stream closed by peer: certificate "
                              r"required: self-signed \(policy-violation\)")
    fed.ejabberd.wait_for_log(rf"Failed outbound s2s dialback authentication "
                              rf"{re.escape(EJABBERD)} -> {re.escape(XMPPD)}")
    assert not re.search(r"Accepted (inbound|outbound) s2s", fed.ejabberd.log())
