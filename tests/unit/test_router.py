"""Delivery rules of RFC 6121 §8.5 and the anti-spoofing rules, on the real router."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.c2s.sessions import SessionRegistry
from xmppd.dispatch import DELIVERY_PRIORITY
from xmppd.errors import StreamError
from xmppd.im.message_delivery import MessageDelivery
from xmppd.interfaces import IOfflineDelivery
from xmppd.jid import parse_jid
from xmppd.router import Router
from xmppd.stanza import MESSAGE_TYPES


class FakeSession:
    def __init__(self, account: str, available=True, priority=0):
        self.account = parse_jid(account)
        self.jid = None
        self.available, self.priority = available, priority
        self.received: list[domish.Element] = []

    def send(self, element):
        self.received.append(element)


@implementer(IOfflineDelivery)
class FakeOffline:
    def __init__(self, accept=True):
        self.kept, self.accept = [], accept

    def store(self, stanza):
        self.kept.append(stanza)
        return defer.succeed(self.accept)


class World:
    """The router with the message plugin's delivery links, as the server wires them."""

    def __init__(self, delivery="highest", offline=None):
        self.sessions = SessionRegistry()
        self.router = Router(frozenset({"localhost"}), self.sessions)
        links = MessageDelivery(
            self.sessions, lambda interface: offline if interface is IOfflineDelivery else None,
            self.router.bounce, deliver_to_all=delivery == "all")
        for type in MESSAGE_TYPES:
            for target, link in links.links():
                self.router.dispatcher.add_stanza("message", type, target, link,
                                                  DELIVERY_PRIORITY)
        self.sender = self.connect("alice@localhost", "phone")

    def connect(self, account, resource, available=True, priority=0):
        session = FakeSession(account, available, priority)
        self.sessions.bind(session, resource)
        return session

    def send(self, xml_kind="message", to="bob@localhost", type=None, payload=None):
        element = domish.Element((None, xml_kind))
        element["to"] = to
        element["id"] = "s1"
        if type:
            element["type"] = type
        if payload is not None:
            element.addChild(payload)
        else:
            element.addElement("body", content="hello")
        return self.router.route_from_client(element, self.sender)

    def errors(self):
        return [next(e.elements()).name for s in self.sender.received
                for e in s.elements() if e.name == "error"]


def test_chat_to_bare_goes_to_highest_priority_resources_only():
    world = World()
    low = world.connect("bob@localhost", "low", priority=1)
    high1 = world.connect("bob@localhost", "high1", priority=5)
    high2 = world.connect("bob@localhost", "high2", priority=5)
    world.send(type="chat")
    assert (len(low.received), len(high1.received), len(high2.received)) == (0, 1, 1)


def test_all_policy_delivers_to_every_non_negative_resource():
    world = World(delivery="all")
    a = world.connect("bob@localhost", "a", priority=0)
    b = world.connect("bob@localhost", "b", priority=7)
    negative = world.connect("bob@localhost", "n", priority=-1)
    world.send(type="chat")
    assert (len(a.received), len(b.received), len(negative.received)) == (1, 1, 0)


def test_negative_priority_or_unavailable_only_means_offline_storage():
    offline = FakeOffline()
    world = World(offline=offline)
    negative = world.connect("bob@localhost", "n", priority=-1)
    unavailable = world.connect("bob@localhost", "u", available=False)
    world.send(type="normal")
    assert negative.received == [] and unavailable.received == []
    assert len(offline.kept) == 1 and world.errors() == []


def test_offline_storage_refusing_or_missing_bounces_service_unavailable():
    for world in (World(offline=FakeOffline(accept=False)), World(offline=None)):
        world.send(type="chat")
        assert world.errors() == ["service-unavailable"]


def test_headline_goes_to_all_and_is_never_stored():
    offline = FakeOffline()
    world = World(offline=offline)
    a = world.connect("bob@localhost", "a", priority=1)
    b = world.connect("bob@localhost", "b", priority=3)
    world.send(type="headline")
    assert len(a.received) == len(b.received) == 1
    world.sessions.unbind(a)
    world.sessions.unbind(b)
    world.send(type="headline")
    assert offline.kept == [] and world.errors() == []


