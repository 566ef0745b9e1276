"""TLS for server-to-server streams: both ends present our certificate and ask for theirs.

Certificates are not judged inside the handshake (a peer without a valid one may still be
acceptable under a lower policy level); xmppd.s2s.certs judges them afterwards, per domain.
"""

from __future__ import annotations

from pathlib import Path

from OpenSSL import SSL, crypto
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from zope.interface import implementer

from xmppd.stream.tls import TLSConfigError


def _accept_any(connection, certificate, errno, depth, ok) -> bool:
    return True  # judged later by xmppd.s2s.certs, against the policy for that domain


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class S2STLS:
    """Creates TLS connections for s2s; outgoing ones send SNI for the peer's domain."""

    def __init__(self, certificate: Path, key: Path, min_version: str = "1.2") -> None:
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION if min_version == "1.3"
                                      else SSL.TLS1_2_VERSION)
        try:
            context.use_certificate_chain_file(str(certificate))
            context.use_privatekey_file(str(key))
            context.check_privatekey()
        except (SSL.Error, crypto.Error) as error:
            raise TLSConfigError(f"{certificate} / {key}: {error}") from None
        context.set_verify(SSL.VERIFY_PEER, _accept_any)
        context.set_session_id(b"xmppd-s2s")
        self.context = context

    def clientConnectionForTLS(self, protocol) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        server_name = getattr(protocol.wrappedProtocol if hasattr(protocol, "wrappedProtocol")
                              else protocol, "remote_domain", None)
        if server_name:
            connection.set_tlsext_host_name(server_name.encode("idna"))
        connection.set_connect_state()
        return connection

    def serverConnectionForTLS(self, protocol) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_accept_state()
        return connection
