"""The XEP-0267 server roster rules: every admin action and every peer stanza in every state."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd.im.subscription import STATES, SUBSCRIPTION_TYPES, SubState
from xmppd.jid import parse_jid
from xmppd.stanza import Stanza
from xmppd.trust import TrustError, server_roster
from xmppd.trust.server_roster import Step, is_server_subscription

S = SubState.from_name

# What each piece of news says, by a word or two only it contains.
NEWS = {
    "request": "asks to subscribe",
    "approved": "approved the subscription",
    "they cancelled": "cancelled its subscription",
    "they withdrew": "withdrew its request",
    "ours cancelled": "cancelled the subscription of",
    "ours denied": "denied the request",
}

# (state, stanza type from the peer) -> (new state or None for unchanged, replies, news).
# Written out by hand from RFC 6121 A.3 and the admin-only rules, not computed.
RECEIVE = {
    ("None", "subscribe"): ("None + Pending In", (), "request"),
    ("None", "subscribed"): (None, (), None),
    ("None", "unsubscribe"): (None, (), None),
    ("None", "unsubscribed"): (None, (), None),
    ("None + Pending Out", "subscribe"): ("None + Pending Out+In", (), "request"),
    ("None + Pending Out", "subscribed"): ("To", (), "approved"),
    ("None + Pending Out", "unsubscribe"): (None, (), None),
    ("None + Pending Out", "unsubscribed"): ("None", (), "ours denied"),
    ("None + Pending In", "subscribe"): (None, (), None),  # asked again: not news again
    ("None + Pending In", "subscribed"): (None, (), None),
    ("None + Pending In", "unsubscribe"): ("None", ("unsubscribed",), "they withdrew"),
    ("None + Pending In", "unsubscribed"): (None, (), None),
    ("None + Pending Out+In", "subscribe"): (None, (), None),
    ("None + Pending Out+In", "subscribed"): ("To + Pending In", (), "approved"),
    ("None + Pending Out+In", "unsubscribe"): ("None + Pending Out", ("unsubscribed",),
                                               "they withdrew"),
    ("None + Pending Out+In", "unsubscribed"): ("None + Pending In", (), "ours denied"),
    ("To", "subscribe"): ("To + Pending In", (), "request"),
    ("To", "subscribed"): (None, (), None),
    ("To", "unsubscribe"): (None, (), None),
    ("To", "unsubscribed"): ("None", (), "ours cancelled"),
    ("To + Pending In", "subscribe"): (None, (), None),
    ("To + Pending In", "subscribed"): (None, (), None),
    ("To + Pending In", "unsubscribe"): ("To", ("unsubscribed",), "they withdrew"),
    ("To + Pending In", "unsubscribed"): ("None + Pending In", (), "ours cancelled"),
    # Already subscribed: RFC 6121 would answer 'subscribed' itself; here only an admin may.
    ("From", "subscribe"): (None, (), None),
    ("From", "subscribed"): (None, (), None),
    ("From", "unsubscribe"): ("None", ("unsubscribed",), "they cancelled"),
    ("From", "unsubscribed"): (None, (), None),
    ("From + Pending Out", "subscribe"): (None, (), None),
    ("From + Pending Out", "subscribed"): ("Both", (), "approved"),
    ("From + Pending Out", "unsubscribe"): ("None + Pending Out", ("unsubscribed",),
                                            "they cancelled"),
    ("From + Pending Out", "unsubscribed"): ("From", (), "ours denied"),
    ("Both", "subscribe"): (None, (), None),
    ("Both", "subscribed"): (None, (), None),
    ("Both", "unsubscribe"): ("To", ("unsubscribed",), "they cancelled"),
    ("Both", "unsubscribed"): ("From", (), "ours cancelled"),
}

ERROR = "error"
# state -> (new state, what is sent) per admin action, or ERROR when it does not apply.
REQUEST = {
    "None": ("None + Pending Out", ("subscribe",)),
    "None + Pending Out": ("None + Pending Out", ("subscribe",)),  # asking again resends
    "None + Pending In": ("None + Pending Out+In", ("subscribe",)),
    "None + Pending Out+In": ("None + Pending Out+In", ("subscribe",)),
    "To": ERROR,
    "To + Pending In": ERROR,
    "From": ("From + Pending Out", ("subscribe",)),
    "From + Pending Out": ("From + Pending Out", ("subscribe",)),
    "Both": ERROR,
}
APPROVE = {
    "None": ERROR,
    "None + Pending Out": ERROR,
    "None + Pending In": ("From + Pending Out", ("subscribed", "subscribe")),
    "None + Pending Out+In": ("From + Pending Out", ("subscribed",)),  # we asked already
    "To": ERROR,
    "To + Pending In": ("Both", ("subscribed",)),
    "From": ("From + Pending Out", ("subscribed", "subscribe")),  # confirms again
    "From + Pending Out": ("From + Pending Out", ("subscribed",)),
    "Both": ("Both", ("subscribed",)),
}
DENY = {
    "None": ERROR,
    "None + Pending Out": ERROR,
    "None + Pending In": ("None", ("unsubscribed",)),
    "None + Pending Out+In": ("None + Pending Out", ("unsubscribed",)),
    "To": ERROR,
    "To + Pending In": ("To", ("unsubscribed",)),
    "From": ERROR,
    "From + Pending Out": ERROR,
    "Both": ERROR,
}
REVOKE = {name: ERROR if name == "None" else ("None", ("unsubscribe", "unsubscribed"))
          for name in map(str, STATES)}
ACTIONS = {"request": REQUEST, "approve": APPROVE, "deny": DENY, "revoke": REVOKE}
ERRORS = {"request": "already subscribed", "approve": "no pending request to approve",
          "deny": "no pending request to deny", "revoke": "no relationship to revoke"}


def test_the_tables_cover_every_state_and_type():
    assert set(RECEIVE) == {(str(s), t) for s in STATES for t in SUBSCRIPTION_TYPES}
    for table in ACTIONS.values():
        assert set(table) == {str(s) for s in STATES}


@pytest.mark.parametrize("state, type", sorted(RECEIVE), ids=" ".join)
def test_every_stanza_from_the_peer_in_every_state(state, type):
    new, replies, news = RECEIVE[state, type]
    before = S(state)
    step = server_roster.receive(before, type)
    if new is None:
        assert step == Step(before)
        assert step.state is before  # unchanged: nothing to store
    else:
        assert str(step.state) == new
        assert step.send == replies
        assert NEWS[news] in step.news
        assert "{peer}" in step.news and "{local}" in step.news


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("state", [str(s) for s in STATES])
def test_every_admin_action_in_every_state(action, state):
    expected = ACTIONS[action][state]
    if expected == ERROR:
        with pytest.raises(TrustError, match=ERRORS[action]):
            getattr(server_roster, action)(S(state))
        return
    step = getattr(server_roster, action)(S(state))
    assert (str(step.state), step.send, step.news) == (*expected, None)


def test_a_peer_request_is_never_answered_by_the_server():
    for state in STATES:
        step = server_roster.receive(state, "subscribe")
        assert step.send == ()
        assert not step.state.has_from or state.has_from  # no trust granted by a stanza


def test_only_an_admin_approval_grants_the_peer_a_subscription():
    granted = [(str(s), t) for s in STATES for t in SUBSCRIPTION_TYPES
               if server_roster.receive(s, t).state.has_from and not s.has_from]
    assert granted == []
    assert server_roster.approve(S("None + Pending In")).state.has_from


def test_there_is_no_pre_approval():
    for state in STATES:
        for type in SUBSCRIPTION_TYPES:
            assert not server_roster.receive(state, type).state.approved
        for action in ACTIONS:
            try:
                assert not getattr(server_roster, action)(state).state.approved
            except TrustError:
                pass


def test_the_only_automatic_stanza_takes_trust_away():
    sent = {reply for s in STATES for t in SUBSCRIPTION_TYPES
            for reply in server_roster.receive(s, t).send}
    assert sent == {"unsubscribed"}


def test_the_whole_handshake_between_two_admins():
    # Ours asks; theirs approves (subscribed + subscribe back); ours approves the request back.
    ours = server_roster.request(S("None")).state
    ours = server_roster.receive(ours, "subscribed").state
    ours = server_roster.receive(ours, "subscribe").state
    assert str(ours) == "To + Pending In"
    step = server_roster.approve(ours)
    assert (str(step.state), step.send) == ("Both", ("subscribed",))
    # ... as their side sees it.
    theirs = server_roster.receive(S("None"), "subscribe").state
    step = server_roster.approve(theirs)
    assert step.send == ("subscribed", "subscribe")
    theirs = server_roster.receive(step.state, "subscribed").state
    assert str(theirs) == "Both"


def test_unknown_stanza_types_are_refused():
    with pytest.raises(ValueError, match="not a presence subscription type"):
        server_roster.receive(S("None"), "probe")


def presence(type: str | None, sender: str, recipient: str, kind: str = "presence") -> Stanza:
    element = domish.Element((None, kind))
    if type:
        element["type"] = type
    return Stanza(element, parse_jid(sender), parse_jid(recipient))


@pytest.mark.parametrize("stanza, expected", [
    (presence("subscribe", "peer.example", "example.org"), True),
    (presence("unsubscribed", "peer.example", "example.org"), True),
    (presence("error", "peer.example", "example.org"), True),  # e.g. a bounced request
    (presence("error", "bob@peer.example", "example.org"), False),
    (presence("subscribe", "bob@peer.example", "example.org"), False),
    (presence("subscribe", "peer.example/res", "example.org"), False),
    (presence("subscribe", "peer.example", "alice@example.org"), False),
    (presence(None, "peer.example", "example.org"), False),
    (presence("probe", "peer.example", "example.org"), False),
    (presence("subscribe", "peer.example", "example.org", kind="message"), False),
], ids=repr)
def test_what_counts_as_a_server_subscription(stanza, expected):
    assert is_server_subscription(stanza) is expected


def test_a_stanza_without_addresses_is_no_server_subscription():
    element = domish.Element((None, "presence"))
    element["type"] = "subscribe"
    assert not is_server_subscription(Stanza(element, None, None))
