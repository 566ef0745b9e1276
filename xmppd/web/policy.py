# -*- test-case-name: tests.unit.test_web_framing -*-
"""Who a web client is and whether its page may talk to us (``[http]``).

``cors_origins``: the browser Origins allowed ("*": any). A request without an Origin is
not from a browser page and is always allowed; XMPP authenticates inside the stream, so
there is no cookie a foreign page could ride on, but an operator may still pin the pages.

``trusted_proxies``: only a request coming straight from one of these addresses has its
``X-Forwarded-For`` (the client's address: the rightmost one that is not itself a trusted
proxy) and ``X-Forwarded-Proto`` (https: the client's leg is encrypted) believed. From
anyone else the headers are ignored, or any client could pick its address for the limits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from twisted.internet.address import IPv4Address, IPv6Address


@dataclass(frozen=True)
class Client:
    address: str  # the client's IP address, after trusted proxies
    secure: bool  # its leg to us (or to the trusted proxy) is encrypted, or on loopback


@dataclass(frozen=True)
class WebPolicy:
    cors_origins: tuple[str, ...] = ("*",)
    trusted_proxies: tuple[str, ...] = ()

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is None or "*" in self.cors_origins or origin.lower() in self.cors_origins

    def client(self, peer: str, encrypted: bool, headers: Mapping[str, str]) -> Client:
        """The client behind a connection from ``peer`` (``headers``: lower-case names).
        A connection on loopback counts as encrypted: it never leaves this host."""
        address = peer
        proto = None
        if peer in self.trusted_proxies:
            for hop in reversed(_addresses(headers.get("x-forwarded-for", ""))):
                address = hop
                if hop not in self.trusted_proxies:
                    break
            proto = _forwarded_proto(headers.get("x-forwarded-proto", ""))
        if proto is not None:
            secure = proto == "https"
        else:
            secure = encrypted or _loopback(peer)
        return Client(address, secure)


def _addresses(value: str) -> list[str]:
    """The IP addresses of a comma-separated header, in order; anything else is skipped."""
    hops = []
    for item in value.split(","):
        try:
            hops.append(str(ipaddress.ip_address(item.strip())))
        except ValueError:
            pass
    return hops


def _forwarded_proto(value: str) -> str | None:
    """"https" when every leg the header names is (a proxy that appends keeps what the
    client wrote in front, so its first value proves nothing), "http" otherwise, None
    without the header."""
    legs = [leg.strip().lower() for leg in value.split(",")]
    if legs == [""]:
        return None
    return "https" if all(leg == "https" for leg in legs) else "http"


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def peer_address(host: str, port: int) -> IPv4Address | IPv6Address:
    """A Twisted address for a client address learnt from a header."""
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)
