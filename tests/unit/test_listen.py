"""Every listener gets a server-sized accept queue (xmppd.stream.listen)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from twisted.internet import protocol, reactor
from twisted.trial.unittest import TestCase

from xmppd.stream.listen import DEFAULT_BACKLOG, listen, with_backlog


@pytest.mark.parametrize("description, expected", [
    ("tcp:5222:interface=127.0.0.1", "tcp:5222:interface=127.0.0.1:backlog=1024"),
    ("tcp6:5222", "tcp6:5222:backlog=1024"),
    ("TCP:5222", "TCP:5222:backlog=1024"),
    ("unix:/run/x.sock:mode=600", "unix:/run/x.sock:mode=600:backlog=1024"),
    ("ssl:5223:privateKey=k.pem", "ssl:5223:privateKey=k.pem:backlog=1024"),
    ("tcp:5222:backlog=10", "tcp:5222:backlog=10"),  # the admin's own choice wins
    ("tcp:port=5222:backlog=10:interface=::1", "tcp:port=5222:backlog=10:interface=::1"),
    ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),  # no backlog to set
])
def test_with_backlog(description, expected):
    assert with_backlog(description, DEFAULT_BACKLOG) == expected


class ListeningSocketTests(TestCase):
    """The queue reaches the kernel: the listening socket reports it (ss: Send-Q)."""

    async def test_backlog_reaches_the_listening_socket(self):
        port = await listen(reactor, "tcp:0:interface=127.0.0.1", protocol.Factory(), 777)
        self.addCleanup(port.stopListening)
        self.assertEqual(port.backlog, 777)
        if shutil.which("ss") is None:
            self.skipTest("ss (iproute2) is not installed: the kernel's view was not checked")
        number = port.getHost().port
        out = subprocess.run(["ss", "-Hltn", f"sport = :{number}"], capture_output=True,
                             text=True, check=True).stdout.split()
        self.assertEqual(out[0], "LISTEN")
        self.assertEqual(int(out[2]), 777)  # Send-Q of a listening socket is its backlog
