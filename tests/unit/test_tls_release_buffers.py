"""Every TLS context of ours lets OpenSSL free a connection's read and write buffers while the
connection is idle (SSL_MODE_RELEASE_BUFFERS): thousands of idle client and server streams
would otherwise hold some 34 KiB each. Twisted sets it on the c2s contexts; s2s sets it itself.
"""

from __future__ import annotations

from OpenSSL import SSL

from xmppd.s2s.tlsctx import S2STLS
from xmppd.stream.certstore import CertificateStore
from xmppd.stream.selfsigned import make_self_signed
from xmppd.stream.tls import ServerTLS


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
