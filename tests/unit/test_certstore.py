"""Certificates per domain (xmppd.stream.certstore): layouts, which certificate a name gets,
reloads that keep the old set when a file is bad, and SNI through real TLS handshakes
(xmppd.stream.tls.ServerTLS, xmppd.s2s.tlsctx.S2STLS) over memory BIOs."""

from __future__ import annotations

import os
import shutil

import pytest
from OpenSSL import SSL

from tests.certs import CertificateAuthority
from xmppd.s2s.tlsctx import S2STLS
from xmppd.stream.certstore import CertificateStore, missing_halves
from xmppd.stream.tls import ServerTLS, TLSConfigError

A, B = "a.example", "b.example"


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority(tmp_path / "pki")


def install(issued, directory, name, letsencrypt=False):
    """Copy an issued pair into a certificate directory, Prosody's or Let's Encrypt's way."""
    if letsencrypt:
        (directory / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(issued.cert_path, directory / name / "fullchain.pem")
        shutil.copy(issued.key_path, directory / name / "privkey.pem")
    else:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(issued.cert_path, directory / f"{name}.crt")
        shutil.copy(issued.key_path, directory / f"{name}.key")


def subject(pair) -> str:
    return pair.leaf.subject.rfc4514_string()


def test_both_layouts_and_the_fallbacks(ca, tmp_path):
    certs = tmp_path / "certs"
    install(ca.issue(A), certs, A)  # DNS:a.example, DNS:*.a.example
    install(ca.issue(B, dns_names=[B]), certs, B, letsencrypt=True)  # no wildcard
    install(ca.issue("conference.b.example", dns_names=["conference.b.example"]), certs,
            "conference.b.example")
    store = CertificateStore(None, None, certs, (A, B))
    current = store.current
    assert sorted(current.by_name) == [A, B, "conference.b.example"]
    assert subject(current.for_name(A)) == f"CN={A}"
    assert subject(current.for_name(B)) == f"CN={B}"
    assert current.for_name(B).cert_path == certs / B / "fullchain.pem"
    # a subdomain: the parent's wildcard certificate covers it
    assert subject(current.for_name("pubsub.a.example")) == f"CN={A}"
    # its own file wins over the parent's
    assert subject(current.for_name("conference.b.example")) == "CN=conference.b.example"
    # no certificate covers it: the parent's file all the same, the best there is
    assert subject(current.for_name("upload.b.example")) == f"CN={B}"
    # no SNI, no stream domain: the first domain's, as there is no single pair
    assert subject(current.for_name(None)) == f"CN={A}"
    assert subject(current.for_name("A.Example.")) == f"CN={A}"  # case, trailing dot


def test_the_single_pair_is_the_default_and_the_directory_wins_for_its_names(ca, tmp_path):
    single = ca.issue("default.example")
    install(ca.issue(B), tmp_path / "certs", B)
    store = CertificateStore(single.cert_path, single.key_path, tmp_path / "certs", (A, B))
    assert subject(store.current.for_name(B)) == f"CN={B}"
    assert subject(store.current.for_name(A)) == "CN=default.example"
    assert subject(store.current.for_name(None)) == "CN=default.example"


def test_a_key_of_another_certificate_is_refused_naming_the_file(ca, tmp_path):
    certs = tmp_path / "certs"
    install(ca.issue(A), certs, A)
    shutil.copy(ca.issue(B).key_path, certs / f"{A}.key")
    with pytest.raises(TLSConfigError, match=f"{A}.key is not the key of .*{A}.crt"):
        CertificateStore(None, None, certs, (A,))


def test_no_certificate_at_all(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TLSConfigError, match="no certificate"):
        CertificateStore(None, None, tmp_path / "empty")


def test_half_pairs_are_named(ca, tmp_path):
    certs = tmp_path / "certs"
    install(ca.issue(A), certs, A)
    (certs / f"{A}.key").unlink()
    (certs / B).mkdir()
    shutil.copy(ca.issue(B).cert_path, certs / B / "fullchain.pem")
    problems = missing_halves(certs)
    assert problems == [f"{certs / A}.crt: no {A}.key beside it",
                        f"{certs / B}: has fullchain.pem without privkey.pem"]


def test_reload_takes_renewed_files_and_keeps_the_old_set_on_a_bad_one(ca, tmp_path):
    certs = tmp_path / "certs"
    first = ca.issue(A)
    install(first, certs, A)
    store = CertificateStore(None, None, certs, (A,))
    assert not store.changed_on_disk()
    renewed = ca.issue(A)
    install(renewed, certs, A)
    os.utime(certs / f"{A}.crt", ns=(1, 1))  # a different mtime even within one tick
    assert store.changed_on_disk()
    store.reload()
    assert store.current.for_name(A).leaf == renewed.cert
    assert not store.changed_on_disk()
    kept = store.current
    (certs / f"{A}.crt").write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="not a PEM certificate"):
        store.reload()
    assert store.current is kept  # new connections go on with the renewed certificate


# --------------------------------------------------------------------------- SNI, for real


def handshake(server: SSL.Connection, client: SSL.Connection) -> None:
    """Pump TLS records between two memory-BIO connections until both are done."""
    for _ in range(20):
        for one in (client, server):
            try:
                one.do_handshake()
            except SSL.WantReadError:
                pass
        for source, sink in ((client, server), (server, client)):
            try:
                data = source.bio_read(65536)
            except SSL.WantReadError:
                continue
            sink.bio_write(data)
        if server.get_peer_finished() and client.get_peer_finished():
            return
    raise AssertionError("no handshake")


