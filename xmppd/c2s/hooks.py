# -*- test-case-name: tests.unit.test_session_hooks -*-
"""What plugins can hook into a client session's life, beyond the stanzas it routes.

Stream management (XEP-0198) and client state indication (XEP-0352) are plugins, and need
three things the stream alone would not give them:

- filters on every new session (``add_filter_hook``; the filters themselves are per session,
  xmppd.c2s.filters);
- a session that outlives its TCP connection: when a stream is lost without a close, a
  keeper (``add_keeper``) may keep its session bound, routable and available ("hibernated",
  as Prosody's mod_smacks calls it) until a new stream takes it over (``attach``) or the
  plugin ends it for good (``end``); only then do SESSION_CLOSED and the unavailable
  presence go out, once;
- top-level elements that are not stanzas (``<r/>``, ``<a/>``, ``<enable/>``, ``<resume/>``,
  ``<active/>``) handled by the plugin that claims them (``claim``), in the stream states it
  names; unclaimed ones stay the stream errors they are today;
- login gates (``add_login_gate``): an account that proved its credentials may still be
  refused (an administrator disabled it), by any mechanism, legacy SASL or SASL2 alike;
- a session that moves to another node of a cluster (XEP-0198 resumption there): what
  plugins keep about it travels with it (``add_state_carrier``), it leaves here without an
  end anyone sees (``hand_over``) and arrives there hibernated (``adopt``);
- before authentication, on an encrypted stream only: IQs of one payload namespace
  (``claim_iq_before_auth``: XEP-0077 in-band registration) and the stream features that
  announce them (``add_pre_auth_feature``). Nothing registers them by default, so an
  unauthenticated stream accepts no stanza at all unless a plugin asks for it.

Every registration returns its undo, for the plugin context to record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.handlers import PrioritizedHandlers
from xmppd.interfaces import IClientHooks
from xmppd.logs import get_logger
from xmppd.stream.xmlstream import CONNECTION_LOST, PEER_CLOSED

log = get_logger(__name__)

# the stream states a claimed element may arrive in (ClientStream.state)
BEFORE_BIND = "bind"  # authenticated, no resource bound yet (where <resume/> arrives)
BOUND = "ready"  # a bound session (where <enable/>, <r/>, <a/>, <active/> arrive)
CLAIM_STATES = frozenset((BEFORE_BIND, BOUND))
STANZA_NAMES = frozenset(("iq", "message", "presence"))

# why a session ended, as an admin reads it; other stream errors show as "error (condition)"
END_REASONS = {
    PEER_CLOSED: "logout",
    CONNECTION_LOST: "connection lost",
    "connection-timeout": "timeout",
    "conflict": "conflict (replaced by a new session)",
    "system-shutdown": "server shutdown",
    None: "closed by the server",
}


def describe_end(reason: str | None) -> str:
    """A stream's end_reason (or a stream error condition) in an admin's words."""
    return END_REASONS.get(reason, f"error ({reason})")


class Claim:
    """A plugin's hold on one top-level element: who handles it, and in which states."""

    __slots__ = ("handler", "states")

    def __init__(self, handler: Callable, states: frozenset[str]) -> None:
        self.handler = handler
        self.states = states


