# -*- test-case-name: tests.unit.test_sm_manager -*-
"""Stream management for the sessions of one server: enable, acks, hibernate, resume, end.

A session pays nothing until its client sends ``<enable/>``: only then does it get its two
filters, closest to the wire (IN at +1000 counts what the client sent before anything can
hold or drop it; OUT at -1000 queues what is written to it after every other filter).

- Acks: the client's ``<r/>`` is answered at once with the count of stanzas it sent; the
  stream handles elements in order and waits for each stanza's work (a durable offline
  write, say), so that ``<a/>`` promises only what is done and survives even a SIGKILL.
  The server asks for acks itself, coalesced: one ``<r/>`` outstanding at a time, sent
  ``request_delay`` seconds after the first unacknowledged stanza, or in the same reactor
  turn once ``request_after`` are waiting. A resumable session whose client leaves an
  ``<r/>`` unanswered for ``ack_timeout`` seconds loses its connection and hibernates.
- Hibernation: a resumable session whose connection is lost without a close stays bound
  and available (xmppd.c2s.hooks), queueing what it is sent, for ``timeout`` seconds
  (the shorter of ours and the client's ``max``).
- Resumption: ``<resume previd h/>`` after SASL, on a stream of the same account, takes the
  session over (its old stream, if still open, gets ``<conflict/>``) and sends again what
  the client did not acknowledge. An id that is unknown, expired or another account's
  is ``item-not-found``, the same answer for all three so ids cannot be probed.
- In a cluster: a ``<resume/>`` whose session is not here asks the other nodes
  (IRemoteResumption, xmppd.cluster.resumption); the node that holds it hands it over
  (``hand_over``: its state, xmppd.sm.handover, and the session forgotten there without an
  end anyone sees), it is ``adopt``-ed here, hibernated, and resumed as if it had always
  been here. Same answer for the same refusals, whichever node is asked.
- The end: a session that ends for good (timeout, a polite close, a stream error, a kick)
  hands what it did not acknowledge to xmppd.sm.rescue (offline storage, or an error to
  the sender).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.c2s import filters
from xmppd.c2s.detached import DetachedStream
from xmppd.c2s.hooks import format_duration
from xmppd.c2s.sessions import ClientSession
from xmppd.errors import StreamError
from xmppd.interfaces import IArchiveWrites, IRemoteResumption, IResumableSessions
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.sm import handover
from xmppd.sm.counter import OutboundQueue, increment, parse_uint32
from xmppd.sm.elements import delayed, failed, sm_element
from xmppd.sm.rescue import Rescue

log = get_logger(__name__)

IN_PRIORITY = 1000  # first to see what the client sent
OUT_PRIORITY = -1000  # last before the wire: counts only what is really written
REMEMBERED_IDS = 10_000  # ended resumable sessions whose final 'h' a <failed/> may tell
TRUE_VALUES = ("true", "1")
LIVE_FACTOR = 10  # a connected session may hold this many times max_unacked (see _limit)


@dataclass(frozen=True)
class Settings:
    """The options of [plugins.smacks], checked by the plugin."""

    resumption_timeout: int  # seconds a lost session waits for a resume; 0: no resumption
    max_unacked: int  # stanzas queued for one client before its session ends
    request_after: int  # unacknowledged stanzas that make the server send <r/> at once
    request_delay: int  # seconds after the first unacknowledged stanza, at the latest
    ack_timeout: int  # seconds an <r/> may go unanswered before the connection is presumed
    # dead (a resumable session then hibernates); 0: wait for TCP to notice


class ManagedSession:
    """The stream management state of one session."""

    __slots__ = ("expiry", "handled", "id", "queue", "request", "requested", "session",
                 "timeout", "undo")

    def __init__(self, session, id: str | None, timeout: int) -> None:
        self.session = session
        self.id = id  # the SM-ID, only for a resumable session
        self.timeout = timeout
        self.handled = 0  # stanzas from the client, counted as they arrive (mod 2^32)
        self.queue = OutboundQueue()
        self.requested = False  # an <r/> is out and its <a/> has not come
        self.request = None  # the timer of the next <r/>, or while one is out, of its answer
        self.expiry = None  # the timer that ends the session while it hibernates
        self.undo: list[Callable[[], None]] = []  # the filters' removal

    def cancel_request(self) -> None:
        if self.request is not None and self.request.active():
            self.request.cancel()
        self.request = None

    def cancel_timers(self) -> None:
        self.cancel_request()
        if self.expiry is not None and self.expiry.active():
            self.expiry.cancel()
        self.expiry = None


@implementer(IResumableSessions)
class StreamManagement:
    """The state of every managed session and what the plugin registers; ``ctx`` is the
    plugin's context (reactor, sessions, providers, bounce, end_session)."""

    def __init__(self, ctx, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.clock = ctx.reactor
        self.managed: dict = {}  # session -> ManagedSession
        self.by_id: dict[str, ManagedSession] = {}  # resumable ones
        self.ended: OrderedDict[str, tuple[JID, int]] = OrderedDict()  # id -> account, h
        self.rescue = Rescue(ctx)
        self.acks: dict = {}  # session -> the Deferred its <a/> (and later ones) wait for
        # the filters every managed session gets, bound once (not two new methods a session)
        self._filter_in, self._filter_out = self._count_in, self._queue_out

    # -- the stream feature

    def feature(self, stream) -> domish.Element | None:
        """``<sm/>`` after authentication (where bind and resume both become possible)."""
        return sm_element("sm") if stream.account is not None else None

    # -- <enable/>

    def on_enable(self, element: domish.Element, stream) -> None:
        stream.send(self.enable(element, stream))

    def enable(self, element: domish.Element, stream) -> domish.Element:
        """Enable for the session of ``stream``; the answer, <enabled/> or <failed/> (sent
        by ``on_enable``, or put in Bind 2's <bound/>)."""
        session = stream.session
        if session is None or session in self.managed:  # before bind, or a second time
            return failed("unexpected-request")
        timeout = self._timeout(element)
        sm_id = secrets.token_urlsafe(24) if timeout else None
        managed = self.managed[session] = ManagedSession(session, sm_id, timeout)
        managed.undo = [session.filters.add(filters.IN, self._filter_in, IN_PRIORITY),
                        session.filters.add(filters.OUT, self._filter_out, OUT_PRIORITY)]
        log.debug("stream management enabled for {jid}", jid=session.jid)
        if sm_id is not None:
            self.by_id[sm_id] = managed
            return sm_element("enabled", id=sm_id, resume="true", max=timeout)
        return sm_element("enabled")

    def _timeout(self, enable: domish.Element) -> int:
        """How long this session may hibernate: 0 unless it asked to resume; the client's
        'max' when shorter than ours."""
        if (enable.getAttribute("resume") or "").lower() not in TRUE_VALUES:
            return 0
        ours = self.settings.resumption_timeout
        wanted = parse_uint32(enable.getAttribute("max"))
        return min(ours, wanted) if wanted else ours

    # -- counting (the session's filters)

    def _count_in(self, element: domish.Element, session):
        managed = self.managed.get(session)
        if managed is not None:
            managed.handled = increment(managed.handled)
        return element

    def _queue_out(self, element: domish.Element, session):
        managed = self.managed.get(session)
        if managed is None:
            return element
        managed.queue.push(element, self.clock.seconds())
        if len(managed.queue) > self._limit(session):
            self._overflow(managed)
            return None
        if session.hibernating:
            return None  # kept for a resume (or for offline storage)
        self._want_ack(managed)
        return element

    def _limit(self, session) -> int:
        """How many stanzas may wait for an ack. A hibernating session: ``max_unacked``. A
        connected one gets bursts larger than that in one reactor turn (the presence of a
        thousand online contacts at login) before it could answer any ``<r/>``; it ends only
        beyond LIVE_FACTOR times as many, since a client that does not read is also cut by
        the output bound ([limits]) and one that does not answer by ``ack_timeout``."""
        limit = self.settings.max_unacked
        return limit if session.hibernating else limit * LIVE_FACTOR

    def _overflow(self, managed: ManagedSession) -> None:
        """More unacknowledged stanzas than we keep: the client is not reading, or gone
        without our noticing; the session ends and the queue goes to offline storage."""
        session = managed.session
        log.info("session {jid}: {count} stanzas unacknowledged, more than max_unacked",
                 jid=session.jid, count=len(managed.queue))
        if session.hibernating:
            self.ctx.end_session(session, "too many stanzas queued while hibernating")
        else:
            session.close("resource-constraint", "too many unacknowledged stanzas")

    # -- acks

    def on_r(self, element: domish.Element, stream) -> None:
        managed = self._managed(stream)
        answer = sm_element("a", h=managed.handled)
        # What <a/> counts must survive a SIGKILL: the stream waited for each stanza's work,
        # but the archive batches its copies; this account's go with its next write (group
        # commit: every <r/> of the moment shares it, xmppd.mam.writer) and the answer waits
        # for that (behind an earlier answer still waiting, so h never goes back).
        archive = self.ctx.query(IArchiveWrites)
        session = stream.session
        wait = None if archive is None else archive.settled(session.jid.userhost())
        pending = [d for d in (self.acks.get(session), wait) if d is not None]
        if not pending:
            stream.send(answer)
            return
        done = pending[0] if len(pending) == 1 else defer.gatherResults(pending)
        self.acks[session] = done
        done.addCallback(self._answer, stream, answer, done)

    def _answer(self, _result, stream, answer: domish.Element, done) -> None:
        session = stream.session
        if self.acks.get(session) is done:
            del self.acks[session]
        if self.managed.get(session) is not None:  # not if the session ended meanwhile
            stream.send(answer)

    def on_a(self, element: domish.Element, stream) -> None:
        managed = self._managed(stream)
        h = parse_uint32(element.getAttribute("h"))
        if h is None:
            raise StreamError("bad-format", "<a/> needs an 'h' attribute, 0 to 2^32-1")
        managed.queue.acknowledge(h)  # HandledCountTooHigh ends the stream
        if managed.requested:
            managed.requested = False
            managed.cancel_request()  # its answer came
        if managed.queue:
            self._want_ack(managed)

    def _managed(self, stream) -> ManagedSession:
        managed = self.managed.get(stream.session)
        if managed is None:
            raise StreamError("unsupported-stanza-type", "stream management is not enabled")
        return managed

    def _want_ack(self, managed: ManagedSession) -> None:
        """Ask for an ack soon: once ``request_after`` stanzas wait, in this reactor turn
        (after what is being written now), else ``request_delay`` after the first."""
        if managed.requested:
            return
        soon = len(managed.queue) >= self.settings.request_after
        timer = managed.request
        if timer is not None and timer.active():
            if soon and timer.getTime() > self.clock.seconds():
                timer.reset(0)
            return
        delay = 0 if soon else self.settings.request_delay
        managed.request = self.clock.callLater(delay, self._send_request, managed)

    def _send_request(self, managed: ManagedSession) -> None:
        managed.request = None
        session = managed.session
        if session.hibernating or session.ended or not managed.queue:
            return
        managed.requested = True
        session.stream.send(sm_element("r"))
        if self.settings.ack_timeout and managed.id is not None:
            managed.request = self.clock.callLater(self.settings.ack_timeout,
                                                   self._unanswered, managed)

    def _unanswered(self, managed: ManagedSession) -> None:
        """No <a/> for our <r/>: a phone that changed networks leaves a connection that TCP
        may take hours to call dead, while its client is already trying to resume. Drop
        it (as Prosody's smacks_max_ack_delay does): the session hibernates at once, and
        its expiry counts from now."""
        managed.request = None
        session = managed.session
        if session.hibernating or session.ended:
            return
        log.info("session {jid}: no ack within {seconds} s, dropping its connection",
                 jid=session.jid, seconds=self.settings.ack_timeout)
        session.stream.transport.abortConnection()

    # -- hibernation and resumption

    def keep(self, session) -> bool:
        """The keeper: a resumable session waits ``timeout`` seconds for its client."""
        managed = self.managed.get(session)
        if managed is None or managed.id is None:
            return False
        managed.cancel_timers()
        managed.requested = False  # the <r/> went with the old stream; ask again later
        managed.expiry = self.clock.callLater(managed.timeout, self._expire, managed)
        return True

    def _expire(self, managed: ManagedSession) -> None:
        managed.expiry = None
        self.ctx.end_session(managed.session, f"not resumed within "
                                              f"{format_duration(managed.timeout)}")

    def on_resume(self, element: domish.Element, stream) -> defer.Deferred | None:
        """``<resume/>``: here at once; a session not here, in a cluster, is asked of the
        other nodes first (the stream reads nothing more meanwhile)."""
        d = self.fetch(element, stream, stream.account)
        if d is None:
            self._resume_now(element, stream)
            return None
        d.addCallback(lambda _: self._resume_now(element, stream))
        return d

    def fetch(self, element: domish.Element, stream, account: JID
              ) -> defer.Deferred | None:
        """Bring here the session ``element`` (a <resume/>) names when another node of the
        cluster may hold it: a Deferred that fires (never errbacks) once it is here or no
        node handed it over, then ``resume`` answers as for a local session. None, at once
        and for free, when there is no cluster or nothing to ask: the session is here, the
        <resume/> is malformed, or the id ended here. Used by ``on_resume`` and by SASL2's
        inline resumption (xmppd.sasl2.sm), where ``account`` is authenticated but not yet
        set on ``stream``."""
        remote = self.ctx.query(IRemoteResumption)
        if remote is None:
            return None
        previd = element.getAttribute("previd")
        if (stream.session is not None or not previd
                or parse_uint32(element.getAttribute("h")) is None
                or self._resumable(previd, account) is not None
                or previd in self.ended):  # it ended here: no other node has it
            return None
        d = remote.fetch(previd, account)
        d.addErrback(lambda failure: log.failure("asking the cluster for a session failed",
                                                 failure))
        return d

    def _resume_now(self, element: domish.Element, stream) -> None:
        if stream.disconnected or stream.close_sent:  # gone (or going) while the cluster
            return  # was asked: a later resume may find the session, here now if it came
        try:
            answer, replay = self.resume(element, stream)
        except StreamError as error:  # an 'h' too high, after an answer from the cluster
            stream.fail(error)
            return
        stream.send(answer)
        if replay is not None:
            replay()

    def _resumable(self, previd: str, account) -> ManagedSession | None:
        managed = self.by_id.get(previd)
        if managed is None or managed.session.account != account:
            return None
        return managed

    def resume(self, element: domish.Element, stream
               ) -> tuple[domish.Element, Callable[[], None] | None]:
        """Resume on ``stream`` the session ``element`` names: the answer (<resumed/> or
        <failed/>) and, once resumed, what sends again what the client did not
        acknowledge, to call once the answer is out (``on_resume``, or SASL2's <success/>)."""
        if stream.session is not None:  # a bound stream has a session of its own
            return failed("unexpected-request"), None
        previd = element.getAttribute("previd")
        h = parse_uint32(element.getAttribute("h"))
        if not previd or h is None:
            return failed("bad-request"), None
        managed = self._resumable(previd, stream.account)
        if managed is None:
            known = self.ended.get(previd)
            log.info("{account} from {peer} could not resume a session: unknown or expired",
                     account=stream.account, peer=stream.peer_address)
            return failed("item-not-found", known[1] if known and known[0] ==
                          stream.account else None), None
        managed.queue.acknowledge(h)  # HandledCountTooHigh ends the new stream
        session = managed.session
        managed.cancel_timers()
        managed.requested = False
        self.ctx.attach_session(session, stream)
        return (sm_element("resumed", h=managed.handled, previd=previd),
                lambda: self._replay(managed, stream))

    def _replay(self, managed: ManagedSession, stream) -> None:
        domain = managed.session.jid.host
        for queued, when in managed.queue:
            stream.send(delayed(queued, domain, when))
        if managed.queue:
            self._want_ack(managed)

    # -- moving between the nodes of a cluster

    def hand_over(self, previd: str, account: JID) -> dict | None:
        """Another node resumes the session ``previd`` of ``account``: its state (for
        ``adopt`` there), the session forgotten here as if resumed (its old stream, if still
        open, gets <conflict/>); None when there is none (unknown, ended, another account's)."""
        managed = self._resumable(previd, account)
        if managed is None:
            return None
        session = managed.session
        expiry = managed.expiry
        remaining = (max(0.0, expiry.getTime() - self.clock.seconds())
                     if expiry is not None and expiry.active() else float(managed.timeout))
        hooks = self.ctx.client_hooks
        state = handover.export(managed, remaining, hooks.export_state(session))
        self._forget(managed)
        hooks.hand_over(session, "resumed on another node")
        log.info("session {jid} handed over with {count} stanzas unacknowledged",
                 jid=session.jid, count=len(state["queue"]))
        return state

    def adopt(self, state: dict) -> ManagedSession | None:
        """A session another node handed over (``hand_over`` there): made here, hibernated
        for at most what was left of its timeout, resumable by its id. ValueError when the
        state is not one. None when its client has bound the same full JID here meanwhile
        (it was told <failed/> and started afresh): that session wins, and what this one
        did not get acknowledged goes to offline storage, as for a session that ended."""
        taken = handover.read(state)
        if taken.id in self.by_id:
            raise ValueError("a session with this id is here already")
        hooks = self.ctx.client_hooks
        session = ClientSession(DetachedStream(hooks, taken.peer, taken.secure,
                                               taken.mechanism), taken.jid.bare())
        session.jid = taken.jid
        if self.ctx.sessions.get(taken.jid) is not None:
            log.info("session {jid} came from another node after its client bound again",
                     jid=taken.jid)
            self.rescue.save(session, taken.queue)
            return None
        managed = self.managed[session] = ManagedSession(session, taken.id, taken.timeout)
        self.by_id[taken.id] = managed
        managed.handled = taken.handled
        managed.queue.refill(taken.queue, taken.sent)
        managed.undo = [session.filters.add(filters.IN, self._count_in, IN_PRIORITY),
                        session.filters.add(filters.OUT, self._queue_out, OUT_PRIORITY)]
        hooks.adopt(session)  # bound and hibernated: what it is sent now is queued
        hooks.restore_state(session, taken.plugins)
        managed.expiry = self.clock.callLater(taken.remaining, self._expire, managed)
        return managed

    def _forget(self, managed: ManagedSession) -> None:
        """``managed`` leaves this node: no timers, no queue, no id here any more."""
        session = managed.session
        self.managed.pop(session, None)
        self.acks.pop(session, None)
        managed.cancel_timers()
        managed.undo.clear()  # the filters end with their session
        self.by_id.pop(managed.id, None)
        managed.queue.drain()

    # -- the end

    def session_closed(self, session, polite: bool) -> None:
        """SESSION_CLOSED: forget the session; what it did not acknowledge is not lost."""
        managed = self.managed.pop(session, None)
        self.acks.pop(session, None)
        if managed is None:
            return
        managed.cancel_timers()
        managed.undo.clear()  # the filters end with their session
        if managed.id is not None:
            del self.by_id[managed.id]
            self.ended[managed.id] = (session.account, managed.handled)
            while len(self.ended) > REMEMBERED_IDS:
                self.ended.popitem(last=False)
        self.rescue.save(session, managed.queue.drain())

    # -- unloading

    def stop(self) -> None:
        """The plugin stops: hibernated sessions end now (no keeper would resume them),
        live ones lose their filters and go on unmanaged."""
        for managed in list(self.managed.values()):
            if managed.session.hibernating:
                self.ctx.end_session(managed.session, "stream management stopped")
        for managed in list(self.managed.values()):
            managed.cancel_timers()
            for undo in managed.undo:
                undo()
        self.managed.clear()
        self.by_id.clear()

