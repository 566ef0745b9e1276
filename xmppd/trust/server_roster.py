# -*- test-case-name: tests.unit.test_server_roster -*-
"""The server roster of XEP-0267: presence subscriptions between server domains, driven by admins.

One relationship between one of our domains and a peer domain is an RFC 6121 ``SubState``
(xmppd.im.subscription), seen from our side: 'to' means we see the peer's server presence,
'from' that the peer sees ours, 'both' makes the peer a trusted buddy. The rules are RFC 6121's,
with what XEP-0267 §2 ("MUST NOT send ... unless explicitly requested by a server
administrator") and our admins ask on top:

* The server sends nothing of its own accord. Every outbound 'subscribe', 'subscribed' and
  'unsubscribed' comes from an admin action: ``request``, ``approve``, ``deny``, ``revoke``.
* An inbound 'subscribe' is never answered by the server: it becomes Pending In and the admins
  hear of it. Not even a peer that is already subscribed gets RFC 6121's automatic
  'subscribed' again (A.3.1 [2]); an admin may resend it with ``approve``.
* There is no pre-approval (§3.4): ``approved`` is never set, so inbound's pre-approval branch
  cannot fire.
* The one automatic stanza is RFC 6121's 'unsubscribed' acknowledging a peer's 'unsubscribe'
  (A.3.2): it only ever takes trust away.

Approval sends 'subscribed' and, as XEP-0267 recommends, our own 'subscribe' back. The peer's
answer to that 'subscribe' completes 'both' on our side; the peer's reciprocal request is an
ordinary inbound 'subscribe', which its admins answer like any other.

Pure functions, no I/O: the ServerTrust service stores the new state, sends ``Step.send`` in
order and tells the admins ``Step.news`` (a template over ``{peer}`` and ``{local}``).
"""

from __future__ import annotations

from dataclasses import dataclass

from xmppd.im.subscription import NONE, SUBSCRIPTION_TYPES, SubState, inbound, outbound
from xmppd.jid import JID
from xmppd.stanza import Stanza

_SERVER_PRESENCE_TYPES = frozenset(SUBSCRIPTION_TYPES + ("error",))


class TrustError(ValueError):
    """An admin action that does not apply to the relationship as it stands."""


@dataclass(frozen=True)
class Step:
    """What one event does to a relationship."""

    state: SubState  # the new state; the very object passed in when nothing changed
    send: tuple[str, ...] = ()  # presence types to send the peer, in this order
    news: str | None = None  # for the admins, with {peer} and {local} to fill in


def is_server_subscription(stanza: Stanza) -> bool:
    """A subscription presence between two bare domains, or the presence error bouncing one:
    all that XEP-0267 exchanges."""
    return (stanza.kind == "presence" and stanza.type in _SERVER_PRESENCE_TYPES
            and is_bare_domain(stanza.sender) and is_bare_domain(stanza.recipient))


def is_bare_domain(jid: JID | None) -> bool:
    return jid is not None and jid.user is None and jid.resource is None


# --------------------------------------------------------------------------- admin actions


def request(state: SubState) -> Step:
    """Ask the peer for its server presence; asking again while pending resends the request."""
    if state.has_to:
        raise TrustError("already subscribed to its server presence")
    return Step(outbound(state, "subscribe").state, ("subscribe",))


def approve(state: SubState) -> Step:
    """Grant the peer's pending request, and ask for the peer's presence in return.

    With nothing pending but the peer already subscribed, 'subscribed' is sent again: the
    admin's way to answer a peer that lost its state and asks once more.
    """
    if state.pending_in:
        new = outbound(state, "subscribed", pre_approval=False).state
    elif state.has_from:
        new = state
    else:
        raise TrustError("no pending request to approve")
    send = ("subscribed",)
    if not new.has_to and not new.pending_out:
        new = outbound(new, "subscribe").state
        send += ("subscribe",)
    return Step(new, send)


def deny(state: SubState) -> Step:
    """Refuse the peer's pending request."""
    if not state.pending_in:
        raise TrustError("no pending request to deny")
    return Step(outbound(state, "unsubscribed").state, ("unsubscribed",))


def revoke(state: SubState) -> Step:
    """End the relationship in both directions, whatever is left of it.

    Both 'unsubscribe' and 'unsubscribed' go out even where our side knows only one direction:
    the peer ignores what does not apply (RFC 6121 §3.2.3, §3.3.3), and a peer whose state
    drifted from ours is cleaned up too.
    """
    if state == NONE:
        raise TrustError("no relationship to revoke")
    return Step(NONE, ("unsubscribe", "unsubscribed"))


# --------------------------------------------------------------------------- what the peer sends

_NEWS = {
    # (stanza type, what the state had before) -> news
    ("subscribe", "request"): "{peer} asks to subscribe to the server presence of {local} "
    "(XEP-0267). Answer with `trust approve {peer}` or `trust deny {peer}`.",
    ("subscribed", "pending_out"): "{peer} approved the subscription of {local} to its server "
    "presence.",
    ("unsubscribe", "from"): "{peer} cancelled its subscription to the server presence of "
    "{local}.",
    ("unsubscribe", "pending_in"): "{peer} withdrew its request to subscribe to the server "
    "presence of {local}.",
    ("unsubscribed", "to"): "{peer} cancelled the subscription of {local} to its server "
    "presence.",
    ("unsubscribed", "pending_out"): "{peer} denied the request of {local} to subscribe to its "
    "server presence.",
}


def receive(state: SubState, type: str) -> Step:
    """A subscription stanza the peer sent us (RFC 6121 A.3, never answered but for the
    'unsubscribed' that acknowledges an 'unsubscribe'). ValueError for other types."""
    outcome = inbound(state, type)
    if outcome.state is state:
        return Step(state)
    send = (outcome.auto_reply,) if type == "unsubscribe" and outcome.auto_reply else ()
    return Step(outcome.state, send, _NEWS[type, _cause(state, type)])


def _cause(state: SubState, type: str) -> str:
    """Which part of the old state the stanza changed, to pick the news."""
    if type == "subscribe":
        return "request"
    if type == "subscribed":
        return "pending_out"
    if type == "unsubscribe":
        return "from" if state.has_from else "pending_in"
    return "to" if state.has_to else "pending_out"
