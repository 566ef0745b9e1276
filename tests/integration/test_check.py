"""`xmppdctl check` against a real DNS server on loopback (good and broken zones), good and
bad certificates, and a real running server for the connectivity and the service subdomains.
"""

from __future__ import annotations

import datetime
import shutil

import pytest

from tests.certs import CertificateAuthority, utc_now
from tests.integration.serverproc import XmppdProcess
from tests.interop.dnsserver import SRV, A, TestDNSServer

D = "a.example"
PUBSUB = f"pubsub.{D}"  # the pubsub plugin's service subdomain (a default plugin)


def setup(tmp_path, ca: CertificateAuthority, issued=None) -> XmppdProcess:
    """A server for D with its certificate in a certificate directory and s2s on."""
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    issued = issued or ca.issue(D)
    shutil.copy(issued.cert_path, certs / f"{D}.crt")
    shutil.copy(issued.key_path, certs / f"{D}.key")
    proc = XmppdProcess(tmp_path / "server", domain=D)
    text = proc.config.read_text().replace(f'certificate = "{proc.cert}"\nkey = "{proc.key}"',
                                           f'certificates = "{certs}"')
    proc.config.write_text(text + f'\n[s2s]\nlisten = ["tcp:{proc.s2s_port}:interface=127.0.0.1"]'
                                  f'\nca_file = "{ca.ca_path}"\n')
    proc.certs = certs
    return proc


def good_zone(proc: XmppdProcess) -> dict:
    return {
        f"_xmpp-client._tcp.{D}": [SRV("xmpp.a.example.", proc.c2s_port)],
        f"_xmpps-client._tcp.{D}": [SRV("xmpp.a.example.", proc.direct_tls_port)],
        f"_xmpp-server._tcp.{D}": [SRV("xmpp.a.example.", proc.s2s_port)],
        f"_xmpp-server._tcp.{PUBSUB}": [SRV("xmpp.a.example.", proc.s2s_port)],
        f"_xmpp-server._tcp.conference.{D}": [SRV("xmpp.a.example.", proc.s2s_port)],  # muc
        "xmpp.a.example": [A("127.0.0.1")],
        D: [A("127.0.0.1")],
    }