def test_groupchat_to_an_account_and_error_messages():
    world = World(offline=FakeOffline())
    world.connect("bob@localhost", "a")
    world.send(type="groupchat")
    assert world.errors() == ["service-unavailable"]
    world.sender.received.clear()
    world.send(type="error")
    assert world.sender.received == []  # errors are never answered with errors


def test_message_to_offline_full_jid_falls_back_to_bare_rules():
    offline = FakeOffline()
    world = World(offline=offline)
    other = world.connect("bob@localhost", "desk", priority=2)
    world.send(to="bob@localhost/gone", type="chat")
    assert len(other.received) == 1
    world.sessions.unbind(other)
    world.send(to="bob@localhost/gone", type="chat")
    assert len(offline.kept) == 1
    world.send(to="bob@localhost/gone", type="groupchat")
    assert world.errors() == ["service-unavailable"]


def test_message_to_connected_full_jid_is_delivered_even_if_unavailable():
    world = World()
    quiet = world.connect("bob@localhost", "quiet", available=False, priority=-5)
    world.send(to="bob@localhost/quiet", type="chat")
    assert len(quiet.received) == 1


def test_iq_to_offline_full_jid_is_service_unavailable_and_results_reach_resources():
    world = World()
    world.send("iq", to="bob@localhost/none", type="get",
               payload=domish.Element(("urn:x", "query")))
    assert world.errors() == ["service-unavailable"]
    bob = world.connect("bob@localhost", "here")
    world.send("iq", to="bob@localhost/here", type="result", payload=domish.Element(("urn:x", "q")))
    assert len(bob.received) == 1


def test_remote_domains_are_never_relayed():
    world = World()
    world.send(to="someone@elsewhere.example", type="chat")
    assert world.errors() == ["remote-server-not-found"]


def test_outgoing_handlers_see_client_stanzas_first():
    world = World()
    seen = []
    world.router.dispatcher.add_stanza("message", "chat", "outgoing",
                                       lambda stanza, origin: seen.append(origin) or True)
    bob = world.connect("bob@localhost", "a")
    world.send(type="chat")
    assert seen == [world.sender] and bob.received == []


def test_a_deferred_from_offline_storage_is_returned_for_the_stream_to_wait_on():
    pending = defer.Deferred()

    @implementer(IOfflineDelivery)
    class Slow:
        def store(self, stanza):
            return pending

    world = World(offline=Slow())
    result = world.send(type="chat")
    assert isinstance(result, defer.Deferred) and not result.called
    pending.callback(True)
    assert result.called and world.errors() == []


def test_spoofed_from_is_a_stream_error_but_own_bare_jid_is_fine():
    world = World()
    element = domish.Element((None, "message"))
    element["from"], element["to"] = "mallory@localhost/x", "bob@localhost"
    with pytest.raises(StreamError) as error:
        world.router.route_from_client(element, world.sender)
    assert error.value.condition == "invalid-from"
    bob = world.connect("bob@localhost", "a")
    element["from"] = "ALICE@localhost"
    world.router.route_from_client(element, world.sender)
    assert bob.received[0]["from"] == "alice@localhost/phone"


def test_server_stanzas_to_bare_accounts_use_the_same_rules():
    world = World()
    bob = world.connect("bob@localhost", "a", priority=1)
    element = domish.Element((None, "message"))
    element["from"], element["to"], element["type"] = "localhost", "bob@localhost", "headline"
    world.router.send_from_server(element)
    assert len(bob.received) == 1


def test_remote_links_see_every_stanza_for_another_server_before_federation():
    world = World()
    seen = []

    def hold_presence(stanza, origin):
        seen.append((stanza.kind, str(stanza.sender)))
        return stanza.kind == "presence"  # held back; messages go on to federation

    for kind, type in (("message", "chat"), ("presence", "available")):
        world.router.dispatcher.add_stanza(kind, type, "remote", hold_presence)
    world.send(to="someone@elsewhere.example", type="chat")
    assert world.errors() == ["remote-server-not-found"]  # let go: federation (none here)
    presence = domish.Element((None, "presence"))
    presence["from"], presence["to"] = "alice@localhost/phone", "someone@elsewhere.example"
    world.router.send_from_server(presence)  # made by the server: held, no error
    assert seen == [("message", "alice@localhost/phone"), ("presence", "alice@localhost/phone")]
    assert world.errors() == ["remote-server-not-found"]
