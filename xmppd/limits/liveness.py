# -*- test-case-name: tests.unit.test_limits -*-
"""Half-open client connections: ping a silent bound session, cut it if nothing comes back.

A phone that lost its network leaves a TCP connection that looks open for as long as we do
not write to it (and then for TCP's retransmission time, ~15 minutes): its session, its
resource (``[c2s] max_resources``) and its presence stay. The sweep that gives idle parsers
back (xmppd.stream.idle) also looks at every bound client stream: after ``ping_after``
seconds without a byte from the client it sends an XEP-0199 ping (any client must answer an
IQ get, if only with an error); if still nothing arrived ``ping_timeout`` seconds later, the
stream is cut as a lost connection (stream management may still resume the session). The
server advertises ``ping_after`` as XEP-0478's idle-seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import count

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StreamError
from xmppd.logs import get_logger

log = get_logger(__name__)

_ids = count(1)


def check_liveness(streams: Iterable, now: float) -> int:
    """One sweep over client streams; how many pings were sent."""
    pinged = 0
    for stream in streams:
        guard = stream.guard
        session = getattr(stream, "session", None)
        if guard is None or session is None or session.jid is None or stream.disconnected:
            continue
        config = guard.limits.config
        if not config.ping_after:
            return pinged
        if guard.heard:
            guard.heard = False
            guard.silent_since = now
            guard.ping_sent = None
        elif guard.ping_sent is None:
            if now - guard.silent_since >= config.ping_after:
                guard.ping_sent = now
                # through the session's filters, as any stanza to it: stream management
                # counts it, so the client's acknowledgements stay in step
                session.send(_ping(stream.domain, session.jid.full()))
                pinged += 1
        elif now - guard.ping_sent >= config.ping_timeout:
            log.info("{jid} did not answer a ping in {timeout:g} s: the connection is gone",
                     jid=session.jid.full(), timeout=config.ping_timeout)
            stream.cut(StreamError("connection-timeout", "no answer to a ping"), lost=True)
    return pinged


def _ping(domain: str, to: str) -> domish.Element:
    iq = domish.Element((ns.CLIENT, "iq"))
    iq["type"] = "get"
    iq["id"] = f"xmppd-ping-{next(_ids)}"
    iq["from"] = domain
    iq["to"] = to
    iq.addElement((ns.PING, "ping"))
    return iq
