"""The connectivity area: do our ports answer as XMPP, where the config and DNS say?

Each listener (and each address and port DNS advertises) gets a real connection: a stream
header on STARTTLS ports (the features must offer STARTTLS), a TLS handshake with SNI on
direct TLS ports (the certificate presented must be the one on disk: a server not reloaded
after a renewal shows here). Blocking sockets in a thread, with short time-outs.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import threads

from xmppd.check.dns import Advertised
from xmppd.check.findings import ERROR, OK, WARN, Finding
from xmppd.check.listeners import Listener

AREA = "connectivity"
TIMEOUT = 3.0
STREAMS = {"c2s": "jabber:client", "s2s": "jabber:server"}


def probe(kind: str, domain: str, address: str, port: int,
          expected: x509.Certificate | None, timeout: float = TIMEOUT) -> Finding:
    """Connect and speak the first step of ``kind`` (c2s, c2s-tls, s2s, s2s-tls)."""
    where = f"{kind} {domain} at {_host_port(address, port)}"
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            if kind.endswith("-tls"):
                return _tls_probe(sock, where, domain, expected)
            return _starttls_probe(sock, where, kind, domain)
    except (OSError, ssl.SSLError) as error:
        return Finding(ERROR, AREA, f"{where}: cannot connect: {error.strerror or error}"
                       if isinstance(error, OSError) and error.strerror
                       else f"{where}: {error}")


def _starttls_probe(sock: socket.socket, where: str, kind: str, domain: str) -> Finding:
    header = (f"<?xml version='1.0'?><stream:stream xmlns='{STREAMS[kind]}' "
              f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>")
    sock.sendall(header.encode())
    received = b""
    while b"features" not in received or b"</stream:features>" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
        if len(received) > 65536:
            break
    try:
        sock.sendall(b"</stream:stream>")  # a polite end, not a dropped connection in its log
    except OSError:
        pass
    if b"<stream:stream" not in received and b":stream " not in received:
        return Finding(ERROR, AREA, f"{where}: answers, but not as XMPP")
    if b"urn:ietf:params:xml:ns:xmpp-tls" not in received:
        return Finding(WARN, AREA, f"{where}: answers XMPP but offers no STARTTLS")
    return Finding(OK, AREA, f"{where}: answers XMPP, offers STARTTLS")


def _tls_probe(sock: socket.socket, where: str, domain: str,
               expected: x509.Certificate | None) -> Finding:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificates area judges it; here: which one
    with context.wrap_socket(sock, server_hostname=domain) as tls:
        der = tls.getpeercert(binary_form=True)
    if expected is not None and der != expected.public_bytes(Encoding.DER):
        return Finding(WARN, AREA, f"{where}: presents another certificate than the one on "
                                   f"disk for {domain} (not reloaded since a renewal?)")
    return Finding(OK, AREA, f"{where}: TLS handshake done, presents the certificate for "
                             f"{domain}")


async def check_connectivity(listeners: Sequence[Listener], hosts: Sequence[str],
                             advertised: Sequence[Advertised],
                             expected: Callable[[str], x509.Certificate | None],
                             timeout: float = TIMEOUT) -> list[Finding]:
    """Probe every listener (for the first host) and every address DNS advertised."""
    jobs = []
    domain = hosts[0] if hosts else "localhost"
    for listener in listeners:
        jobs.append((listener.kind, domain, listener.host, listener.port))
    seen = {(kind, address, port) for kind, _d, address, port in jobs}
    for target in advertised:
        if (target.kind, target.address, target.port) not in seen:
            seen.add((target.kind, target.address, target.port))
            jobs.append((target.kind, target.domain, target.address, target.port))
    findings = []
    for kind, name, address, port in jobs:
        findings.append(await threads.deferToThread(probe, kind, name, address, port,
                                                    expected(name), timeout))
    return findings


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
