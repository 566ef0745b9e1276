"""A bare socket speaking raw XML to the server: for what a polite client library won't send."""

from __future__ import annotations

import socket
import ssl
import time

HEADER = ("<?xml version='1.0'?><stream:stream to='{to}' version='1.0' "
          "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.received = b""

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def header(self, to: str = "localhost") -> None:
        self.send(HEADER.format(to=to))

    def read_until(self, marker: bytes, timeout: float | None = None) -> bytes:
        """Read until ``marker`` shows up (or the peer closes); returns all read so far."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {marker!r} in {self.received[-500:]!r}")
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

    def close(self) -> None:
        self.sock.close()
