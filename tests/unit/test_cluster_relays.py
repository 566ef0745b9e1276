"""xmppd.cluster's news between nodes without Redis: the broadcast's topics, the roster and
PEP codecs (what goes out comes back the same; what is malformed is refused), and the
relays from events on one node's bus to events on another's."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import events, ns
from xmppd.cluster import accounts, pep, rosters
from xmppd.cluster.broadcast import BROADCAST_CHANNEL, Broadcast
from xmppd.eventbus import EventBus
from xmppd.im.roster_items import item_element, removed_item_element
from xmppd.jid import parse_jid
from xmppd.pubsub import Notification
from xmppd.pubsub.config import PEP_DEFAULTS
from xmppd.pubsub.model import Node
from xmppd.storage.records import RosterItem


class Redis:
    """What a node's Broadcast publishes, handed to every node listening (its own too)."""

    def __init__(self) -> None:
        self.listeners: list[Broadcast] = []
        self.published: list[tuple[str, str]] = []

    def publish(self, channel: str, message: str) -> defer.Deferred:
        self.published.append((channel, message))
        for listener in self.listeners:
            listener.received(message)
        return defer.succeed(len(self.listeners))


def nodes(*names: str) -> tuple[Redis, dict[str, Broadcast]]:
    redis = Redis()
    broadcasts = {name: Broadcast(redis, name) for name in names}
    redis.listeners.extend(broadcasts.values())
    return redis, broadcasts


def test_news_reach_the_other_nodes_never_the_sender():
    redis, casts = nodes("a", "b", "c")
    heard: list = []
    for name, cast in casts.items():
        cast.on("t", lambda node, text, name=name: heard.append((name, node, text)))
    casts["a"].send("t", "two\nlines")
    assert redis.published == [(BROADCAST_CHANNEL, "t a\ntwo\nlines")]
    assert sorted(heard) == [("b", "a", "two\nlines"), ("c", "a", "two\nlines")]


def test_unknown_topics_and_malformed_news_are_ignored_and_a_failing_handler_is_contained():
    _, casts = nodes("a", "b")
    heard: list = []
    casts["b"].on("ok", lambda node, text: heard.append(text))
    casts["b"].on("boom", lambda node, text: 1 / 0)
    for junk in ("", "ok", "ok a", "nonewline at all", "other a\nx"):
        casts["b"].received(junk)
    casts["a"].send("boom", "x")  # logged, not raised
    casts["a"].send("ok", "fine")
    assert heard == ["fine"]
    with pytest.raises(ValueError):
        casts["b"].on("ok", lambda node, text: None)  # one handler per topic
    with pytest.raises(ValueError):
        casts["b"].on("two words", lambda node, text: None)


def test_a_roster_change_travels_as_the_push_item():
    account = parse_jid("alice@localhost")
    item = item_element(RosterItem(contact="bob@localhost", name="Bob <&> B", groups=("w",),
                                   subscription="to", pending_out=False, approved=False))
    back = rosters.decode(rosters.encode(account, 7, item))
    assert back[:2] == (account, 7)
    assert (back[2].uri, back[2].toXml()) == (ns.ROSTER, item.toXml())
    removal = rosters.decode(rosters.encode(account, 8, removed_item_element("x@y")))[2]
    assert removal["subscription"] == "remove"
    xml = rosters.encode(account, 1, item).split("\n", 1)[1]
    for junk in ("", "alice@localhost 1", "alice@localhost x\n" + xml,
                 "alice@localhost/res 1\n" + xml, "@@ 1\n" + xml, "alice@localhost 1\n<item",
                 "alice@localhost 1\n<message/>",
                 "alice@localhost 1\n<item xmlns='jabber:iq:roster'/>"):
        with pytest.raises(ValueError):
            rosters.decode(junk)


def notification(kind: str = "items") -> Notification:
    message = domish.Element((ns.CLIENT, "message"))
    event = message.addElement((ns.PUBSUB_EVENT, "event"))
    items = event.addElement("items")
    items["node"] = "urn:xmpp:avatar:metadata"
    items.addElement("item")["id"] = "abc"
    node = Node("urn:xmpp:avatar:metadata", PEP_DEFAULTS.__class__.from_json(
        {"access_model": "roster"}, PEP_DEFAULTS), {"carol@localhost": "publisher"})
    return Notification(kind, node, message, (parse_jid("dave@localhost"),))


