"""Free ports for the daemons the tests start (xmppd, Prosody, ejabberd, Redis, ...).

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the same range
every outgoing connection and every Erlang distribution listener draws from; a daemon that
takes seconds to boot (ejabberd) then finds it taken. So ports are picked below that range,
checked free on every address, and leased: a port handed out is not handed out again for ten
minutes by any test process on the machine (a lease file in the temporary directory), since
several runs side by side would otherwise pick the same port before its daemon binds it.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
import time
from pathlib import Path

LEASE = 600.0  # seconds a handed-out port stays reserved for its taker
_LEASES = Path(tempfile.gettempdir()) / "xmppd-test-ports"


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


def _create(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        return False


def _lease(port: int) -> bool:
    """Whether this process now holds the port's lease (a new one, or an expired one)."""
    _LEASES.mkdir(exist_ok=True)
    path = _LEASES / str(port)
    if _create(path):
        return True
    try:
        if time.time() - path.stat().st_mtime < LEASE:
            return False
        path.unlink()
    except FileNotFoundError:
        pass
    return _create(path)


def free_port(ip: str = "127.0.0.1") -> int:
    """A port below the ephemeral range that nothing is bound to now (``ip`` is where the
    caller will listen; it must be a local address)."""
    high = max(_ephemeral_low(), 12000)
    for _ in range(2000):
        port = random.randrange(10000, high)
        if not _free_everywhere(port):
            continue
        with socket.socket() as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                continue
        if _lease(port):
            return port
    raise RuntimeError("no free port below the ephemeral range")
