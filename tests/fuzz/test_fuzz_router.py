"""Property test of the router (xmppd.router) with the message plugin's delivery links: a
bound client sends arbitrary stanzas (any kind, type, payload, 'to' among real, aliased,
absent and malformed addresses, 'from' its own or someone else's), and nothing ever reaches
an account the stanza was not addressed to: not another account's sessions, not its offline
storage, not a remote domain. Only the sender's own sessions may get what it sent to itself
and the errors that answer it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.c2s.sessions import SessionRegistry
from xmppd.dispatch import DELIVERY_PRIORITY
from xmppd.errors import StreamError
from xmppd.im.message_delivery import MessageDelivery
from xmppd.interfaces import IOfflineDelivery, IRemoteRouter
from xmppd.jid import InvalidJID, parse_jid
from xmppd.router import Router
from xmppd.stanza import MESSAGE_TYPES


class Session:
    def __init__(self, account: str, available: bool, priority: int) -> None:
        self.account = parse_jid(account)
        self.jid = None
        self.available, self.priority = available, priority
        self.received: list[domish.Element] = []

    def send(self, element) -> None:
        self.received.append(element)


@implementer(IOfflineDelivery)
class Offline:
    def __init__(self) -> None:
        self.kept: list = []

    def store(self, stanza):
        self.kept.append(stanza)
        return defer.succeed(True)


@implementer(IRemoteRouter)
class Remote:
    def __init__(self) -> None:
        self.sent: list = []

    def send(self, stanza) -> None:
        self.sent.append(stanza)


class World:
    def __init__(self) -> None:
        self.sessions = SessionRegistry(max_resources=10)
        self.remote = Remote()
        self.offline = Offline()
        self.router = Router(frozenset({"localhost", "other.localhost"}), self.sessions,
                             remote=self.remote)
        links = MessageDelivery(
            self.sessions,
            lambda interface: self.offline if interface is IOfflineDelivery else None,
            self.router.bounce)
        for type in MESSAGE_TYPES:
            for target, link in links.links():
                self.router.dispatcher.add_stanza("message", type, target, link,
                                                  DELIVERY_PRIORITY)
        self.all = []
        for account, resource, available, priority in (
                ("alice@localhost", "phone", True, 0), ("alice@localhost", "laptop", True, 5),
                ("bob@localhost", "a", True, 1), ("bob@localhost", "b", False, 0),
                ("bob@localhost", "neg", True, -1), ("carol@localhost", "x", True, 0),
                ("carol@other.localhost", "x", True, 0)):
            session = Session(account, available, priority)
            self.sessions.bind(session, resource)
            self.all.append(session)
        self.sender = self.all[0]

    def clear(self) -> None:
        for session in self.all:
            session.received.clear()
        self.offline.kept.clear()
        self.remote.sent.clear()


ADDRESSES = [
    None, "", "bob@localhost", "BOB@LOCALHOST", "ＢＯＢ@localhost", "bob@localhost.",
    "bob@localhost/a", "bob@localhost/b", "bob@localhost/neg", "bob@localhost/gone",
    "bob@localhost/A", "carol@localhost", "carol@localhost/x", "carol@other.localhost",
    "dave@localhost", "dave@localhost/x", "alice@localhost", "alice@localhost/laptop",
    "alice@localhost/phone", "localhost", "localhost/x", "other.localhost",
    "bob@remote.example", "remote.example", "bob@@localhost", "@localhost", "bob@",
    "bob@localhost/", "bob@local host", "b\u0000b@localhost", "bob@localhost/a/b",
    "bob@xn--nxasmq6b", "bob@-localhost", "\u212Aelvin@localhost", "bob%localhost@localhost",
]
FROMS = [None, "alice@localhost", "alice@localhost/phone", "ALICE@localhost/phone",
         "alice@localhost/laptop", "bob@localhost", "bob@localhost/a", "localhost", "junk@@"]
TYPES = {"message": ["chat", "normal", "headline", "groupchat", "error", None, "bogus"],
         "presence": [None, "unavailable", "probe", "subscribe", "subscribed", "unsubscribe",
                      "unsubscribed", "error", "bogus"],
         "iq": ["get", "set", "result", "error", None, "bogus"]}
PAYLOADS = [("jabber:client", "body"), ("urn:xmpp:ping", "ping"), ("jabber:iq:roster", "query"),
            ("urn:xmpp:sid:0", "stanza-id"), ("jabber:client", "error"), ("urn:x", "x")]


@st.composite
def stanzas(draw) -> domish.Element:
    kind = draw(st.sampled_from(sorted(TYPES)))
    element = domish.Element(("jabber:client", kind))
    for attribute, pool in (("to", ADDRESSES), ("from", FROMS), ("type", TYPES[kind])):
        value = draw(st.sampled_from(pool))
        if value is not None:
            element[attribute] = value
    if draw(st.booleans()):
        element["id"] = draw(st.sampled_from(["1", "x", ""]))
    for uri, name in draw(st.lists(st.sampled_from(PAYLOADS), max_size=3)):
        child = element.addElement((uri, name))
        if name == "stanza-id":
            child["by"] = draw(st.sampled_from(["bob@localhost", "localhost", "x.example"]))
    return element


def addressed_to(element: domish.Element):
    """The prepared bare JID and full JID the sender addressed, or None (no or bad 'to')."""
    to = element.getAttribute("to")
    if to is None:
        return None, None
    try:
        jid = parse_jid(to)
    except InvalidJID:
        return None, None
    return jid.bare(), jid


@given(st.lists(stanzas(), min_size=1, max_size=8))
def test_nothing_reaches_an_account_it_was_not_addressed_to(elements):
    world = World()
    sender = world.sender.account
    for element in elements:
        world.clear()
        bare, full = addressed_to(element)
        try:
            world.router.route_from_client(element, world.sender)
        except StreamError as error:
            assert error.condition == "invalid-from"
            try:
                claimed = parse_jid(element["from"])
            except InvalidJID:
                claimed = None
            assert claimed not in (sender, world.sender.jid)  # only its own two addresses
            assert not any(session.received for session in world.all)
            return
        for session in world.all:
            for got in session.received:
                if session.account == sender:
                    # its own sessions: an answer or error to it, or what it addressed to
                    # its own account (or to nobody: the account itself answers)
                    continue
                assert bare == session.account, (element.toXml(), session.jid, got.toXml())
                # to a resource that is there: that resource only (RFC 6121 §8.5.3.1); to
                # one that is not: the account's rules (§8.5.3.2), never another account
                if full.resource is not None and world.sessions.get(full) is not None:
                    assert full == session.jid, (element.toXml(), session.jid, got.toXml())
        for stored in world.offline.kept:
            assert stored.recipient.bare() == bare, (element.toXml(), stored)
        for sent in world.remote.sent:
            # only stanzas addressed elsewhere leave, and errors back to... nobody remote
            assert sent.recipient == full, (element.toXml(), sent)
