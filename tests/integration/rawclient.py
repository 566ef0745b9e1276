"""A bare socket speaking raw XML to the server: for what a polite client library won't send."""

from __future__ import annotations

import socket
import ssl
import time

HEADER = ("<?xml version='1.0'?><stream:stream to='{to}' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0,
                 source: str | None = None) -> None:
        """``source``: the local address to connect from (127.0.0.x: another host)."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.received = b""

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def header(self, to: str = "localhost") -> None:
        self.send(HEADER.format(to=to))

    def read_until(self, marker: bytes, timeout: float | None = None) -> bytes:
        """Read until ``marker`` shows up (or the peer closes); returns all read so far."""
        return self.read_until_any(marker, timeout=timeout)

    def read_until_any(self, *markers: bytes, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not any(marker in self.received for marker in markers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"none of {markers!r} in {self.received[-500:]!r}")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.received += chunk
        return self.received

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"still open; got {self.received[-500:]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return self.received
            if not chunk:
                return self.received
            self.received += chunk

    def starttls(self, cafile: str, server_hostname: str = "localhost") -> None:
        context = ssl.create_default_context(cafile=cafile)
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.received = b""

    def starttls_openssl(self, cafile: str, server_hostname: str = "localhost"):
        """TLS through pyOpenSSL, which (unlike the ssl module) exports keying material."""
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.load_verify_locations(cafile)
        context.set_verify(SSL.VERIFY_PEER, lambda *args: args[-1])
        self.sock.settimeout(None)
        connection = SSL.Connection(context, self.sock)
        connection.set_tlsext_host_name(server_hostname.encode())
        connection.set_connect_state()
        connection.do_handshake()
        self.sock = _OpenSSLSocket(connection, self.timeout)
        self.received = b""
        return connection

    def close(self) -> None:
        self.sock.close()


class _OpenSSLSocket:
    """Just enough of a socket over a blocking pyOpenSSL connection for RawClient."""

    def __init__(self, connection, timeout: float) -> None:
        self.connection = connection
        self.timeout = timeout

    def settimeout(self, timeout: float) -> None:
        self.timeout = timeout

    def sendall(self, data: bytes) -> None:
        self.connection.sendall(data)

    def recv(self, size: int) -> bytes:
        import select

        from OpenSSL import SSL

        while True:
            if not self.connection.pending():
                readable, _, _ = select.select([self.connection], [], [], self.timeout)
                if not readable:
                    raise TimeoutError("nothing to read")
            try:
                return self.connection.recv(size)
            except SSL.WantReadError:
                continue
            except (SSL.ZeroReturnError, SSL.SysCallError):
                return b""

    def close(self) -> None:
        self.connection.close()
