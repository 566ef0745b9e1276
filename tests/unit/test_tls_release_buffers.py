"""Every TLS context of ours lets OpenSSL free a connection's read and write buffers while the
connection is idle (SSL_MODE_RELEASE_BUFFERS): thousands of idle client and server streams
would otherwise hold some 34 KiB each. Twisted sets it on the c2s contexts; s2s sets it itself.
"""

from __future__ import annotations

from OpenSSL import SSL

from xmppd.s2s.tlsctx import S2STLS
from xmppd.stream.certstore import CertificateStore
from xmppd.stream.selfsigned import make_self_signed
from xmppd.stream.tls import ServerTLS, release_buffers


def _mode(context: SSL.Context) -> int:
    return context.set_mode(0)  # SSL_CTX_set_mode ORs its argument in and returns the mode


def test_c2s_and_s2s_contexts_release_idle_buffers(tmp_path):
    cert, key = tmp_path / "localhost.crt", tmp_path / "localhost.key"
    make_self_signed(cert, key, ["localhost"])
    store = CertificateStore(cert, key)
    pair = store.current.default()
    s2s = S2STLS(store=store)
    contexts = {"c2s": ServerTLS(store).context_for(pair), "s2s in": s2s.context_for(pair),
                "s2s out": s2s.context_for(pair, client=True)}
    for name, context in contexts.items():
        assert _mode(context) & SSL.MODE_RELEASE_BUFFERS, name
    # not OpenSSL's default: without the line in tlsctx.py the s2s contexts would lack it
    assert not _mode(SSL.Context(SSL.TLS_METHOD)) & SSL.MODE_RELEASE_BUFFERS


def _connection_mode(connection: SSL.Connection) -> int:
    return SSL._lib.SSL_set_mode(connection._ssl, 0)  # ORs 0 in: the connection's own mode


def _pump(source: SSL.Connection, sink: SSL.Connection) -> None:
    while True:
        try:
            sink.bio_write(source.bio_read(65536))
        except SSL.WantReadError:
            return


def _connected(store: CertificateStore, sni: str | None) -> tuple[SSL.Connection, SSL.Connection]:
    server = ServerTLS(store).serverConnectionForTLS(None)
    server.set_accept_state()
    peer = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    if sni:
        peer.set_tlsext_host_name(sni.encode())
    peer.set_connect_state()
    for _ in range(10):
        for one, other in ((peer, server), (server, peer)):
            try:
                one.do_handshake()
            except SSL.WantReadError:
                pass
            _pump(one, other)
    assert server.get_peer_finished() and peer.get_peer_finished()
    return server, peer


def test_each_connection_has_the_mode_also_after_sni_picked_another_context(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    for domain in ("a.example", "b.example"):
        make_self_signed(certs / f"{domain}.crt", certs / f"{domain}.key", [domain])
    store = CertificateStore(None, None, certs, ("a.example", "b.example"))
    for sni in (None, "a.example", "b.example"):
        server, _peer = _connected(store, sni)
        assert _connection_mode(server) & SSL.MODE_RELEASE_BUFFERS, sni


def test_idle_connections_give_their_memory_bios_back_and_go_on(tmp_path):
    cert, key = tmp_path / "localhost.crt", tmp_path / "localhost.key"
    make_self_signed(cert, key, ["localhost"])
    server, peer = _connected(CertificateStore(cert, key), "localhost")
    peer.send(b"x" * 16000)  # a burst each way grows both BIOs
    _pump(peer, server)
    assert server.recv(65536) == b"x" * 16000
    server.send(b"y" * 16000)
    _pump(server, peer)
    assert peer.recv(65536) == b"y" * 16000
    before = (server._into_ssl, server._from_ssl)
    assert release_buffers(server)  # the burst's bytes were all read out: new BIOs
    assert (server._into_ssl, server._from_ssl) != before
    peer.send(b"after")
    _pump(peer, server)
    assert server.recv(100) == b"after"
    server.send(b"back")
    _pump(server, peer)
    assert peer.recv(100) == b"back"


def test_bytes_waiting_in_a_bio_keep_it(tmp_path):
    cert, key = tmp_path / "localhost.crt", tmp_path / "localhost.key"
    make_self_signed(cert, key, ["localhost"])
    server, peer = _connected(CertificateStore(cert, key), None)
    server.send(b"not yet read out")
    assert not release_buffers(server)  # in the outgoing BIO
    _pump(server, peer)
    peer.send(b"not yet decrypted")
    server.bio_write(peer.bio_read(65536))
    assert not release_buffers(server)  # in the incoming BIO
    assert server.recv(100) == b"not yet decrypted"
    assert release_buffers(server)
    assert not release_buffers(None)  # plain TCP: nothing to do
