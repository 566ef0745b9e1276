"""A drop-in test plugin: keeps every session whose connection is lost, queues what it is
sent meanwhile, and hands it to the stream that sends ``<resume previd='FULL-JID'/>`` after
SASL (stream management reduced to the seams it needs).

It registers through its plugin context only; the server ends its hibernated sessions when
it stops.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events
from xmppd.c2s import filters
from xmppd.c2s.hooks import BEFORE_BIND
from xmppd.interfaces import IXmppdPlugin

TEST_NS = "urn:example:sm"


@implementer(IPlugin, IXmppdPlugin)
class SessionKeeper:
    name = "session_keeper"
    requires = ()

    def setup(self, ctx) -> None:
        self.ctx = ctx
        self.queues: dict = {}
        ctx.session_filters(self.install)
        ctx.keep_sessions(self.keep)
        ctx.claim(TEST_NS, "resume", self.resume, states=(BEFORE_BIND,))
        ctx.on(events.SESSION_CLOSED, lambda session, polite: self.queues.pop(session, None))

    def install(self, session) -> None:
        session.filters.add(filters.OUT, self.queue_while_kept, priority=-100)

    def keep(self, session) -> bool:
        self.queues[session] = []
        return True

    def queue_while_kept(self, element, session):
        if session.hibernating:
            self.queues[session].append(element)
            return None
        return element

    def resume(self, element, stream) -> None:
        kept = [s for s in self.queues if s.jid.full() == element.getAttribute("previd")
                and s.account == stream.account]
        if not kept:
            stream.send(domish.Element((TEST_NS, "failed")))
            return
        session = kept[0]
        self.ctx.attach_session(session, stream)
        stream.send(domish.Element((TEST_NS, "resumed")))
        for queued in self.queues.pop(session):
            session.send(queued)


session_keeper = SessionKeeper()
