"""Peer certificate checks: chain (dates, signatures, trust) and name (RFC 6125 for XMPP)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import SSL

from tests.certs import CertificateAuthority, make_self_signed, make_test_pki, srv_id, xmpp_addr
from xmppd.s2s.certs import (
    CertCheck,
    PresentedNames,
    TrustStore,
    TrustStoreError,
    chain_from_pyopenssl,
    check_certificate,
    presented_names,
)

DOMAIN = "example.org"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def ca(pki_dir) -> CertificateAuthority:
    return CertificateAuthority(pki_dir)


@pytest.fixture(scope="module")
def trust(ca) -> TrustStore:
    return TrustStore.from_file(ca.ca_path)


def check(ca, trust, domain=DOMAIN, **issue) -> CertCheck:
    issued = ca.issue(issue.pop("issued_for", DOMAIN), **issue)
    return check_certificate(issued.presented, domain, trust)


# --------------------------------------------------------------------------- all good


def test_ca_signed_certificate_for_the_domain_is_valid(ca, trust):
    assert check(ca, trust) == CertCheck(valid=True, chain_ok=True, name_ok=True, reason="ok")


def test_chain_through_a_presented_intermediate_is_valid(ca, trust):
    issued = ca.intermediate().issue(DOMAIN)
    assert len(issued.presented) == 2
    assert check_certificate(issued.presented, DOMAIN, trust).valid


def test_missing_intermediate_means_issuer_not_trusted(ca, trust):
    issued = ca.intermediate().issue(DOMAIN)
    result = check_certificate([issued.cert], DOMAIN, trust)
    assert result == CertCheck(False, False, True, "issuer not trusted")


def test_standard_pki_set_behaves_as_named(tmp_path):
    pki = make_test_pki(tmp_path, ["a.example", "b.example"])
    trust = TrustStore.from_file(pki.ca.ca_path)
    for domain in ("a.example", "b.example"):
        assert check_certificate(pki.good[domain].presented, domain, trust).valid
        assert check_certificate(pki.expired[domain].presented, domain, trust).reason == \
            "certificate expired"
        assert check_certificate(pki.wrong_name[domain].presented, domain, trust).reason == \
            "name mismatch: cert is for wrong.example, *.wrong.example"
        assert check_certificate(pki.self_signed[domain].presented, domain, trust).reason == \
            "self-signed"
    assert (tmp_path / "a.example.crt").is_file()
    assert (tmp_path / "a.example.key").stat().st_mode & 0o077 == 0


# --------------------------------------------------------------------------- chain failures


def test_expired_certificate(ca, trust):
    issued = ca.issue_expired(DOMAIN)
    assert check_certificate(issued.presented, DOMAIN, trust) == \
        CertCheck(False, False, True, "certificate expired")


def test_expired_certificate_was_fine_while_it_was_valid(ca, trust):
    issued = ca.issue_expired(DOMAIN)
    back_then = issued.cert.not_valid_after_utc - datetime.timedelta(days=1)
    assert check_certificate(issued.presented, DOMAIN, trust, now=back_then).valid


def test_not_yet_valid_certificate(ca, trust):
    issued = ca.issue(DOMAIN)
    too_early = issued.cert.not_valid_before_utc - datetime.timedelta(seconds=1)
    assert check_certificate(issued.presented, DOMAIN, trust, now=too_early).reason == \
        "certificate not yet valid"


def test_naive_now_is_taken_as_utc(ca, trust):
    issued = ca.issue_expired(DOMAIN)
    naive = (issued.cert.not_valid_after_utc + datetime.timedelta(hours=1)).replace(tzinfo=None)
    assert check_certificate(issued.presented, DOMAIN, trust, now=naive).reason == \
        "certificate expired"


def test_expired_intermediate(ca, trust, pki_dir):
    now = datetime.datetime.now(datetime.UTC)
    old = CertificateAuthority(pki_dir, "expired intermediate", parent=ca,
                               not_before=now - datetime.timedelta(days=10),
                               not_after=now - datetime.timedelta(days=1))
    issued = old.issue(DOMAIN)
    assert check_certificate(issued.presented, DOMAIN, trust).reason == \
        "issuer certificate expired or not yet valid"


def test_self_signed_certificate(pki_dir, trust):
    issued = make_self_signed(pki_dir, DOMAIN)
    assert check_certificate(issued.presented, DOMAIN, trust) == \
        CertCheck(False, False, True, "self-signed")


def test_self_signed_certificate_pinned_in_the_trust_store_is_trusted(pki_dir):
    issued = make_self_signed(pki_dir, DOMAIN, filename="pinned")
    pinned = TrustStore.from_file(issued.cert_path)
    assert check_certificate(issued.presented, DOMAIN, pinned).valid


def test_certificate_from_another_ca(pki_dir, trust):
    other = CertificateAuthority(pki_dir / "other", "some other CA")
    issued = other.issue(DOMAIN)
    assert check_certificate(issued.presented, DOMAIN, trust) == \
        CertCheck(False, False, True, "issuer not trusted")


def test_forged_signature_is_not_trusted(pki_dir, ca, trust):
    # Same issuer name as our CA, but signed by another key.
    impostor = CertificateAuthority(pki_dir / "impostor", ca.name)
    issued = impostor.issue(DOMAIN)
    assert check_certificate(issued.presented, DOMAIN, trust) == \
        CertCheck(False, False, True, "chain invalid: signature does not match")


@pytest.mark.parametrize("eku, ok", [
    ([ExtendedKeyUsageOID.SERVER_AUTH], True),
    ([ExtendedKeyUsageOID.CLIENT_AUTH], True),
    (None, True),  # RFC 5280: no EKU extension means any use
    ([ExtendedKeyUsageOID.CODE_SIGNING], False),
    ([ExtendedKeyUsageOID.EMAIL_PROTECTION], False),
])
def test_extended_key_usage(ca, trust, eku, ok):
    result = check(ca, trust, eku=eku)
    assert result.valid is ok
    if not ok:
        assert result.reason == "certificate not for TLS (extended key usage)"


def test_wrong_ca_and_wrong_name_report_both(pki_dir, trust):
    issued = make_self_signed(pki_dir, "wrong.example")
    assert check_certificate(issued.presented, DOMAIN, trust) == CertCheck(
        False, False, False, "self-signed; name mismatch: cert is for wrong.example, "
        "*.wrong.example")


def test_no_certificate(trust):
    assert check_certificate([], DOMAIN, trust) == CertCheck(False, False, False, "no certificate")


# --------------------------------------------------------------------------- names


def test_wrong_name(ca, trust):
    assert check(ca, trust, issued_for="wrong.example") == CertCheck(
        False, True, False, "name mismatch: cert is for wrong.example, *.wrong.example")


@pytest.mark.parametrize("domain, ok", [
    ("chat.example.org", True),
    ("CHAT.Example.ORG", True),
    ("chat.example.org.", True),  # a fully-qualified trailing dot changes nothing
    ("example.org", False),  # the wildcard stands for exactly one label ...
    ("a.chat.example.org", False),  # ... not two
    ("chatexample.org", False),
    ("chat.example.net", False),
])
def test_wildcard_dns_id(ca, trust, domain, ok):
    assert check(ca, trust, domain, dns_names=["*.example.org"]).name_ok is ok


@pytest.mark.parametrize("pattern, domain", [
    ("f*.example.org", "foo.example.org"),  # partial-label wildcards are not honoured
    ("*oo.example.org", "foo.example.org"),
    ("a.*.example.org", "a.b.example.org"),  # only in the left-most label
    ("*.*.example.org", "a.b.example.org"),
    ("*.org", "example.org"),  # never right under a top-level domain
    ("*", "example"),
])
def test_wildcards_that_never_match(ca, trust, pattern, domain):
    assert not check(ca, trust, domain, dns_names=[pattern]).name_ok


def test_dns_id_is_case_insensitive(ca, trust):
    assert check(ca, trust, "Example.Org", dns_names=["EXAMPLE.org"]).name_ok


def test_idn_domain_matches_its_a_label_dns_id(ca, trust):
    assert check(ca, trust, "bücher.example", dns_names=["xn--bcher-kva.example"]).valid
    assert check(ca, trust, "xn--bcher-kva.example",
                 dns_names=["xn--bcher-kva.example"]).valid
    assert not check(ca, trust, "bucher.example", dns_names=["xn--bcher-kva.example"]).name_ok


def test_srv_id_alone_names_the_domain(ca, trust):
    result = check(ca, trust, dns_names=[], with_srv_id=True)
    assert result == CertCheck(True, True, True, "ok")


@pytest.mark.parametrize("srv_name", [
    "_xmpp-client.example.org",  # the c2s service does not vouch for s2s
    "_xmpp-server.example.net",
    "_xmpp-server.*.org",
    "_xmpp-serverexample.org",
])
def test_srv_id_for_something_else(ca, trust, srv_name):
    result = check(ca, trust, dns_names=[], other_names=[srv_id(srv_name)])
    assert result.reason == f"name mismatch: cert is for {srv_name}"


def test_srv_id_is_case_insensitive(ca, trust):
    assert check(ca, trust, dns_names=[],
                 other_names=[srv_id("_XMPP-Server.Example.ORG")]).name_ok


def test_xmpp_addr_alone_names_the_domain(ca, trust):
    assert check(ca, trust, dns_names=[], with_xmpp_addr=True).valid


def test_idn_xmpp_addr(ca, trust):
    result = check(ca, trust, "bücher.example", issued_for="bücher.example", dns_names=[],
                   with_xmpp_addr=True)
    assert result.valid
    assert check(ca, trust, "xn--bcher-kva.example", issued_for="bücher.example",
                 dns_names=[], with_xmpp_addr=True).valid


def test_xmpp_addr_of_a_user_does_not_name_the_server(ca, trust):
    result = check(ca, trust, dns_names=[], other_names=[xmpp_addr("admin@example.org")])
    assert result.reason == "name mismatch: cert is for admin@example.org"


def test_cn_is_used_when_there_is_no_subject_alt_name(ca, trust):
    assert check(ca, trust, san=False, common_name=DOMAIN).valid
    assert check(ca, trust, "chat.example.org", san=False, common_name="*.example.org").valid


def test_cn_mismatch_without_san(ca, trust):
    assert check(ca, trust, san=False, common_name="other.example").reason == \
        "name mismatch: cert is for other.example"


def test_no_cn_fallback_when_dns_ids_exist(ca, trust):
    result = check(ca, trust, common_name=DOMAIN, dns_names=["other.example"])
    assert result == CertCheck(False, True, False, "name mismatch: cert is for other.example")


def test_no_cn_fallback_when_only_an_srv_id_exists(ca, trust):
    result = check(ca, trust, common_name=DOMAIN, dns_names=[],
                   other_names=[srv_id("_xmpp-server.other.example")])
    assert not result.name_ok


def test_no_cn_fallback_when_only_an_unrelated_san_exists(ca, trust):
    result = check(ca, trust, common_name=DOMAIN, dns_names=[],
                   other_names=[xmpp_addr("someone@other.example")])
    assert not result.name_ok


def test_certificate_naming_nothing(ca, trust):
    issued = ca.issue(DOMAIN, dns_names=[], other_names=[
        x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")])
    assert check_certificate(issued.presented, DOMAIN, trust).reason == \
        "name mismatch: cert names no domain"


def test_long_name_lists_are_cut_short(ca, trust):
    names = [f"n{i}.example" for i in range(8)]
    assert check(ca, trust, dns_names=names).reason == (
        "name mismatch: cert is for n0.example, n1.example, n2.example, n3.example, "
        "n4.example (+3 more)")


def test_undecodable_other_names_are_ignored(ca, trust):
    garbage = [x509.OtherName(x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5"), b"\x04\x01x"),
               x509.OtherName(x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7"), b"\x0c\x01x")]
    issued = ca.issue(DOMAIN, other_names=garbage)
    assert check_certificate(issued.presented, DOMAIN, trust).valid
    names = presented_names(issued.cert)
    assert (names.srv_ids, names.xmpp_addrs) == ((), ())


@pytest.mark.parametrize("domain", ["", "a b.example", "exa\u0000mple.org"])
def test_nonsense_domain_is_a_mismatch_not_a_crash(ca, trust, domain):
    result = check(ca, trust, domain)
    assert not result.name_ok
    assert result.reason.startswith("name mismatch:")


def test_presented_names(ca):
    issued = ca.issue(DOMAIN, with_xmpp_addr=True, with_srv_id=True)
    assert presented_names(issued.cert) == PresentedNames(
        dns_ids=("example.org", "*.example.org"), srv_ids=("_xmpp-server.example.org",),
        xmpp_addrs=("example.org",), common_names=("example.org",), has_san=True)


# --------------------------------------------------------------------------- trust store


def test_trust_store_from_missing_file():
    with pytest.raises(TrustStoreError, match="CA file /nonexistent/ca.pem: No such file"):
        TrustStore.from_file("/nonexistent/ca.pem")


def test_trust_store_from_pem_without_certificates():
    with pytest.raises(TrustStoreError, match="no PEM certificate found"):
        TrustStore.from_pem(b"hello")


def test_trust_store_skips_and_counts_broken_entries(ca):
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    store = TrustStore.from_pem(broken + ca.ca_path.read_bytes() + broken)
    assert store.certificates == (ca.cert,)
    assert store.skipped == 2


def test_empty_trust_store_is_refused():
    with pytest.raises(TrustStoreError, match="no CA certificate"):
        TrustStore(())


@pytest.mark.skipif(not SYSTEM_BUNDLE.exists(), reason="no system CA bundle")
def test_system_bundle_loads_and_does_not_trust_our_test_ca(ca):
    system = TrustStore.from_file(SYSTEM_BUNDLE)
    assert len(system.certificates) > 10
    result = check_certificate(ca.issue(DOMAIN).presented, DOMAIN, system)
    assert result.reason == "issuer not trusted"


# --------------------------------------------------------------------------- pyOpenSSL


class FakeConnection:
    def __init__(self, leaf, chain):
        self.leaf, self.chain = leaf, chain

    def get_peer_certificate(self, *, as_cryptography=False):
        assert as_cryptography
        return self.leaf

    def get_peer_cert_chain(self, *, as_cryptography=False):
        assert as_cryptography
        return self.chain


def test_chain_from_pyopenssl_shapes(ca):
    leaf, other = ca.issue("a.example").cert, ca.cert
    assert chain_from_pyopenssl(FakeConnection(None, None)) == []
    assert chain_from_pyopenssl(FakeConnection(leaf, None)) == [leaf]
    assert chain_from_pyopenssl(FakeConnection(leaf, [leaf, other])) == [leaf, other]
    assert chain_from_pyopenssl(FakeConnection(leaf, [other])) == [leaf, other]


def _context(issued) -> SSL.Context:
    """Presents ``issued`` with its intermediates, asks for the peer's, accepts anything
    (judging the peer is check_certificate's job, not OpenSSL's)."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate(issued.cert)
    for extra in issued.presented[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(issued.key)
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: True)
    return context