def client(sni: str | None) -> SSL.Connection:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    connection = SSL.Connection(context, None)
    if sni:
        connection.set_tlsext_host_name(sni.encode())
    connection.set_connect_state()
    return connection


class Stream:
    """What the TLS layer finds under it: the stream and the domain of its header."""

    def __init__(self, **domains) -> None:
        self.__dict__.update(domains)


class Wrapper:
    def __init__(self, stream) -> None:
        self.wrappedProtocol = stream


class EndpointWrapper:
    """What an endpoint puts around an outgoing connection's protocol (_WrappingProtocol)."""

    def __init__(self, stream) -> None:
        self._wrappedProtocol = stream


@pytest.fixture
def two_domains(ca, tmp_path):
    certs = tmp_path / "certs"
    install(ca.issue(A), certs, A)
    install(ca.issue(B), certs, B, letsencrypt=True)
    return CertificateStore(None, None, certs, (A, B))


@pytest.mark.parametrize("sni, header, expected", [
    (A, None, A), (B, None, B), ("muc.b.example", None, B),
    (None, B, B),  # STARTTLS without SNI: the domain of the stream header
    (None, None, A),  # direct TLS without SNI: the default
    (B, A, B),  # SNI decides
])
def test_c2s_presents_the_certificate_of_the_name_asked(two_domains, sni, header, expected):
    tls = ServerTLS(two_domains)
    server = tls.serverConnectionForTLS(Wrapper(Stream(domain=header)))
    server.set_accept_state()
    peer = client(sni)
    handshake(server, peer)
    assert peer.get_peer_certificate().to_cryptography().subject.rfc4514_string() == \
        f"CN={expected}"
    # channel binding (tls-server-end-point) hashes what was presented
    assert server.get_certificate().to_cryptography().subject.rfc4514_string() == \
        f"CN={expected}"


def test_s2s_incoming_by_sni_and_outgoing_by_the_sending_domain(two_domains):
    tls = S2STLS(store=two_domains)
    server = tls.serverConnectionForTLS(Wrapper(Stream(local_domain=None)))
    peer = client(B)
    handshake(server, peer)
    assert peer.get_peer_certificate().to_cryptography().subject.rfc4514_string() == \
        f"CN={B}"
    outgoing = tls.clientConnectionForTLS(Wrapper(EndpointWrapper(Stream(
        local_domain=B, remote_domain="peer.example"))))
    assert outgoing.get_certificate().to_cryptography().subject.rfc4514_string() == f"CN={B}"
    far_end = S2STLS(store=two_domains).serverConnectionForTLS(Wrapper(Stream(local_domain=A)))
    handshake(far_end, outgoing)
    assert far_end.get_servername() == b"peer.example"  # SNI names the peer we want
    assert outgoing.get_peer_certificate().to_cryptography().subject.rfc4514_string() == \
        f"CN={A}"  # no certificate for peer.example there: its stream's domain
    # what the far end saw of us: still the sending domain's, after the whole handshake
    # (OpenSSL runs the SNI callback on clients too: it must not swap our certificate)
    assert far_end.get_peer_certificate().to_cryptography().subject.rfc4514_string() == \
        f"CN={B}"
    assert outgoing.get_certificate().to_cryptography().subject.rfc4514_string() == f"CN={B}"
    outgoing_a = tls.clientConnectionForTLS(Wrapper(Stream(local_domain=A,
                                                           remote_domain="peer.example")))
    assert outgoing_a.get_certificate().to_cryptography().subject.rfc4514_string() == \
        f"CN={A}"


def test_a_reload_changes_new_connections_only(two_domains, ca, tmp_path):
    tls = ServerTLS(two_domains)
    before = tls.serverConnectionForTLS(Wrapper(Stream(domain=A)))
    before.set_accept_state()
    early = client(A)
    handshake(before, early)
    renewed = ca.issue(A)
    install(renewed, tmp_path / "certs", A)
    two_domains.reload()
    after = tls.serverConnectionForTLS(Wrapper(Stream(domain=A)))
    after.set_accept_state()
    late = client(A)
    handshake(after, late)
    assert late.get_peer_certificate().to_cryptography() == renewed.cert
    assert early.get_peer_certificate().to_cryptography() != renewed.cert
    # the established connection still works after the reload
    early.send(b"ping")
    before.bio_write(early.bio_read(65536))
    assert before.recv(4) == b"ping"


def test_which_names_a_certificate_covers_is_read_once_per_name_and_bounded(ca, tmp_path,
                                                                            monkeypatch):
    from xmppd.stream import certstore

    certs = tmp_path / "certs"
    install(ca.issue(A), certs, A)
    pair = CertificateStore(None, None, certs, (A,)).current.by_name[A]
    reads = []
    names_domain = certstore.names_domain
    monkeypatch.setattr(certstore, "names_domain",
                        lambda leaf, name: reads.append(name) or names_domain(leaf, name))
    monkeypatch.setattr(certstore, "COVERS_REMEMBERED", 2)
    assert [pair.covers(n) for n in ("x.a.example", "x.a.example", B, B)] == [
        True, True, False, False]
    assert reads == ["x.a.example", B]
    assert pair.covers("y.a.example") and pair.covers("y.a.example")  # past the bound
    assert reads == ["x.a.example", B, "y.a.example", "y.a.example"]
