"""RFC 6121 subscription states: every row of Appendix A's tables, pre-approval, invariants."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from xmppd.im.subscription import (
    BOTH,
    FROM,
    FROM_PENDING_OUT,
    NONE,
    NONE_PENDING_IN,
    NONE_PENDING_OUT,
    NONE_PENDING_OUT_IN,
    STATES,
    SUBSCRIPTION_TYPES,
    TO,
    TO_PENDING_IN,
    Outcome,
    SubState,
    inbound,
    item_is_removable,
    outbound,
)

# RFC 6121 Appendix A.2, tables 2-5, row for row:
# (table, EXISTING STATE, stanza type, ROUTE?, NEW STATE). "M.N." is MUST NOT, "S.N." SHOULD NOT.
OUTBOUND_ROWS = [
    ("2", "None", "subscribe", "MUST [1]", "None + Pending Out"),
    ("2", "None + Pending Out", "subscribe", "MUST", "no state change"),
    ("2", "None + Pending In", "subscribe", "MUST [1]", "None + Pending Out+In"),
    ("2", "None + Pending Out+In", "subscribe", "MUST", "no state change"),
    ("2", "To", "subscribe", "MUST", "no state change"),
    ("2", "To + Pending In", "subscribe", "MUST", "no state change"),
    ("2", "From", "subscribe", "MUST [1]", "From + Pending Out"),
    ("2", "From + Pending Out", "subscribe", "MUST", "no state change"),
    ("2", "Both", "subscribe", "MUST", "no state change"),
    ("3", "None", "unsubscribe", "MUST", "no state change"),
    ("3", "None + Pending Out", "unsubscribe", "MUST", "None"),
    ("3", "None + Pending In", "unsubscribe", "MUST", "no state change"),
    ("3", "None + Pending Out+In", "unsubscribe", "MUST", "None + Pending In"),
    ("3", "To", "unsubscribe", "MUST", "None"),
    ("3", "To + Pending In", "unsubscribe", "MUST", "None + Pending In"),
    ("3", "From", "unsubscribe", "MUST", "no state change"),
    ("3", "From + Pending Out", "unsubscribe", "MUST", "From"),
    ("3", "Both", "unsubscribe", "MUST", "From"),
    ("4", "None", "subscribed", "M.N.", "pre-approval [1]"),
    ("4", "None + Pending Out", "subscribed", "M.N.", "pre-approval [1]"),
    ("4", "None + Pending In", "subscribed", "MUST", "From"),
    ("4", "None + Pending Out+In", "subscribed", "MUST", "From + Pending Out"),
    ("4", "To", "subscribed", "M.N.", "pre-approval [1]"),
    ("4", "To + Pending In", "subscribed", "MUST", "Both"),
    ("4", "From", "subscribed", "M.N.", "no state change"),
    ("4", "From + Pending Out", "subscribed", "M.N.", "no state change"),
    ("4", "Both", "subscribed", "M.N.", "no state change"),
    ("5", "None", "unsubscribed", "S.N.", "no state change [1]"),
    ("5", "None + Pending Out", "unsubscribed", "S.N.", "no state change [1]"),
    ("5", "None + Pending In", "unsubscribed", "MUST", "None"),
    ("5", "None + Pending Out+In", "unsubscribed", "MUST", "None + Pending Out"),
    ("5", "To", "unsubscribed", "S.N.", "no state change [1]"),
    ("5", "To + Pending In", "unsubscribed", "MUST", "To"),
    ("5", "From", "unsubscribed", "MUST", "None"),
    ("5", "From + Pending Out", "unsubscribed", "MUST", "None + Pending Out"),
    ("5", "Both", "unsubscribed", "MUST", "To"),
]

# RFC 6121 Appendix A.3, tables 6-9, row for row: (table, EXISTING STATE, stanza type, DELIVER?,
# NEW STATE). Footnotes: table 6 [2] "Server SHOULD auto-reply with 'subscribed'" and [1] (only
# with a pre-approval, tested below); table 7 [1] "Server SHOULD auto-reply with 'unsubscribed'".
INBOUND_ROWS = [
    ("6", "None", "subscribe", "MUST [1]", "None + Pending In"),
    ("6", "None + Pending Out", "subscribe", "MUST", "None + Pending Out+In"),
    ("6", "None + Pending In", "subscribe", "S.N.", "no state change"),
    ("6", "None + Pending Out+In", "subscribe", "S.N.", "no state change"),
    ("6", "To", "subscribe", "MUST", "To + Pending In"),
    ("6", "To + Pending In", "subscribe", "S.N.", "no state change"),
    ("6", "From", "subscribe", "S.N. [2]", "no state change"),
    ("6", "From + Pending Out", "subscribe", "S.N. [2]", "no state change"),
    ("6", "Both", "subscribe", "S.N. [2]", "no state change"),
    ("7", "None", "unsubscribe", "S.N.", "no state change"),
    ("7", "None + Pending Out", "unsubscribe", "S.N.", "no state change"),
    ("7", "None + Pending In", "unsubscribe", "MUST [1]", "None"),
    ("7", "None + Pending Out+In", "unsubscribe", "MUST [1]", "None + Pending Out"),
    ("7", "To", "unsubscribe", "S.N.", "no state change"),
    ("7", "To + Pending In", "unsubscribe", "MUST [1]", "To"),
    ("7", "From", "unsubscribe", "MUST [1]", "None"),
    ("7", "From + Pending Out", "unsubscribe", "MUST [1]", "None + Pending Out"),
    ("7", "Both", "unsubscribe", "MUST [1]", "To"),
    ("8", "None", "subscribed", "S.N.", "no state change"),
    ("8", "None + Pending Out", "subscribed", "MUST", "To"),
    ("8", "None + Pending In", "subscribed", "S.N.", "no state change"),
    ("8", "None + Pending Out+In", "subscribed", "MUST", "To + Pending In"),
    ("8", "To", "subscribed", "S.N.", "no state change"),
    ("8", "To + Pending In", "subscribed", "S.N.", "no state change"),
    ("8", "From", "subscribed", "S.N.", "no state change"),
    ("8", "From + Pending Out", "subscribed", "MUST", "Both"),
    ("8", "Both", "subscribed", "S.N.", "no state change"),
    ("9", "None", "unsubscribed", "S.N.", "no state change"),
    ("9", "None + Pending Out", "unsubscribed", "MUST", "None"),
    ("9", "None + Pending In", "unsubscribed", "S.N.", "no state change"),
    ("9", "None + Pending Out+In", "unsubscribed", "MUST", "None + Pending In"),
    ("9", "To", "unsubscribed", "MUST", "None"),
    ("9", "To + Pending In", "unsubscribed", "MUST", "None + Pending In"),
    ("9", "From", "unsubscribed", "S.N.", "no state change"),
    ("9", "From + Pending Out", "unsubscribed", "MUST", "From"),
    ("9", "Both", "unsubscribed", "MUST", "From"),
]
INBOUND_AUTO_REPLIES = {("6", "[2]"): "subscribed", ("7", "[1]"): "unsubscribed"}

PRE_APPROVABLE = (NONE, NONE_PENDING_OUT, TO)
APPROVED_STATES = tuple(dataclasses.replace(state, approved=True) for state in PRE_APPROVABLE)
ALL_STATES = STATES + APPROVED_STATES
NOT_SUBSCRIPTION_TYPES = ["probe", "unavailable", "error", "", "Subscribe", " subscribe", None, 3]


def _row_id(row) -> str:
    table, state, type, _, _ = row
    return f"table{table}-{state}-{type}".replace(" ", "")


def _footnote(text: str) -> str | None:
    return text.split()[-1] if text.endswith("]") else None


def _roster_view(state: SubState) -> tuple:
    """What a client sees of the item in a roster push."""
    return state.subscription, state.ask, state.approved


def _expected_state(old: SubState, new_state: str) -> SubState:
    if new_state.startswith("no state change"):
        return old
    if new_state.startswith("pre-approval"):
        return dataclasses.replace(old, approved=True)
    return SubState.from_name(new_state)


def test_the_tables_cover_every_state_and_type_once():
    for rows in (OUTBOUND_ROWS, INBOUND_ROWS):
        cells = [(SubState.from_name(state), type) for _, state, type, _, _ in rows]
        assert len(cells) == len(set(cells)) == len(STATES) * len(SUBSCRIPTION_TYPES)
        assert set(cells) == set(itertools.product(STATES, SUBSCRIPTION_TYPES))


@pytest.mark.parametrize("row", OUTBOUND_ROWS, ids=_row_id)
def test_outbound_follows_rfc6121_appendix_a2(row):
    _, existing, type, route, new_state = row
    old = SubState.from_name(existing)

    outcome = outbound(old, type)

    assert outcome.deliver is route.startswith("MUST")
    assert outcome.state == _expected_state(old, new_state)
    if new_state == "no state change":
        assert outcome.state is old
    assert outcome.changed is (_roster_view(outcome.state) != _roster_view(old))
    assert outcome.auto_reply is None
    if _footnote(route) == "[1]":  # table 2 [1]: "pending out" means ask='subscribe'
        assert outcome.state.ask == "subscribe"


@pytest.mark.parametrize("row", INBOUND_ROWS, ids=_row_id)
def test_inbound_follows_rfc6121_appendix_a3(row):
    table, existing, type, deliver, new_state = row
    old = SubState.from_name(existing)

    outcome = inbound(old, type)

    assert outcome.deliver is deliver.startswith("MUST")
    assert outcome.state == _expected_state(old, new_state)
    if new_state == "no state change":
        assert outcome.state is old
    assert outcome.changed is (_roster_view(outcome.state) != _roster_view(old))
    assert outcome.auto_reply == INBOUND_AUTO_REPLIES.get((table, _footnote(deliver)))


# RFC 6121 §3.4: pre-approving a subscription request.


@pytest.mark.parametrize("old", PRE_APPROVABLE, ids=str)
def test_subscribed_with_nothing_to_approve_is_a_pre_approval(old):
    outcome = outbound(old, "subscribed")

    assert outcome.state == dataclasses.replace(old, approved=True)
    assert outcome.deliver is False  # §3.4.2 step 3: MUST NOT route
    assert outcome.changed is True  # ... "then push the modified roster item"
    assert str(outcome.state) == f"{old} (pre-approved)"


@pytest.mark.parametrize("old", APPROVED_STATES, ids=str)
def test_a_repeated_pre_approval_changes_nothing(old):
    assert outbound(old, "subscribed") == Outcome(old, changed=False, deliver=False)
    assert outbound(old, "subscribed").state is old


@pytest.mark.parametrize(
    ("old", "granted"),
    [(NONE, FROM), (NONE_PENDING_OUT, FROM_PENDING_OUT), (TO, BOTH)],
    ids=str,
)
def test_a_pre_approved_request_is_answered_by_the_server(old, granted):
    approved = dataclasses.replace(old, approved=True)

    outcome = inbound(approved, "subscribe")

    assert outcome.state == granted  # gains 'from'; the approval is used up
    assert outcome.auto_reply == "subscribed"  # the server replies for the user
    assert outcome.deliver is False  # §3.4.2: MUST NOT deliver the request to the user
    assert outcome.changed is True  # the user's clients learn of it by the roster push


@pytest.mark.parametrize("old", PRE_APPROVABLE, ids=str)
def test_unsubscribed_withdraws_a_pre_approval_without_routing(old):
    approved = dataclasses.replace(old, approved=True)

    outcome = outbound(approved, "unsubscribed")

    assert outcome.state == old
    assert outcome.deliver is False  # §3.2.2 step 2: MUST NOT route
    assert outcome.changed is True  # the push drops approved='true'


@pytest.mark.parametrize(
    ("direction", "type", "approved", "expected"),
    [
        (outbound, "subscribe", SubState("none", approved=True), "None + Pending Out"),
        (outbound, "unsubscribe", SubState("none", True, approved=True), "None"),
        (outbound, "unsubscribe", SubState("to", approved=True), "None"),
        (inbound, "subscribed", SubState("none", True, approved=True), "To"),
        (inbound, "unsubscribed", SubState("to", approved=True), "None"),
        (inbound, "unsubscribed", SubState("none", True, approved=True), "None"),
        (inbound, "unsubscribe", SubState("to", approved=True), "To"),
    ],
)
def test_the_other_direction_keeps_a_pre_approval(direction, type, approved, expected):
    outcome = direction(approved, type)

    assert outcome.state == SubState.from_name(expected + " (pre-approved)")


def test_pre_approval_can_be_switched_off():
    outcome = outbound(NONE, "subscribed", pre_approval=False)

    assert outcome == Outcome(NONE, changed=False, deliver=False)
    # A real approval does not depend on the feature.
    assert outbound(NONE_PENDING_IN, "subscribed", pre_approval=False).state == FROM


# Whole conversations between two servers: Romeo's roster item for Juliet and Juliet's for Romeo.


def _send(sender: SubState, receiver: SubState, type: str) -> tuple[SubState, SubState]:
    """One stanza from sender to receiver, through both servers and any auto-reply."""
    sent = outbound(sender, type)
    sender = sent.state
    if sent.deliver:
        received = inbound(receiver, type)
        receiver = received.state
        if received.auto_reply:
            sender = inbound(sender, received.auto_reply).state
    return sender, receiver


def test_full_handshake_ends_with_both_sides_both():
    romeo = juliet = NONE

    romeo, juliet = _send(romeo, juliet, "subscribe")
    assert (romeo, juliet) == (NONE_PENDING_OUT, NONE_PENDING_IN)
    juliet, romeo = _send(juliet, romeo, "subscribed")
    assert (romeo, juliet) == (TO, FROM)
    juliet, romeo = _send(juliet, romeo, "subscribe")
    assert (romeo, juliet) == (TO_PENDING_IN, FROM_PENDING_OUT)
    romeo, juliet = _send(romeo, juliet, "subscribed")

    assert (romeo, juliet) == (BOTH, BOTH)


def test_crossed_requests_end_with_both_sides_both():
    romeo, juliet = _send(NONE, NONE, "subscribe")
    juliet, romeo = _send(juliet, romeo, "subscribe")
    assert (romeo, juliet) == (NONE_PENDING_OUT_IN, NONE_PENDING_OUT_IN)

    romeo, juliet = _send(romeo, juliet, "subscribed")
    juliet, romeo = _send(juliet, romeo, "subscribed")

    assert (romeo, juliet) == (BOTH, BOTH)


def test_pre_approved_handshake_needs_no_answer_from_the_contact():
    juliet, romeo = _send(NONE, NONE, "subscribed")
    assert juliet == SubState(approved=True)
    assert romeo == NONE  # the pre-approval was not routed

    romeo, juliet = _send(romeo, juliet, "subscribe")

    assert (romeo, juliet) == (TO, FROM)


def test_unsubscribing_both_ways_leaves_nothing():
    romeo = juliet = BOTH

    romeo, juliet = _send(romeo, juliet, "unsubscribe")
    assert (romeo, juliet) == (FROM, TO)
    juliet, romeo = _send(juliet, romeo, "unsubscribe")

    assert (romeo, juliet) == (NONE, NONE)
    assert item_is_removable(romeo) and item_is_removable(juliet)


def test_random_conversations_keep_both_rosters_in_step():
    rng = random.Random(6121)
    for _ in range(300):
        romeo = juliet = NONE
        for _ in range(40):
            type = rng.choice(SUBSCRIPTION_TYPES)
            if rng.random() < 0.5:
                romeo, juliet = _send(romeo, juliet, type)
            else:
                juliet, romeo = _send(juliet, romeo, type)
            for me, peer in ((romeo, juliet), (juliet, romeo)):
                assert me in ALL_STATES
                assert me.has_to == peer.has_from, (str(romeo), str(juliet))
                assert me.pending_out == peer.pending_in, (str(romeo), str(juliet))
                assert not (me.approved and peer.pending_out), (str(romeo), str(juliet))


# Invariants over every state (approval included) and every type, in both directions.

CELLS = list(itertools.product(ALL_STATES, SUBSCRIPTION_TYPES))
DIRECTIONS = {"outbound": outbound, "inbound": inbound}


def _to_side(state: SubState) -> tuple:
    return state.has_to, state.pending_out


def _from_side(state: SubState) -> tuple:
    return state.has_from, state.pending_in, state.approved


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("old", "type"), CELLS, ids=lambda value: str(value))
def test_invariants_of_every_transition(direction, old, type):
    outcome = DIRECTIONS[direction](old, type)
    new = outcome.state

    assert new in ALL_STATES
    if new == old:
        assert new is old
    assert outcome.changed is (_roster_view(new) != _roster_view(old))
    # Each stanza type works on one side of the relationship and leaves the other alone:
    # my subscription to the contact (subscribe/unsubscribe out, subscribed/unsubscribed in)
    # or the contact's subscription to me (the rest).
    works_on_my_subscription = (direction == "outbound") == (type in ("subscribe", "unsubscribe"))
    untouched = _from_side if works_on_my_subscription else _to_side
    assert untouched(new) == untouched(old)
    # Sending or receiving the same stanza again changes nothing and is never delivered twice.
    again = DIRECTIONS[direction](new, type)
    assert again.state is new and again.changed is False
    if direction == "inbound":
        assert again.deliver is False
        # §3.1.6, §3.2.3, §3.3.3, A.3: delivered exactly when the state changes, except a request
        # the server itself answered for the user.
        assert outcome.deliver is (new != old and outcome.auto_reply != "subscribed")
        assert outcome.auto_reply in (None, "subscribed", "unsubscribed")
    else:
        assert outcome.auto_reply is None
        if type in ("subscribe", "unsubscribe"):
            assert outcome.deliver is True  # A.2.1, A.2.2: always routed
        else:
            # A.2.3, A.2.4: routed exactly when the contact's subscription or request changes.
            contact_side_changed = (new.has_from, new.pending_in) != (old.has_from, old.pending_in)
            assert outcome.deliver is contact_side_changed


@pytest.mark.parametrize("approved", [False, True])
@pytest.mark.parametrize("state", STATES, ids=str)
def test_approved_exists_only_where_it_means_something(state, approved):
    if approved and state not in PRE_APPROVABLE:
        with pytest.raises(ValueError, match="pre-approval"):
            dataclasses.replace(state, approved=approved)
    else:
        assert dataclasses.replace(state, approved=approved) in ALL_STATES


# The state object itself.


@pytest.mark.parametrize(
    ("state", "has_from", "has_to", "ask"),
    [
        (NONE, False, False, None),
        (NONE_PENDING_OUT, False, False, "subscribe"),
        (NONE_PENDING_IN, False, False, None),
        (NONE_PENDING_OUT_IN, False, False, "subscribe"),
        (TO, False, True, None),
        (TO_PENDING_IN, False, True, None),
        (FROM, True, False, None),
        (FROM_PENDING_OUT, True, False, "subscribe"),
        (BOTH, True, True, None),
    ],
    ids=str,
)
def test_roster_attributes(state, has_from, has_to, ask):
    assert (state.has_from, state.has_to, state.ask) == (has_from, has_to, ask)


def test_names_are_the_rfc_names_and_round_trip():
    assert [str(state) for state in STATES] == [
        "None",
        "None + Pending Out",
        "None + Pending In",
        "None + Pending Out+In",
        "To",
        "To + Pending In",
        "From",
        "From + Pending Out",
        "Both",
    ]
    for state in ALL_STATES:
        assert SubState.from_name(str(state)) == state
    assert SubState.from_name("none + pending out/in") == NONE_PENDING_OUT_IN  # RFC 3921 spelling
    assert SubState.from_name(" to (PRE-APPROVED) ") == SubState("to", approved=True)


@pytest.mark.parametrize("name", ["", "Nothing", "To + Pending Out", "Both (pre-approved)"])
def test_unknown_names_are_refused(name):
    with pytest.raises(ValueError):
        SubState.from_name(name)


@pytest.mark.parametrize(
    "fields",
    [
        {"subscription": "remove"},
        {"subscription": "None"},
        {"subscription": "to", "pending_out": True},
        {"subscription": "both", "pending_out": True},
        {"subscription": "from", "pending_in": True},
        {"subscription": "both", "pending_in": True},
        {"subscription": "from", "approved": True},
        {"subscription": "none", "pending_in": True, "approved": True},
    ],
)
def test_states_outside_the_rfc_are_refused(fields):
    with pytest.raises(ValueError):
        SubState(**fields)


@pytest.mark.parametrize("flag", ["pending_out", "pending_in", "approved"])
@pytest.mark.parametrize("value", [1, "false", None])
def test_flags_must_be_booleans(flag, value):
    with pytest.raises(TypeError, match=flag):
        SubState(**{flag: value})


def test_states_and_outcomes_are_immutable_values():
    with pytest.raises(dataclasses.FrozenInstanceError):
        NONE.subscription = "both"
    with pytest.raises(dataclasses.FrozenInstanceError):
        outbound(NONE, "subscribe").deliver = False
    assert SubState("to", pending_in=True) == TO_PENDING_IN
    assert len({SubState(), NONE, SubState("none")}) == 1


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("type", NOT_SUBSCRIPTION_TYPES)
def test_other_types_are_refused(direction, type):
    with pytest.raises(ValueError, match="not a presence subscription type"):
        DIRECTIONS[direction](NONE, type)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_state_is_required(direction):
    with pytest.raises(TypeError):
        DIRECTIONS[direction]("none", "subscribe")


@pytest.mark.parametrize("state", ALL_STATES, ids=str)
def test_only_an_empty_relationship_is_removable(state):
    assert item_is_removable(state) is (state == NONE)
