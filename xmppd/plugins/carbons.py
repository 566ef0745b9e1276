# -*- test-case-name: tests.unit.test_carbons -*-
"""Message carbons (XEP-0280, ``urn:xmpp:carbons:2``): every device of an account sees the
conversations the others have. The rules are xmppd.im.carbons; this module wires them.

* ``<enable/>`` and ``<disable/>`` are IQ sets a bound resource sends about itself (no 'to',
  or its own bare JID); both may be repeated (§10.1). A get of either is ``bad-request``;
  either addressed to another account is ``not-allowed`` (§4.1, §5.1).
* The copies are chain links at priority 0 (below blocking at 1000 and the archive at 50,
  above delivery): a blocked message is never copied, an archived one is archived once.
* ``urn:xmpp:carbons:2`` is a host disco feature, where clients (Profanity, Conversations,
  Dino) look before enabling.
"""

from __future__ import annotations

from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.im.carbons import CARBONS_CHANGED, COPIED_TYPES, CarbonCopier
from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stanza import Stanza

PRIORITY = 0  # agreed across plugins: blocking 1000, archive 50, carbons 0, delivery -1000


@implementer(IXmppdPlugin)
class Carbons:
    name = "carbons"
    requires = ()

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, ())
        copier = CarbonCopier(ctx.sessions,
                              ctx.server_config.c2s.bare_message_delivery == "all",
                              ctx.remote_sessions)
        commands = Commands(ctx.sessions, copier, ctx.emit)
        ctx.feature(ns.CARBONS)
        for name, handler in (("enable", commands.enable), ("disable", commands.disable)):
            ctx.iq("set", ns.CARBONS, name, handler, to="self")
            ctx.iq("set", ns.CARBONS, name, commands.not_yours, to="bare")
            ctx.iq("get", ns.CARBONS, name, commands.not_a_get, to=("self", "bare"))
        for type in COPIED_TYPES:
            ctx.stanza("message", type, "outgoing", copier.sent, PRIORITY)
            ctx.stanza("message", type, ("bare", "full"), copier.received, PRIORITY)
        ctx.on(events.SESSION_CLOSED, copier.disable)
        ctx.carry_session_state("carbons", commands.export, commands.restore)
        ctx.bind2_feature(ns.CARBONS, commands.inline)  # XEP-0386: <enable/> in <bind/>


class Commands:
    """The IQ answerers: a resource turns its own carbons on and off."""

    def __init__(self, sessions, copier: CarbonCopier, emit) -> None:
        self._sessions = sessions
        self._copier = copier
        self._emit = emit  # CARBONS_CHANGED: for the cluster's session registry

    def enable(self, stanza: Stanza, origin) -> None:
        session = self._session(stanza)
        self._copier.enable(session)
        self._emit(CARBONS_CHANGED, session, True)

    def disable(self, stanza: Stanza, origin) -> None:
        session = self._session(stanza)
        self._copier.disable(session)
        self._emit(CARBONS_CHANGED, session, False)

    def export(self, session) -> bool | None:
        """A session moving to another node keeps carbons on there."""
        return True if session in self._copier.enabled else None

    def restore(self, session, enabled: bool) -> None:
        if enabled:
            self._copier.enable(session)
            self._emit(CARBONS_CHANGED, session, True)

    def _session(self, stanza: Stanza):
        """The bound session that asked: only a resource of ours has carbons to switch."""
        sender = stanza.sender
        session = None if sender is None or sender.resource is None else self._sessions.get(
            sender)
        if session is None:
            raise StanzaError("not-allowed", "carbons are switched by a bound resource")
        return session

    def inline(self, element, stream) -> None:
        """Bind 2's <enable/> for the session just bound; nothing goes into <bound/>."""
        if element.name == "enable":
            self._copier.enable(stream.session)
            self._emit(CARBONS_CHANGED, stream.session, True)

    def not_yours(self, stanza: Stanza, origin) -> None:
        raise StanzaError("not-allowed", "carbons are switched for your own resources only")

    def not_a_get(self, stanza: Stanza, origin) -> None:
        raise StanzaError("bad-request", "enable and disable are IQ sets")


carbons = Carbons()