def _handshake(server: SSL.Connection, client: SSL.Connection) -> None:
    """Pump a TLS handshake between two memory-BIO connections."""
    for _ in range(50):
        done = True
        for side in (client, server):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                done = False
        for source, sink in ((client, server), (server, client)):
            try:
                sink.bio_write(source.bio_read(65536))
                done = False
            except SSL.WantReadError:
                pass
        if done:
            return
    raise AssertionError("handshake did not finish")


def test_chain_from_a_real_tls_handshake_both_sides(ca, trust):
    intermediate = ca.intermediate("handshake intermediate")
    server_cert = intermediate.issue("server.example")
    client_cert = intermediate.issue("client.example")
    server = SSL.Connection(_context(server_cert), None)
    server.set_accept_state()
    client = SSL.Connection(_context(client_cert), None)
    client.set_connect_state()
    _handshake(server, client)

    seen_by_server = chain_from_pyopenssl(server)
    seen_by_client = chain_from_pyopenssl(client)
    assert seen_by_server == [client_cert.cert, intermediate.cert]
    assert seen_by_client == [server_cert.cert, intermediate.cert]
    assert check_certificate(seen_by_server, "client.example", trust).valid
    assert check_certificate(seen_by_client, "server.example", trust).valid
    assert check_certificate(seen_by_client, "client.example", trust).reason == \
        "name mismatch: cert is for server.example, *.server.example"