@implementer(IClientHooks)
class ClientHooks:
    """The server's registry of session hooks, and the session lifecycle they act on.

    ``sessions`` is the ISessionRegistry, ``emit`` the server's event emitter and ``clock``
    the reactor (for durations in the log).
    """

    def __init__(self, sessions, emit: Callable, clock) -> None:
        self.sessions = sessions
        self.emit = emit
        self.clock = clock
        self._filter_hooks = PrioritizedHandlers()
        self._keepers = PrioritizedHandlers()
        self._claims: dict[tuple[str, str], Claim] = {}
        self._pre_auth_iqs: dict[str, Callable] = {}  # payload namespace -> handler
        self._pre_auth_features = PrioritizedHandlers()
        self._login_gates = PrioritizedHandlers()
        self._carriers: dict[str, tuple[Callable, Callable]] = {}  # name -> export, restore
        self.hibernating: set = set()  # sessions kept without a stream

    # -- registrations (each returns its undo)

    def add_filter_hook(self, hook: Callable, priority: int = 0) -> Callable[[], None]:
        """Call ``hook(session)`` for every session that binds a resource from now on, to
        add its filters (``session.filters.add``). Sessions bound already are not visited;
        filters stay on their session until their own undo or the session's end."""
        return self._filter_hooks.add(hook, priority)

    def add_keeper(self, keeper: Callable, priority: int = 0) -> Callable[[], None]:
        """When a bound session's connection is lost without a close, ``keeper(session)``
        returning True keeps the session (hibernated) instead of ending it; the first
        keeper that says so wins. The keeper then owns the session's fate: ``attach`` it to
        a new stream or ``end`` it (a timeout of its own), as the keeper learns nothing more
        from the dead stream. A conflicting bind, a kick or a shutdown ends it too
        (SESSION_CLOSED tells the keeper)."""
        return self._keepers.add(keeper, priority)

    def claim(self, namespace: str, name: str, handler: Callable,
              states: Iterable[str] = (BOUND,)) -> Callable[[], None]:
        """Handle the top-level element ``{namespace}name`` in ``states`` (BEFORE_BIND,
        BOUND) with ``handler(element, stream)``; it may return a Deferred, which the
        stream waits for before reading on. ``stream.send`` writes to the client without
        the session's filters (for <a/>, <resumed/>); ``stream.session`` is the bound
        session or None; ``stream.account`` the authenticated bare JID."""
        states = frozenset(states)
        if not states or not states <= CLAIM_STATES:
            raise ValueError(f"claim states are BEFORE_BIND and/or BOUND, not {set(states)}")
        if namespace == ns.CLIENT and name in STANZA_NAMES:
            raise ValueError(f"<{name}/> is a stanza: use a stanza handler or a filter")
        key = (namespace, name)
        if key in self._claims:
            raise ValueError(f"{{{namespace}}}{name} is already claimed by "
                             f"{self._claims[key].handler!r}")
        claim = self._claims[key] = Claim(handler, states)

        def undo() -> None:
            if self._claims.get(key) is claim:
                del self._claims[key]

        return undo

    def claim_iq_before_auth(self, namespace: str, handler: Callable) -> Callable[[], None]:
        """Handle ``<iq/>`` whose payload is in ``namespace`` on an encrypted stream before
        SASL, with ``handler(element, stream)`` (may return a Deferred; the stream waits).
        The handler answers with ``stream.send``: there is no session and no routing yet,
        ``stream.account`` is None and ``stream.domain`` the host the client asked for."""
        if namespace in self._pre_auth_iqs:
            raise ValueError(f"IQs of {namespace} before authentication are already claimed "
                             f"by {self._pre_auth_iqs[namespace]!r}")
        self._pre_auth_iqs[namespace] = handler

        def undo() -> None:
            if self._pre_auth_iqs.get(namespace) is handler:
                del self._pre_auth_iqs[namespace]

        return undo

    def add_login_gate(self, gate: Callable, priority: int = 0) -> Callable[[], None]:
        """``gate(localpart, domain)`` after the credentials are proved: a reason (str) to
        refuse the account (``account-disabled``), None to let it in, or a Deferred of either."""
        return self._login_gates.add(gate, priority)

    def add_state_carrier(self, name: str, export: Callable, restore: Callable
                          ) -> Callable[[], None]:
        """What a plugin keeps about a session, carried when the session moves to another
        node: ``export(session)`` returns JSON-able data (None: nothing to carry), and
        ``restore(session, data)`` puts it on the session adopted there (it may return a
        Deferred, which nobody waits for)."""
        if name in self._carriers:
            raise ValueError(f"session state {name!r} already has a carrier")
        carrier = self._carriers[name] = (export, restore)

        def undo() -> None:
            if self._carriers.get(name) is carrier:
                del self._carriers[name]

        return undo

    def add_pre_auth_feature(self, builder: Callable, priority: int = 0) -> Callable[[], None]:
        """``builder(stream)`` returns an element for the stream features offered before
        authentication on an encrypted stream, or None."""
        return self._pre_auth_features.add(builder, priority)

    # -- what plugins do with sessions

    def attach(self, session, stream) -> None:
        """Move ``session`` (hibernated, or still on its old stream) to ``stream``, a new
        stream authenticated as the same account and not bound yet: the new stream takes
        over its JID, filters and presence; the old stream, if still open, is closed with
        <conflict/>. Nothing is replayed here: that is the caller's protocol."""
        if session.ended:
            raise ValueError(f"{session!r} has ended")
        if stream.session is not None or stream.account != session.account:
            raise ValueError(f"{stream!r} cannot take over {session!r}")
        old = session.stream
        was_hibernating = session in self.hibernating
        self.hibernating.discard(session)
        session.hibernating = False
        old.release(session)
        stream.take_over(session)
        if not old.disconnected:
            old.close_stream("conflict", "the session was resumed on another stream")
        log.info("session {jid} resumed from {peer}{after}", jid=session.jid,
                 peer=stream.peer_address,
                 after=f" after hibernating {format_duration(self._since(session))}"
                 if was_hibernating else "")
        self.emit(events.SESSION_RESUMED, session)

    def end(self, session, why: str = "hibernation ended") -> None:
        """End ``session`` for good: a hibernated one now (``why`` goes to the log), a live
        one by closing its stream. Ending an ended session does nothing."""
        if session.ended:
            return
        if session.hibernating:
            self.session_ended(session, why, polite=False)
        else:
            session.close()

    def export_state(self, session) -> dict:
        """The carriers' data about ``session``, by carrier name (those with something)."""
        state = {}
        for name, (export, _restore) in self._carriers.items():
            try:
                data = export(session)
            except Exception:
                log.failure("session state {name} of {jid} not exported", name=name,
                            jid=session.jid)
                continue
            if data is not None:
                state[name] = data
        return state

    def restore_state(self, session, state: dict) -> None:
        """Give each carrier its data back on ``session``; a carrier missing here (a plugin
        this node does not run) or failing is logged, the others go on."""
        for name, data in state.items():
            carrier = self._carriers.get(name)
            if carrier is None:
                log.warn("session state {name} of {jid} dropped: no carrier here", name=name,
                         jid=session.jid)
                continue
            try:
                result = carrier[1](session, data)
            except Exception:
                log.failure("session state {name} of {jid} not restored", name=name,
                            jid=session.jid)
                continue
            if isinstance(result, defer.Deferred):
                result.addErrback(lambda failure, name=name: log.failure(
                    "session state {name} of {jid} not restored", failure, name=name,
                    jid=session.jid))

    def hand_over(self, session, why: str) -> None:
        """``session`` goes on elsewhere (resumed on another node): forgotten here as an
        ended one is (unbound, SESSION_CLOSED, so plugins drop what they keep about it), but
        with ``session.moved`` set, so that nobody tells its end to anyone (no unavailable
        presence, no last activity, no offline storage of its queue)."""
        if session.ended:
            return
        old = session.stream
        old.release(session)
        session.moved = True
        log.info("session {jid} moved away after {duration}: {why}", jid=session.jid,
                 duration=format_duration(self._since(session)), why=why)
        self._finish(session, polite=False)
        if not old.disconnected:  # resumed elsewhere while this stream was still open
            old.close_stream("conflict", "the session was resumed on another node")

    def adopt(self, session) -> None:
        """``session`` (its ``jid`` set, its stream an xmppd.c2s.detached.DetachedStream)
        arrives from another node: bound here under its own full JID (a session here with that
        JID is refused), its filters added, kept hibernated for a stream to ``attach`` it,
        and announced (SESSION_BOUND: the cluster's registry now routes it here). ValueError
        when a session here has that JID already (the caller decides which one wins)."""
        if self.sessions.get(session.jid) is not None:
            raise ValueError(f"{session.jid} is bound here already")
        self.sessions.restore(session)
        session.bound_at = self.clock.seconds()
        self.session_bound(session)
        session.hibernating = True
        self.hibernating.add(session)
        log.info("session {jid} arrived from another node, hibernated", jid=session.jid)
        self.emit(events.SESSION_BOUND, session)

    def end_hibernated(self, why: str = END_REASONS["system-shutdown"]) -> None:
        """End every hibernated session (at shutdown: no session outlives the server)."""
        for session in list(self.hibernating):
            self.session_ended(session, why, polite=False)

    # -- what the client stream calls

    def session_bound(self, session) -> None:
        for hook in self._filter_hooks.handlers:
            try:
                hook(session)
            except Exception:
                log.failure("filter hook {hook!r} failed on {session!r}", hook=hook,
                            session=session)

    def keep(self, session) -> bool:
        """The stream of ``session`` was lost: True when a keeper hibernated the session."""
        for keeper in self._keepers.handlers:
            try:
                kept = keeper(session)
            except Exception:
                log.failure("session keeper {keeper!r} failed on {session!r}", keeper=keeper,
                            session=session)
                continue
            if kept:
                self.hibernating.add(session)
                session.hibernating = True
                log.info("session {jid} hibernated after {duration}: connection lost",
                         jid=session.jid, duration=format_duration(self._since(session)))
                self.emit(events.SESSION_HIBERNATED, session)
                return True
        return False

    def login_refusal(self, localpart: str, domain: str) -> defer.Deferred:
        """Fires with the first gate's reason to refuse the account, or None (at once when
        no gate is registered: the usual case costs nothing)."""
        if not self._login_gates:
            return defer.succeed(None)
        return defer.ensureDeferred(self._first_refusal(localpart, domain))

    async def _first_refusal(self, localpart: str, domain: str) -> str | None:
        for gate in self._login_gates.handlers:
            reason = await defer.maybeDeferred(gate, localpart, domain)
            if reason is not None:
                return reason
        return None

    def pre_auth_features(self, stream) -> list[domish.Element]:
        """The features plugins offer ``stream`` (encrypted, not yet authenticated)."""
        built = (build(stream) for build in self._pre_auth_features.handlers)
        return [feature for feature in built if feature is not None]

    def claimed_before_auth(self, element: domish.Element) -> Callable | None:
        """The handler of an IQ sent before authentication, by its payload, or None."""
        if not self._pre_auth_iqs or element.name != "iq" or element.uri != ns.CLIENT:
            return None
        payload = next(element.elements(), None)
        return None if payload is None else self._pre_auth_iqs.get(payload.uri)

    def claimed(self, element: domish.Element, state: str) -> Callable | None:
        """The handler that claimed ``element`` in ``state``, or None."""
        claim = self._claims.get((element.uri, element.name))
        if claim is None or state not in claim.states:
            return None
        return claim.handler

    def session_ended(self, session, why: str, polite: bool) -> None:
        """The one end of a session: logged, unbound, announced (SESSION_CLOSED), once."""
        if session.ended:
            return
        log.info("session {jid} ended after {duration}: {why}", jid=session.jid,
                 duration=format_duration(self._since(session)), why=why)
        self._finish(session, polite)

    def _finish(self, session, polite: bool) -> None:
        """Unbound and announced (SESSION_CLOSED), once."""
        session.ended = True
        session.hibernating = False
        self.hibernating.discard(session)
        self.sessions.unbind(session)
        self.emit(events.SESSION_CLOSED, session, polite)

    def _since(self, session) -> float:
        return self.clock.seconds() - session.bound_at


def format_duration(seconds: float) -> str:
    """4 s, 3 min 20 s, 2 h 5 min: short enough for a log line, exact enough for an admin."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