def check(proc: XmppdProcess, *args: str) -> tuple[int, list[str]]:
    result = proc.ctl("check", *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.splitlines()


def lines_with(lines: list[str], start: str, *words: str) -> list[str]:
    return [line for line in lines if line.startswith(start) and all(w in line for w in words)]


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority(tmp_path / "pki")


def test_a_good_setup_passes_every_area(tmp_path, ca):
    proc = setup(tmp_path, ca)
    proc.start()
    try:
        with TestDNSServer(good_zone(proc)) as dns:
            status, lines = check(proc, "--dns", f"127.0.0.1:{dns.port}")
            assert dns.asked(f"_xmpp-server._tcp.{PUBSUB}")
    finally:
        assert proc.stop() == 0, proc.log()
    assert status == 0, "\n".join(lines)
    assert lines[-1] == "xmppdctl check: all checks passed"
    assert lines_with(lines, "ok    config")
    for service in ("_xmpp-client", "_xmpps-client", "_xmpp-server"):
        assert lines_with(lines, "ok    dns", f"{service}._tcp.{D} → xmpp.a.example:"), lines
    assert lines_with(lines, "ok    dns", f"_xmpp-server._tcp.{PUBSUB}")  # the subdomain too
    assert lines_with(lines, "ok    certificates", f"{D}: ", "key matches")
    assert lines_with(lines, "ok    certificates", f"{PUBSUB}: ")  # *.a.example covers it
    assert lines_with(lines, "ok    connectivity", "c2s a.example", "offers STARTTLS")
    assert lines_with(lines, "ok    connectivity", "c2s-tls", "presents the certificate")
    assert lines_with(lines, "ok    connectivity", "s2s a.example", "offers STARTTLS")
    assert not [line for line in lines if line.startswith(("warn", "error"))]


def test_a_broken_zone_is_reported_record_by_record(tmp_path, ca):
    proc = setup(tmp_path, ca)
    zone = good_zone(proc)
    zone[f"_xmpp-client._tcp.{D}"] = [SRV("xmpp.a.example.", proc.c2s_port + 1)]  # wrong port
    zone[f"_xmpp-server._tcp.{D}"] = [SRV("nowhere.a.example.", proc.s2s_port)]  # no address
    del zone[f"_xmpps-client._tcp.{D}"]  # direct TLS not advertised: only a note
    del zone[D]
    with TestDNSServer(zone) as dns:
        status, lines = check(proc, "--dns", f"127.0.0.1:{dns.port}", "--only", "dns")
    assert status == 1
    assert lines_with(lines, "warn  dns", f"_xmpp-client._tcp.{D}", f"port {proc.c2s_port},"
                      f" not {proc.c2s_port + 1}"), lines
    assert lines_with(lines, "error dns", "nowhere.a.example has no A or AAAA record"), lines
    assert lines_with(lines, "note  dns", f"_xmpps-client._tcp.{D}: no SRV record")
    assert lines_with(lines, "note  domains", "xmppd is not running")
    assert lines[-1] == "xmppdctl check: 1 error, 1 warning"


def test_no_srv_and_no_address_and_a_dns_server_that_does_not_answer(tmp_path, ca):
    proc = setup(tmp_path, ca)
    with TestDNSServer({}) as dns:  # an empty zone: NXDOMAIN for everything
        status, lines = check(proc, "--dns", f"127.0.0.1:{dns.port}", "--only", "dns")
    assert status == 1
    assert lines_with(lines, "error dns", f"_xmpp-client._tcp.{D}: no SRV record, and {D} has "
                                          "no A or AAAA record")
    assert lines_with(lines, "error dns", f"_xmpp-server._tcp.{D}: no SRV record")
    silent = TestDNSServer({})
    silent.start()
    port = silent.port
    silent.stop()  # nothing answers on that port any more
    status, lines = check(proc, "--dns", f"127.0.0.1:{port}", "--only", "dns")
    assert status == 1
    assert lines_with(lines, "error dns", "the DNS server did not answer"), lines


@pytest.mark.parametrize("kind, expected", [
    ("expired", "expired on"),
    ("mismatched", "name mismatch: cert is for wrong.example"),
    ("expiring", "expires in 3 days"),
    ("self-signed", "chain: "),
])
def test_bad_certificates(tmp_path, ca, kind, expected):
    if kind == "expired":
        issued = ca.issue_expired(D)
    elif kind == "mismatched":
        issued = ca.issue_wrong_name(D)
    elif kind == "expiring":
        issued = ca.issue(D, not_after=utc_now() + datetime.timedelta(days=3, hours=12))
    else:
        from tests.certs import make_self_signed

        issued = make_self_signed(tmp_path / "pki", D)
    proc = setup(tmp_path, ca, issued)
    status, lines = check(proc, "--only", "certificates")
    assert status == 1
    level = "warn " if kind == "expiring" else "error"
    assert lines_with(lines, f"{level} certificates", f"{D}: ", expected), lines


def test_a_key_that_is_not_the_certificates(tmp_path, ca):
    proc = setup(tmp_path, ca)
    shutil.copy(ca.issue("other.example").key_path, proc.certs / f"{D}.key")
    (proc.certs / "lonely.example.crt").write_bytes((proc.certs / f"{D}.crt").read_bytes())
    status, lines = check(proc, "--only", "certificates")
    assert status == 1
    assert lines_with(lines, "error certificates", f"{D}.key is not the key of"), lines
    assert lines_with(lines, "warn  certificates", "lonely.example.crt: no lonely.example.key")


def test_every_config_problem_at_once(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[server]\ndomains = ["localhost"]\nmax_stanza_size = 5\n'
                      '[c2s]\nrequire_encryption = "yes"\nlisten = "tcp:5222"\n'
                      '[tls]\nmin_version = 1.3\ncolour = "blue"\n[nonsense]\n')
    proc = XmppdProcess(tmp_path / "unused")
    proc.config = config
    status, lines = check(proc)
    assert status == 1
    errors = [line for line in lines if line.startswith("error config")]
    for key in ("[nonsense]", "[server] max_stanza_size", "[c2s] require_encryption",
                "[c2s] listen", "[tls] min_version", "[tls] colour"):
        assert [line for line in errors if key in line], (key, lines)
    assert lines[-1] == "xmppdctl check: 6 errors, 0 warnings"


def test_every_plugin_option_problem_at_once(tmp_path):
    proc = XmppdProcess(tmp_path, extra='[plugins.version]\nshow_os = "yes"\n'
                                         '[plugins.offline]\ncolour = 1\n')
    status, lines = check(proc, "--only", "config")
    assert status == 1
    errors = [line for line in lines if line.startswith("error config")]
    assert [line for line in errors if "[plugins.version] show_os" in line], lines
    assert [line for line in errors if "[plugins.offline] colour" in line], lines


def test_a_running_server_with_an_unreloaded_renewal_and_a_stopped_one(tmp_path, ca):
    proc = setup(tmp_path, ca)
    proc.start()
    try:
        renewed = ca.issue(D)
        shutil.copy(renewed.cert_path, proc.certs / f"{D}.crt")
        shutil.copy(renewed.key_path, proc.certs / f"{D}.key")
        status, lines = check(proc, "--only", "connectivity")
        assert status == 1
        assert lines_with(lines, "warn  connectivity", "c2s-tls", "not reloaded"), lines
        assert proc.ctl("reload").returncode == 0
        status, lines = check(proc, "--only", "connectivity")
        assert status == 0, lines
    finally:
        assert proc.stop() == 0, proc.log()
    status, lines = check(proc, "--only", "connectivity")
    assert status == 1
    assert lines_with(lines, "error connectivity", f"c2s {D} at 127.0.0.1:{proc.c2s_port}: "
                                                   "cannot connect")
