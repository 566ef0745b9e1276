# -*- test-case-name: tests.unit.test_subscription -*-
"""The presence subscription state machine of RFC 6121 (§3 and Appendix A), as pure functions.

One roster relationship, seen from the user who owns the roster, is one ``SubState``. The server
feeds every subscription stanza through ``outbound`` (the user sent it) or ``inbound`` (it came
from the contact) and acts on the ``Outcome``: store the new state, push the roster if
``changed``, route or deliver the stanza if ``deliver``, send ``auto_reply`` for the user.
Nothing here does I/O, so the rules can be checked against every row of the RFC's tables.

The nine states of RFC 6121 Appendix A.1, plus the pre-approval of §3.4:

====================== ============ ========= ========== ====================================
RFC name               subscription ask       pending_in meaning
====================== ============ ========= ========== ====================================
None                   none         -         no         nobody subscribed, nothing asked
None + Pending Out     none         subscribe no         user asked contact, no answer yet
None + Pending In      none         -         yes        contact asked user, no answer [1]
None + Pending Out+In  none         subscribe yes        both asked, neither answered
To                     to           -         no         user sees contact's presence
To + Pending In        to           -         yes        ... and contact asked the user [1]
From                   from         -         no         contact sees user's presence
From + Pending Out     from         subscribe no         ... and user asked the contact
Both                   both         -         no         each sees the other's presence
====================== ============ ========= ========== ====================================

"None", "None + Pending Out" and "To" may also carry approved='true': the user pre-approved the
contact's request [2]. ``str()`` names such a state e.g. "To (pre-approved)".

[1] "Pending In" never shows in the roster (no attribute carries it; §3.1.3 even forbids creating
    a roster item for it), so it changes no roster push; the server still has to store it.
[2] RFC 6121 §3.4: an outbound 'subscribed' with nothing to approve. The server answers the next
    inbound 'subscribe' itself and the state gains 'from' (None -> From, None + Pending Out ->
    From + Pending Out, To -> Both); the flag is then dropped, as the RFC leaves keeping it to
    local policy. A state with 'from' has nothing left to pre-approve.

``Outcome.changed`` is true exactly when what a client sees of the item (subscription, ask,
approved) changed, which is when RFC 6121 asks for a roster push (§2.6.3 "roster modification").
A state that changes only in ``pending_in`` comes back as a new object with ``changed`` false;
an unchanged state comes back as the very object passed in, so ``outcome.state is not state``
tells the caller to store it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SUBSCRIPTIONS = ("none", "to", "from", "both")
SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")

# (has_from, has_to) -> the roster's 'subscription' value, and back.
_SUBSCRIPTION = {
    (False, False): "none",
    (False, True): "to",
    (True, False): "from",
    (True, True): "both",
}
_DIRECTIONS = {name: flags for flags, name in _SUBSCRIPTION.items()}

# (subscription, pending_out, pending_in) -> RFC 6121 A.1 name: the only nine combinations allowed.
_RFC_NAMES = {
    ("none", False, False): "None",
    ("none", True, False): "None + Pending Out",
    ("none", False, True): "None + Pending In",
    ("none", True, True): "None + Pending Out+In",
    ("to", False, False): "To",
    ("to", False, True): "To + Pending In",
    ("from", False, False): "From",
    ("from", True, False): "From + Pending Out",
    ("both", False, False): "Both",
}
_BY_NAME = {name.lower(): key for key, name in _RFC_NAMES.items()}
_BY_NAME["none + pending out/in"] = ("none", True, True)  # RFC 3921's spelling of the same state
PRE_APPROVED_SUFFIX = " (pre-approved)"


@dataclass(frozen=True, slots=True)
class SubState:
    """One contact's subscription state in the user's roster (RFC 6121 Appendix A.1)."""

    subscription: str = "none"  # none | to | from | both
    pending_out: bool = False  # the user asked the contact: ask='subscribe'
    pending_in: bool = False  # the contact asked the user, who has not answered
    approved: bool = False  # pre-approval (§3.4); only without 'from' and without pending_in

    def __post_init__(self) -> None:
        for flag in ("pending_out", "pending_in", "approved"):
            if type(getattr(self, flag)) is not bool:
                raise TypeError(f"SubState.{flag} must be a bool, not {getattr(self, flag)!r}")
        if self.subscription not in SUBSCRIPTIONS:
            raise ValueError(
                f"subscription must be one of {', '.join(SUBSCRIPTIONS)}, not {self.subscription!r}"
            )
        if (self.subscription, self.pending_out, self.pending_in) not in _RFC_NAMES:
            what = "pending_out" if self.pending_out and self.has_to else "pending_in"
            raise ValueError(
                f"{what} is impossible with subscription={self.subscription!r}: "
                "RFC 6121 A.1 defines no such state"
            )
        if self.approved and (self.has_from or self.pending_in):
            raise ValueError(
                "a pre-approval (approved=True) only exists while the contact has no "
                "subscription and no pending request (RFC 6121 §3.4.2)"
            )

    @property
    def has_from(self) -> bool:
        """The contact is subscribed to the user's presence."""
        return _DIRECTIONS[self.subscription][0]

    @property
    def has_to(self) -> bool:
        """The user is subscribed to the contact's presence."""
        return _DIRECTIONS[self.subscription][1]

    @property
    def ask(self) -> str | None:
        """The roster item's 'ask' attribute (RFC 6121 §2.1.2.2)."""
        return "subscribe" if self.pending_out else None

    def __str__(self) -> str:
        name = _RFC_NAMES[self.subscription, self.pending_out, self.pending_in]
        return name + PRE_APPROVED_SUFFIX if self.approved else name

    @classmethod
    def from_name(cls, name: str) -> SubState:
        """The state an RFC 6121 A.1 name denotes, e.g. "None + Pending Out+In" (case-insensitive).

        ``str(state)`` round-trips, pre-approval suffix included.
        """
        if not isinstance(name, str):
            raise TypeError(f"a state name is a str, not {name!r}")
        text = name.strip().lower()
        approved = text.endswith(PRE_APPROVED_SUFFIX)
        if approved:
            text = text[: -len(PRE_APPROVED_SUFFIX)]
        try:
            subscription, pending_out, pending_in = _BY_NAME[text]
        except KeyError:
            known = ", ".join(repr(known) for known in _RFC_NAMES.values())
            raise ValueError(f"{name!r} is not a subscription state of RFC 6121; known: {known}")
        return cls(subscription, pending_out, pending_in, approved)

    def _with(
        self,
        *,
        has_from: bool | None = None,
        has_to: bool | None = None,
        pending_out: bool | None = None,
        pending_in: bool | None = None,
        approved: bool | None = None,
    ) -> SubState:
        """This state with some parts changed; ``self`` itself when nothing differs."""
        old_from, old_to = _DIRECTIONS[self.subscription]
        new = (
            _SUBSCRIPTION[
                old_from if has_from is None else has_from, old_to if has_to is None else has_to
            ],
            self.pending_out if pending_out is None else pending_out,
            self.pending_in if pending_in is None else pending_in,
            self.approved if approved is None else approved,
        )
        if new == (self.subscription, self.pending_out, self.pending_in, self.approved):
            return self
        return SubState(*new)


