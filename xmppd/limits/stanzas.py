# -*- test-case-name: tests.unit.test_limits -*-
"""What a bound client session (or a peer server) may send: a stanza rate, a subscription
budget, and the stream limits it is told about (XEP-0478).

The stanza rate never drops: a stanza over the rate is handled when the bucket allows, and
meanwhile the stream reads nothing more (XmlStream pauses while an element's work is
pending), so a flood backs up into the flooder's own socket while every other session goes
on. A subscription request beyond ``[limits] subscriptions_per_hour`` is not accepted: the
sender gets a ``policy-violation`` error of type ``wait`` and the contact sees nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import task
from twisted.words.xish import domish

from xmppd.errors import StanzaError

STREAM_LIMITS = "urn:xmpp:stream-limits:0"  # XEP-0478


def shape_stanza(stream, element: domish.Element, handle: Callable):
    """``handle(element)`` now, later (a Deferred: reading waits), or an error to the sender."""
    guard = stream.guard
    if (element.name == "presence" and element.getAttribute("type") == "subscribe"
            and not guard.limits.may_subscribe(stream.account.userhost())):
        per_hour = guard.limits.config.subscriptions_per_hour
        error = StanzaError("policy-violation",
                            f"at most {per_hour} subscription requests an hour", type="wait")
        stream.session.send(error.to_response(element))
        return None

    def later():
        if stream.session is None:
            return None  # never read as handled: a resumed session's client sends it again
        return handle(element)

    return paced(stream, later)


def paced(stream, work: Callable[[], object]):
    """``work()`` now, or once the stream's stanza bucket allows (a Deferred: the stream
    reads nothing meanwhile); nothing when the stream is gone by then."""
    guard = stream.guard
    wait = guard.stanza_wait() if guard is not None else 0.0
    if not wait:
        return work()
    return task.deferLater(stream.reactor, wait,
                           lambda: None if stream.disconnected else work())


def stream_limits_feature(stream, idle_seconds: float = 0.0) -> domish.Element:
    """XEP-0478's <limits/>: the stanza size the parser enforces and, when the server pings
    silent streams, after how long (xmppd.limits.liveness)."""
    limits = domish.Element((STREAM_LIMITS, "limits"))
    limits.addElement("max-bytes", content=str(stream.max_stanza_size))
    if idle_seconds:
        limits.addElement("idle-seconds", content=str(int(idle_seconds)))
    return limits
