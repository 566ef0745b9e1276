# -*- test-case-name: tests.unit.test_sm_handover -*-
"""A resumable session as it travels to another node of a cluster (XEP-0198 resumption
there): JSON-able, stanzas as text, read back through the same restricted parser as the
network (xmppd.xml.stored), as a MUC room travels in xmppd.muc.handoff.

What travels is what a resumption on the same node finds on the session object: its full
JID and SM-ID, both counts (``handled``: stanzas from the client; ``sent``: stanzas to it,
the unacknowledged ones with the time each was first sent, for their delay stamp), how long
it may still hibernate, where the client was (for the admin views), and what the plugins
keep about it (``plugins``: presence and directed presence, carbons, roster interest,
client state, by each plugin's carrier, xmppd.c2s.hooks.add_state_carrier).
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.sm.counter import MODULUS
from xmppd.xml.stored import stanza_from_text, stanza_to_text

VERSION = 1


@dataclass
class Handover:
    """A handed-over session, read and checked."""

    id: str
    jid: JID
    handled: int
    sent: int
    queue: list[tuple[domish.Element, float]]
    timeout: int  # the session's own resumption timeout (the client's max, or ours)
    remaining: float  # seconds it may still hibernate
    peer: str
    secure: bool
    mechanism: str | None
    plugins: dict


def export(managed, remaining: float, plugins: dict) -> dict:
    """The state of ``managed`` (an xmppd.sm.manager.ManagedSession) for ``read``."""
    session = managed.session
    stream = session.stream
    return {
        "v": VERSION,
        "id": managed.id,
        "jid": session.jid.full(),
        "handled": managed.handled,
        "sent": managed.queue.sent,
        "queue": [[stanza_to_text(element), when] for element, when in managed.queue],
        "timeout": managed.timeout,
        "remaining": remaining,
        "peer": str(getattr(stream, "peer_address", "")),
        "secure": bool(getattr(stream, "secure", False)),
        "mechanism": getattr(stream, "mechanism", None),
        "plugins": plugins,
    }


def read(state: dict) -> Handover:
    """``state`` checked; ValueError (with what is wrong) when it is not one a node of this
    version exported. A queued stanza that does not parse back is an error too: a session
    is taken whole or not at all."""
    try:
        if state.get("v") != VERSION:
            raise ValueError(f"unknown version {state.get('v')!r}")
        jid = parse_jid(str(state["jid"]))
        if jid.user is None or jid.resource is None:
            raise ValueError(f"not a client's full JID: {state['jid']!r}")
        queue = []
        for text, when in state["queue"]:
            element = stanza_from_text(str(text))
            if element is None:
                raise ValueError("a queued stanza does not parse")
            queue.append((element, float(when)))
        handover = Handover(
            id=_text(state["id"]), jid=jid, handled=_count(state["handled"]),
            sent=_count(state["sent"]), queue=queue, timeout=int(state["timeout"]),
            remaining=float(state["remaining"]), peer=str(state.get("peer", "")),
            secure=bool(state.get("secure", False)),
            mechanism=_text(state["mechanism"]) if state.get("mechanism") else None,
            plugins=dict(state.get("plugins") or {}))
    except (KeyError, TypeError, InvalidJID) as error:
        raise ValueError(f"not a handed-over session: {error!r}") from None
    if handover.timeout <= 0 or len(queue) > MODULUS:
        raise ValueError("not a resumable session")
    return handover


def _count(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MODULUS:
        raise ValueError(f"not a count: {value!r}")
    return value


def _text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a text: {value!r}")
    return value