NONE = SubState()
NONE_PENDING_OUT = SubState("none", pending_out=True)
NONE_PENDING_IN = SubState("none", pending_in=True)
NONE_PENDING_OUT_IN = SubState("none", pending_out=True, pending_in=True)
TO = SubState("to")
TO_PENDING_IN = SubState("to", pending_in=True)
FROM = SubState("from")
FROM_PENDING_OUT = SubState("from", pending_out=True)
BOTH = SubState("both")
# The nine states in the order of RFC 6121 A.1 and of its tables.
STATES = (
    NONE,
    NONE_PENDING_OUT,
    NONE_PENDING_IN,
    NONE_PENDING_OUT_IN,
    TO,
    TO_PENDING_IN,
    FROM,
    FROM_PENDING_OUT,
    BOTH,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the server does with one subscription stanza."""

    state: SubState  # the new state; the very object passed in when nothing changed
    changed: bool  # the roster item as clients see it changed: a roster push is due
    deliver: bool  # route (outbound) or deliver (inbound) the stanza; False = drop it silently
    # A stanza type the server sends to the contact on the user's behalf. It is already
    # reflected in ``state``: send it straight out, do not feed it back through ``outbound``.
    auto_reply: str | None = None


def _outcome(old: SubState, new: SubState, deliver: bool, auto_reply: str | None = None) -> Outcome:
    changed = new is not old and (
        new.subscription != old.subscription
        or new.pending_out != old.pending_out
        or new.approved != old.approved
    )
    return Outcome(new, changed, deliver, auto_reply)


# Outbound: the user sent the stanza to the contact (RFC 6121 A.2, tables 2-5).


def _send_subscribe(state: SubState) -> Outcome:
    # A.2.1: always routed; asks unless the user already has the subscription.
    return _outcome(state, state if state.has_to else state._with(pending_out=True), True)


def _send_unsubscribe(state: SubState) -> Outcome:
    # A.2.2: always routed; drops 'to' and any request still pending.
    return _outcome(state, state._with(has_to=False, pending_out=False), True)


def _send_subscribed(state: SubState, pre_approval: bool) -> Outcome:
    if state.has_from:  # A.2.3, §3.4.2 step 1: nothing to approve, silently ignored
        return _outcome(state, state, False)
    if state.pending_in:  # §3.1.5, §3.4.2 step 2: a normal approval
        return _outcome(state, state._with(has_from=True, pending_in=False), True)
    if pre_approval:  # §3.4.2 steps 3-4: note the pre-approval, MUST NOT route
        return _outcome(state, state._with(approved=True), False)
    return _outcome(state, state, False)


def _send_unsubscribed(state: SubState) -> Outcome:
    if state.has_from or state.pending_in:  # A.2.4: cancel the subscription or deny the request
        return _outcome(state, state._with(has_from=False, pending_in=False), True)
    # §3.2.2 steps 1-2: SHOULD NOT route; a pre-approval, if any, is withdrawn (MUST NOT route).
    return _outcome(state, state._with(approved=False), False)


# Inbound: the contact sent the stanza to the user (RFC 6121 A.3, tables 6-9).


def _receive_subscribe(state: SubState) -> Outcome:
    if state.has_from:  # A.3.1 [2], §3.1.3 rule 2: already subscribed, the server answers
        return _outcome(state, state, False, "subscribed")
    if state.approved:  # A.3.1 [1], §3.4.2: pre-approved, the server answers and grants it
        return _outcome(state, state._with(has_from=True, approved=False), False, "subscribed")
    if state.pending_in:  # A.3.1: a repeated request SHOULD NOT reach the user again
        return _outcome(state, state, False)
    return _outcome(state, state._with(pending_in=True), True)


def _receive_unsubscribe(state: SubState) -> Outcome:
    if state.has_from or state.pending_in:  # A.3.2 [1]: deliver, and SHOULD reply "unsubscribed"
        return _outcome(state, state._with(has_from=False, pending_in=False), True, "unsubscribed")
    return _outcome(state, state, False)  # §3.3.3: nothing to undo, silently ignored


def _receive_subscribed(state: SubState) -> Outcome:
    if state.pending_out:  # A.3.3, §3.1.6: the approval the user asked for
        return _outcome(state, state._with(has_to=True, pending_out=False), True)
    return _outcome(state, state, False)  # §3.1.6: unasked-for approval, silently ignored


def _receive_unsubscribed(state: SubState) -> Outcome:
    if state.has_to or state.pending_out:  # A.3.4: a cancellation or a denial
        return _outcome(state, state._with(has_to=False, pending_out=False), True)
    return _outcome(state, state, False)  # §3.2.3: nothing to cancel, silently ignored


_INBOUND: dict[str, Callable[[SubState], Outcome]] = {
    "subscribe": _receive_subscribe,
    "subscribed": _receive_subscribed,
    "unsubscribe": _receive_unsubscribe,
    "unsubscribed": _receive_unsubscribed,
}
_OUTBOUND: dict[str, Callable[[SubState], Outcome]] = {
    "subscribe": _send_subscribe,
    "unsubscribe": _send_unsubscribe,
    "unsubscribed": _send_unsubscribed,
}


def _check(state: SubState, type: str) -> None:
    if not isinstance(state, SubState):
        raise TypeError(f"expected a SubState, not {state!r}")
    if type not in SUBSCRIPTION_TYPES:
        raise ValueError(
            f"{type!r} is not a presence subscription type "
            f"(expected one of {', '.join(SUBSCRIPTION_TYPES)})"
        )


def outbound(state: SubState, type: str, *, pre_approval: bool = True) -> Outcome:
    """The user's server handling a subscription stanza the user sends (RFC 6121 A.2).

    ``deliver`` means route it to the contact. With ``pre_approval`` false (the server does not
    offer §3.4), a 'subscribed' with nothing to approve is dropped and changes nothing.
    Raises ValueError for any type but subscribe, subscribed, unsubscribe and unsubscribed.
    """
    _check(state, type)
    if type == "subscribed":
        return _send_subscribed(state, pre_approval)
    return _OUTBOUND[type](state)


def inbound(state: SubState, type: str) -> Outcome:
    """The user's server handling a subscription stanza the contact sent the user (RFC 6121 A.3).

    ``deliver`` means deliver it to the user's resources (before the roster push, §3.1.6).
    Raises ValueError for any type but subscribe, subscribed, unsubscribe and unsubscribed.
    """
    _check(state, type)
    return _INBOUND[type](state)


def item_is_removable(state: SubState) -> bool:
    """Nothing is left of the relationship: no subscription, no request, no pre-approval."""
    return state == NONE
