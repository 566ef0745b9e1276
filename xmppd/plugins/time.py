"""XEP-0202: the server's own clock, asked of the host.

The answer is UTC with a ``+00:00`` offset: the offset of the machine's local zone says where
the server stands and helps nobody compare clocks, which is what clients ask for (XEP-0202 §1).
The time is the reactor's, so tests read a fixed Clock and the answer is exact.
Times follow XEP-0082's DateTime profile: seconds, milliseconds when there are any, 'Z'.
"""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import ns
from xmppd.interfaces import IXmppdPlugin
from xmppd.options import no_options


def xep0082_utc(seconds: float) -> str:
    """POSIX ``seconds`` as an XEP-0082 DateTime in UTC ('Z'); milliseconds only when not 0."""
    moment = datetime.fromtimestamp(seconds, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else text + "Z"


@implementer(IXmppdPlugin)
class EntityTime:
    name = "time"
    requires = ()

    configure = staticmethod(no_options)  # checked before the database opens

    def setup(self, ctx) -> None:
        self.clock = ctx.reactor
        ctx.feature(ns.TIME)
        ctx.iq("get", ns.TIME, "time", self.on_time)

    def on_time(self, stanza, origin) -> domish.Element:
        answer = domish.Element((ns.TIME, "time"))
        answer.addElement("tzo", content="+00:00")
        answer.addElement("utc", content=xep0082_utc(self.clock.seconds()))
        return answer


time = EntityTime()
