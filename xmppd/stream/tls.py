"""TLS for streams: the server context, and channel-binding data for SCRAM-PLUS."""

from __future__ import annotations

import hashlib
import weakref
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import TLSVersion
from zope.interface import implementer

from xmppd.logs import get_logger

log = get_logger(__name__)

_MIN_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}
EXPORTER_LABEL = b"EXPORTER-Channel-Binding"  # RFC 9266 §2


class TLSConfigError(Exception):
    """The certificate or key cannot be used; the message names the file."""


def server_context_factory(certificate: Path, key: Path,
                           min_version: str = "1.2") -> ssl.CertificateOptions:
    """A context factory for STARTTLS and direct TLS listeners; checks the files now."""
    try:
        cert_pem = Path(certificate).read_bytes()
        key_pem = Path(key).read_bytes()
    except OSError as error:
        raise TLSConfigError(f"cannot read {error.filename}: {error.strerror}") from None
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
        private_key = crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem)
    except (ValueError, crypto.Error) as error:
        raise TLSConfigError(f"{certificate} / {key}: not a PEM certificate and key ({error})")
    leaf = crypto.X509.from_cryptography(chain[0])
    extra = [crypto.X509.from_cryptography(c) for c in chain[1:]]
    try:
        return ssl.CertificateOptions(
            privateKey=private_key, certificate=leaf, extraCertChain=extra,
            raiseMinimumTo=_MIN_VERSIONS[min_version], fixBrokenPeers=False,
        )
    except (ValueError, SSL.Error) as error:
        raise TLSConfigError(f"{certificate} does not match {key}: {error}") from None


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """Client listeners' TLS (STARTTLS and direct): each domain presents its own certificate.

    The certificate is the one the client names with SNI, else the one of the domain its
    stream header named (STARTTLS), else the default (xmppd.stream.certstore). Each new
    connection takes the store's current set, so a reload changes what new connections see
    while established ones keep their TLS.
    """

    def __init__(self, store, min_version: str = "1.2") -> None:
        self.store = store
        self.min_version = min_version
        self._contexts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # the TLS layers' factory, one for all connections (xmppd.stream.starttls)
        self.tls_layer_factories: dict = {}

    def context_for(self, pair) -> SSL.Context:
        """The configured context presenting ``pair`` (a certstore.KeyPair), made once."""
        context = self._contexts.get(pair)
        if context is None:
            options = ssl.CertificateOptions(
                privateKey=crypto.PKey.from_cryptography_key(pair.key),
                certificate=crypto.X509.from_cryptography(pair.leaf),
                extraCertChain=[crypto.X509.from_cryptography(c) for c in pair.chain[1:]],
                raiseMinimumTo=_MIN_VERSIONS[self.min_version], fixBrokenPeers=False)
            context = options.getContext()
            context.set_tlsext_servername_callback(self._servername)
            self._contexts[pair] = context
        return context

    def serverConnectionForTLS(self, protocol) -> SSL.Connection:
        pair = self.store.current.for_name(stream_domain(protocol))
        return SSL.Connection(self.context_for(pair), None)

    def _servername(self, connection: SSL.Connection) -> None:
        switch_to_sni_context(connection, self.store, self.context_for)


def switch_to_sni_context(connection: SSL.Connection, store, context_for) -> None:
    """In the ClientHello callback: present the certificate for the name the peer asked."""
    raw = connection.get_servername()
    if not raw:
        return  # no SNI: the context chosen from the stream's domain stays
    try:
        pair = store.current.for_name(raw.decode("ascii"))
        connection.set_context(context_for(pair))
    except Exception:  # noqa: BLE001 - an exception here would abort in OpenSSL's callback
        log.failure("TLS: cannot choose the certificate for SNI {name!r}", name=raw)


def stream_domain(protocol) -> str | None:
    """The domain the stream under a TLS protocol is for, when its header named one."""
    stream = stream_under(protocol)
    return getattr(stream, "local_domain", None) or getattr(stream, "domain", None)


def stream_under(protocol):
    """The protocol under the TLS layer and any endpoint wrappers (an outgoing connection
    made through an endpoint is wrapped once more, in ``_WrappingProtocol``)."""
    for _ in range(8):
        inner = (getattr(protocol, "wrappedProtocol", None)
                 or getattr(protocol, "_wrappedProtocol", None))
        if inner is None:
            break
        protocol = inner
    return protocol


def tls_connection(transport) -> SSL.Connection | None:
    """The pyOpenSSL connection under a transport, once TLS is on; None on plain TCP."""
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle else None
    return handle if isinstance(handle, SSL.Connection) else None


def release_buffers(connection: SSL.Connection | None) -> bool:
    """Give back the memory a TLS connection's two memory BIOs grew to; True if released.

    pyOpenSSL hands OpenSSL a memory BIO for each direction (Twisted's TLS layer feeds one and
    drains the other), and a memory BIO keeps the capacity of the most it ever held: the
    handshake's flight and a burst of stanzas stay allocated for the connection's life
    (about 4.5 KiB an idle session after a login; 40 KiB after one 16 KiB record each way).
    ``SSL_MODE_RELEASE_BUFFERS`` frees OpenSSL's own record buffers, not these. When both are
    empty, as they are between reactor turns, two new empty BIOs take their place
    (``SSL_set_bio`` frees the old ones). Meant for idle streams (xmppd.stream.idle); a
    connection without memory BIOs (a socket one, or another pyOpenSSL) is left alone.
    """
    into = getattr(connection, "_into_ssl", None)
    out = getattr(connection, "_from_ssl", None)
    ssl_ = getattr(connection, "_ssl", None)
    if into is None or out is None or ssl_ is None:
        return False
    lib, ffi = SSL._lib, SSL._ffi
    if lib.BIO_get_mem_data(into, ffi.NULL) or lib.BIO_get_mem_data(out, ffi.NULL):
        return False  # bytes in flight: another time
    new_into = lib.BIO_new(lib.BIO_s_mem())
    new_out = lib.BIO_new(lib.BIO_s_mem())
    if new_into == ffi.NULL or new_out == ffi.NULL:
        for bio in (new_into, new_out):
            if bio != ffi.NULL:
                lib.BIO_free(bio)
        return False
    lib.SSL_set_bio(ssl_, new_into, new_out)
    connection._into_ssl, connection._from_ssl = new_into, new_out
    return True


def channel_binding_types(connection: SSL.Connection | None) -> list[str]:
    """The binding types this connection can give, best first.

    tls-exporter only on TLS 1.3 (RFC 9266 §3: on 1.2 it needs extended master secret, which
    pyOpenSSL cannot confirm); tls-server-end-point whenever we present a certificate.
    """
    if connection is None:
        return []
    types = []
    if connection.get_protocol_version_name() == "TLSv1.3":
        types.append("tls-exporter")
    if connection.get_certificate() is not None:
        types.append("tls-server-end-point")
    return types


def channel_binding_data(connection: SSL.Connection | None, binding_type: str) -> bytes | None:
    if binding_type not in channel_binding_types(connection):
        return None
    if binding_type == "tls-exporter":
        return connection.export_keying_material(EXPORTER_LABEL, 32)
    return certificate_hash(connection.get_certificate().to_cryptography())


def certificate_hash(certificate: x509.Certificate) -> bytes:
    """RFC 5929 §4.1: the certificate's own signature hash, but never weaker than SHA-256."""
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        name = "sha256"
    else:
        name = algorithm.name
    return hashlib.new(name, certificate.public_bytes(Encoding.DER)).digest()
