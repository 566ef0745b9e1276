"""TLS for server-to-server streams: both ends present our certificate and ask for theirs.

Certificates are not judged inside the handshake (a peer without a valid one may still be
acceptable under a lower policy level); xmppd.s2s.certs judges them afterwards, per domain.
Which of our certificates is presented comes from the certificate store
(xmppd.stream.certstore): incoming, the one for the name the peer asks with SNI (else the
domain of its stream header); outgoing, the one of the sending domain. A reload of the store
changes what new connections present; established streams keep theirs.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from OpenSSL import SSL, crypto
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from zope.interface import implementer

from xmppd.stream.tls import (
    TLSConfigError,
    stream_domain,
    stream_under,
    switch_to_sni_context,
)


def _accept_any(connection, certificate, errno, depth, ok) -> bool:
    return True  # judged later by xmppd.s2s.certs, against the policy for that domain


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class S2STLS:
    """Creates TLS connections for s2s; outgoing ones send SNI for the peer's domain.

    Give either ``certificate`` and ``key`` (one pair for every domain) or ``store``.
    """

    def __init__(self, certificate: Path | None = None, key: Path | None = None,
                 min_version: str = "1.2", *, store=None) -> None:
        if store is None:
            from xmppd.stream.certstore import CertificateStore

            store = CertificateStore(certificate, key)
        self.store = store
        self.min_version = min_version
        self._contexts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._client_contexts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.context_for(store.current.default())  # a bad pair fails now, not at first use

    @property
    def context(self) -> SSL.Context:
        """The default certificate's context."""
        return self.context_for(self.store.current.default())

    def context_for(self, pair, client: bool = False) -> SSL.Context:
        """The s2s context presenting ``pair`` (a certstore.KeyPair), made once per side.

        Outgoing connections get a context without the SNI callback: OpenSSL calls it on
        clients too (with the name we asked for), which would swap our certificate for the
        peer's domain's."""
        contexts = self._client_contexts if client else self._contexts
        context = contexts.get(pair)
        if context is not None:
            return context
        context = SSL.Context(SSL.TLS_METHOD)
        # An idle stream keeps no TLS read and write buffers (some 34 KiB between them), as
        # the c2s contexts (made by Twisted's CertificateOptions) already do.
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        context.set_min_proto_version(SSL.TLS1_3_VERSION if self.min_version == "1.3"
                                      else SSL.TLS1_2_VERSION)
        try:
            context.use_certificate(pair.leaf)
            for extra in pair.chain[1:]:
                context.add_extra_chain_cert(extra)
            context.use_privatekey(pair.key)
            context.check_privatekey()
        except (SSL.Error, crypto.Error) as error:
            raise TLSConfigError(f"{pair.cert_path} / {pair.key_path}: {error}") from None
        context.set_verify(SSL.VERIFY_PEER, _accept_any)
        context.set_session_id(b"xmppd-s2s")
        if not client:
            context.set_tlsext_servername_callback(self._servername)
        contexts[pair] = context
        return context

    def clientConnectionForTLS(self, protocol) -> SSL.Connection:
        stream = stream_under(protocol)
        local = getattr(stream, "local_domain", None)
        pair = self.store.current.for_name(local)
        connection = SSL.Connection(self.context_for(pair, client=True), None)
        server_name = getattr(stream, "remote_domain", None)
        if server_name:
            connection.set_tlsext_host_name(server_name.encode("idna"))
        connection.set_connect_state()
        return connection

    def serverConnectionForTLS(self, protocol) -> SSL.Connection:
        pair = self.store.current.for_name(stream_domain(protocol))
        connection = SSL.Connection(self.context_for(pair), None)
        connection.set_accept_state()
        return connection

    def _servername(self, connection: SSL.Connection) -> None:
        switch_to_sni_context(connection, self.store, self.context_for)
