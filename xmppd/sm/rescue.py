# -*- test-case-name: tests.unit.test_sm_manager -*-
"""What becomes of the stanzas a client never acknowledged, once its session ends for good.

XEP-0198 §4: treat them "in the same way that [the server] would treat a stanza sent to an
unavailable resource". A message goes to offline storage (IOfflineDelivery) with a XEP-0203
delay stamp of when it was first sent, so the client shows it at its time, not at the next
login; one that storage refuses (no offline plugin, the account's limit, a type never stored)
goes back to its sender as ``recipient-unavailable``, as does an IQ request, whose sender
would otherwise wait for an answer forever. Presence is dropped (the presence plugin tells
contacts the session is gone); so are errors and IQ answers (never an error to an error,
RFC 6120 §8.3.1), headlines (RFC 6121 §8.5.3.2.1: not kept for an unavailable resource)
and groupchat messages, which the room's history still has.
"""

from __future__ import annotations

import weakref

from twisted.words.xish import domish

from xmppd.interfaces import IOfflineDelivery
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.sm.elements import delayed
from xmppd.stanza import Stanza

log = get_logger(__name__)

DROPPED_TYPES = frozenset(("error", "result", "groupchat", "headline"))


class Rescue:
    """``ctx``: the plugin's context (query for IOfflineDelivery, bounce)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        # A message to the bare JID reaches every available resource, the same element in
        # each queue: when two sessions that held it end unacknowledged, offline storage
        # must get it once, not once per session. The element is alive while any queue
        # holds it, so a weak set remembers exactly what is still to be seen again.
        self._saved: weakref.WeakSet = weakref.WeakSet()

    def save(self, session, unacknowledged: list[tuple[domish.Element, float]]) -> None:
        """Treat what the client never acknowledged as sent to an unavailable resource
        (§4): messages to offline storage, or back to their sender with IQ requests."""
        if not unacknowledged:
            return
        offline = self.ctx.query(IOfflineDelivery)
        domain = session.jid.host
        messages = 0
        for element, when in unacknowledged:
            stanza = _as_stanza(element, session.jid)
            if stanza is None or stanza.type in DROPPED_TYPES or stanza.kind == "presence":
                continue
            if stanza.kind == "message" and offline is not None:
                if element in self._saved:
                    continue  # another session of the account already kept it
                self._saved.add(element)
                messages += 1
                late = _as_stanza(delayed(element, domain, when), session.jid)
                d = offline.store(late)
                d.addCallback(self._stored_or_bounced, stanza)
                d.addErrback(self._store_failed, stanza)
            else:
                self.ctx.bounce(stanza, "recipient-unavailable")
        log.info("session {jid} ended with stanzas unacknowledged: {count}, of which "
                 "{messages} messages go to offline storage", jid=session.jid,
                 count=len(unacknowledged), messages=messages)

    def _stored_or_bounced(self, kept: bool, stanza: Stanza) -> None:
        if not kept:
            self.ctx.bounce(stanza, "recipient-unavailable")

    def _store_failed(self, failure, stanza: Stanza) -> None:
        log.failure("could not keep an unacknowledged message for {jid}", failure,
                    jid=stanza.recipient)
        self.ctx.bounce(stanza, "recipient-unavailable")


def _as_stanza(element: domish.Element, recipient: JID) -> Stanza | None:
    """The routed stanza again (its addresses as the router stamped them)."""
    try:
        sender = parse_jid(element["from"]) if element.hasAttribute("from") else None
        to = parse_jid(element["to"]) if element.hasAttribute("to") else recipient
    except InvalidJID:
        return None
    return Stanza(element, sender, to)