def test_a_pep_notification_travels_with_its_node_and_who_had_it():
    account = parse_jid("alice@localhost")
    sent = frozenset({"bob@localhost/desk", "dave@localhost"})
    back_account, back, back_sent = pep.decode(pep.encode(account, notification(), sent))
    assert (back_account, back_sent, back.kind) == (account, sent, "items")
    assert back.node == notification().node  # the access model decides on the other node
    assert back.node.config.access_model == "roster"
    assert back.message.toXml() == notification().message.toXml()
    good = json.loads(pep.encode(account, notification(), sent))
    for change in ({"account": "alice@localhost/x"}, {"account": "@@"}, {"message": "<iq/>"},
                   {"message": "<message"}, {"sent": [1]}, {"node_json": "no"}, {"kind": None}):
        if change == {"kind": None}:
            junk = {key: value for key, value in good.items() if key != "kind"}
        else:
            junk = {**good, **change}
        with pytest.raises(ValueError):
            pep.decode(json.dumps(junk))
    for junk in ("", "[]", "{"):
        with pytest.raises(ValueError):
            pep.decode(junk)


def test_the_relays_turn_one_nodes_events_into_the_others():
    _, casts = nodes("a", "b")
    bus_a, bus_b = EventBus(), EventBus()
    undo = rosters.relay_rosters(bus_a, casts["a"]) + pep.relay_pep(bus_a, casts["a"])
    rosters.relay_rosters(bus_b, casts["b"])
    pep.relay_pep(bus_b, casts["b"])
    heard: list = []
    bus_b.on(events.ROSTER_CHANGED_ELSEWHERE, lambda *change: heard.append(("roster", change)))
    bus_b.on(events.PEP_NOTIFIED_ELSEWHERE, lambda *change: heard.append(("pep", change)))
    bus_a.on(events.ROSTER_CHANGED_ELSEWHERE, lambda *change: heard.append(("echo", change)))
    account = parse_jid("alice@localhost")
    bus_a.emit(events.ROSTER_CHANGED, account, 3, removed_item_element("bob@localhost"))
    bus_a.emit(events.PEP_NOTIFIED, account, notification(), frozenset({"x@y"}))
    assert [kind for kind, _ in heard] == ["roster", "pep"]
    assert heard[0][1][:2] == (account, 3)
    assert heard[1][1][2] == frozenset({"x@y"})
    for step in undo:
        step()
    bus_a.emit(events.ROSTER_CHANGED, account, 4, removed_item_element("bob@localhost"))
    assert len(heard) == 2


class Session:
    def __init__(self, jid: str) -> None:
        self.jid = parse_jid(jid)
        self.closed: list[tuple[str, str]] = []

    def close(self, condition: str, text: str) -> None:
        self.closed.append((condition, text))


class Sessions:
    def __init__(self, *sessions: Session) -> None:
        self.sessions = sessions

    def resources(self, bare):
        return [session for session in self.sessions if session.jid.bare() == bare]


def test_a_deletion_ends_the_accounts_sessions_on_the_other_nodes_once():
    redis, casts = nodes("a", "b")
    bus_a, bus_b = EventBus(), EventBus()
    phone, other = Session("alice@localhost/phone"), Session("bob@localhost/pc")
    accounts.relay_deletions(bus_a, casts["a"], Sessions())
    undo = accounts.relay_deletions(bus_b, casts["b"], Sessions(phone, other))
    deleted_on_b: list = []
    bus_b.on(events.USER_DELETED, deleted_on_b.append)  # b's plugins forget the account
    bus_a.emit(events.USER_DELETED, parse_jid("alice@localhost"))
    assert phone.closed == [("not-authorized", "account deleted")] and other.closed == []
    assert deleted_on_b == [parse_jid("alice@localhost")]
    assert len(redis.published) == 1  # b's own USER_DELETED is not news again
    for number, junk in enumerate(("localhost", "alice@localhost/phone", "@@")):
        casts["b"].received(f"{accounts.TOPIC} a\na {number + 100}\n{junk}")
    casts["b"].received(f"{accounts.TOPIC} a\nalice@localhost")  # no id: not news
    assert deleted_on_b == [parse_jid("alice@localhost")]
    for step in undo:
        step()
    bus_a.emit(events.USER_DELETED, parse_jid("bob@localhost"))
    assert other.closed == []
