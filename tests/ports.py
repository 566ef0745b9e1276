"""Free ports for the daemons the tests start (xmppd, Prosody, ejabberd, Redis, ...).

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the same range
every outgoing connection and every Erlang distribution listener draws from; a daemon that
takes seconds to boot (ejabberd) then finds it taken. So ports are picked below that range,
checked free on every address, and never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_everywhere(port: int) -> bool:
    """Whether nothing is bound to ``port`` on any address (a wildcard bind conflicts with
    every address's socket)."""
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port(ip: str = "127.0.0.1") -> int:
    """A port below the ephemeral range that nothing is bound to now (``ip`` is where the
    caller will listen; it must be a local address)."""
    high = max(_ephemeral_low(), 12000)
    for _ in range(2000):
        port = random.randrange(10000, high)
        if port in _handed_out or not _free_everywhere(port):
            continue
        with socket.socket() as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")
