# -*- test-case-name: tests.unit.test_sm_manager -*-
"""XEP-0198 stream management: acks, and sessions that survive a dropped connection.

Options, in ``[plugins.smacks]``:

- ``resumption_timeout`` (seconds, default 3600): how long a session whose connection was
  lost stays bound and available, queueing what it is sent, for its client to resume it;
  mobile clients expect an hour or more (Conversations asks for 300 s and retries for
  hours, but a server that forgets sooner forces a full login and a MAM catch-up). A
  client's shorter ``max`` wins; 0 turns resumption off (acks still work);
- ``max_unacked`` (default 500): stanzas a hibernating session may queue; one more ends it,
  with the unacknowledged messages kept offline; a connected session may hold ten times as
  many (a login's presence burst arrives before the client could ack any of it);
- ``request_after`` (default 5) and ``request_delay`` (seconds, default 5): the server asks
  for an ack once that many stanzas wait, or that long after the first one;
- ``ack_timeout`` (seconds, default 60; 0: off): a resumable session whose client leaves
  that request unanswered so long loses its connection, presumed dead, and hibernates.

In a cluster, a session hibernated on one node is resumed on any other (xmppd.sm.handover,
xmppd.cluster.resumption). The logic is xmppd.sm; this module reads the options and
registers it.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from xmppd import events, ns
from xmppd.c2s.hooks import BEFORE_BIND, BOUND
from xmppd.interfaces import IResumableSessions, IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys
from xmppd.sasl2.sm import InlineStreamManagement
from xmppd.sm.manager import Settings, StreamManagement

DEFAULTS = Settings(resumption_timeout=3600, max_unacked=500, request_after=5, request_delay=5,
                    ack_timeout=60)
DAY = 86400


@implementer(IPlugin, IXmppdPlugin)
class Smacks:
    name = "smacks"
    requires = ()

    def __init__(self) -> None:
        self.manager: StreamManagement | None = None

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, ("resumption_timeout", "max_unacked", "request_after",
                                  "request_delay", "ack_timeout"))
        settings = Settings(
            resumption_timeout=ctx.option_int("resumption_timeout",
                                              DEFAULTS.resumption_timeout, 0, 7 * DAY),
            max_unacked=ctx.option_int("max_unacked", DEFAULTS.max_unacked, 1),
            request_after=ctx.option_int("request_after", DEFAULTS.request_after, 1),
            request_delay=ctx.option_int("request_delay", DEFAULTS.request_delay, 0, 3600),
            ack_timeout=ctx.option_int("ack_timeout", DEFAULTS.ack_timeout, 0, 3600))
        manager = self.manager = StreamManagement(ctx, settings)
        ctx.stream_feature(manager.feature)
        # <enable/> before bind and <resume/> after it are claimed too: the XEP wants <failed/>
        ctx.claim(ns.SM, "enable", manager.on_enable, states=(BEFORE_BIND, BOUND))
        ctx.claim(ns.SM, "r", manager.on_r)
        ctx.claim(ns.SM, "a", manager.on_a)
        ctx.claim(ns.SM, "resume", manager.on_resume, states=(BEFORE_BIND, BOUND))
        ctx.keep_sessions(manager.keep)
        inline = InlineStreamManagement(manager)  # XEP-0198 §7: in SASL2 and Bind 2
        ctx.sasl2_extension(inline, priority=100)  # resume before FAST issues tokens
        ctx.bind2_feature(ns.SM, inline.enable)
        ctx.on(events.SESSION_CLOSED, manager.session_closed)
        ctx.provide(IResumableSessions, manager)  # what another node of a cluster asks for

    def teardown(self) -> None:
        if self.manager is not None:
            self.manager.stop()
            self.manager = None


smacks = Smacks()
