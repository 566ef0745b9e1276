"""xmppd.cluster without Redis: the mirror kept from the registry channel, and which
messages the cross-node links take (the rest is left to local delivery, untouched)."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.words.xish import domish

from xmppd.cluster.delivery import Arrivals, RemoteDelivery
from xmppd.cluster.directory import SessionDirectory, decode, encode
from xmppd.im.carbons import CarbonCopier
from xmppd.jid import parse_jid
from xmppd.stanza import Stanza


class Local:
    """A node's own sessions, as the SessionRegistry answers look-ups."""

    def __init__(self, *sessions) -> None:
        self.sessions = {s.jid: s for s in sessions}

    def get(self, full):
        return self.sessions.get(full)

    def resources(self, bare):
        return [s for jid, s in self.sessions.items() if jid.bare() == bare]

    def all(self):
        return list(self.sessions.values())


class Sent(SimpleNamespace):
    __hash__ = object.__hash__  # a session is a set member (carbons), by identity

    def send(self, element) -> None:
        self.got.append(element)


def local_session(jid: str, priority: int = 0, available: bool = True) -> Sent:
    return Sent(jid=parse_jid(jid), priority=priority, available=available, got=[])


def directory(local=None) -> tuple[SessionDirectory, list]:
    forwarded: list = []
    d = SessionDirectory(None, "a", 1.0, local or Local(),
                         lambda node, jid, element: forwarded.append((node, jid.full())), None)
    return d, forwarded


def message(to: str, type: str = "chat") -> Stanza:
    element = domish.Element((None, "message"))
    element["to"], element["from"], element["type"] = to, "carol@localhost/x", type
    return Stanza(element, parse_jid("carol@localhost/x"), parse_jid(to))


def test_the_mirror_follows_the_channel_and_ignores_its_own_node():
    d, _ = directory()
    d.on_registry("bind b bob@localhost/desk 5 1 0")
    d.on_registry("bind a alice@localhost/own 0 1 0")  # ours: already in the local registry
    d.on_registry("bind c bob@localhost/phone -1 0 0")
    assert d.get(parse_jid("alice@localhost/own")) is None
    desk = d.get(parse_jid("bob@localhost/desk"))
    assert (desk.node, desk.priority, desk.available) == ("b", 5, True)
    assert len(d.resources(parse_jid("bob@localhost"))) == 2
    d.on_registry("bind c bob@localhost/desk 1 1 0")  # replaced on node c
    assert d.get(parse_jid("bob@localhost/desk")).node == "c"
    assert len(d) == 2
    d.on_registry("unbind b bob@localhost/desk")  # node b no longer has it: no effect
    assert d.get(parse_jid("bob@localhost/desk")).node == "c"
    d.on_registry("reset c")
    assert len(d) == 0 and d.resources(parse_jid("bob@localhost")) == []
    for junk in ("bind b", "bind b not@@a/jid 1 1 0", "bind b bob@localhost 1 1 0",
                 "bind b bob@localhost/x one 1", "what b", ""):
        d.on_registry(junk)  # logged and ignored
    assert len(d) == 0


def test_links_take_only_messages_for_other_nodes():
    here = local_session("bob@localhost/here", priority=1)
    d, forwarded = directory(Local(here))
    links = RemoteDelivery(d.local, d, deliver_to_all=False)
    d.on_registry("bind b bob@localhost/there 5 1 0")
    d.on_registry("bind b dave@localhost/there 0 1 0")
    # a local full JID, or an account with no session elsewhere: local delivery's business
    assert links.to_full(message("bob@localhost/here"), None) is None
    assert links.to_bare(message("erin@localhost"), None) is None
    assert links.to_full(message("erin@localhost/gone"), None) is None
    # a full JID on node b
    assert links.to_full(message("bob@localhost/there"), None) is True
    assert forwarded == [("b", "bob@localhost/there")]
    # the bare JID: the highest priority is on node b
    assert links.to_bare(message("bob@localhost"), None) is True
    assert forwarded[-1] == ("b", "bob@localhost/there") and not here.got
    # a gone resource is treated as the bare JID (RFC 6121 §8.5.3.2.1)
    assert links.to_full(message("dave@localhost/gone"), None) is True
    assert forwarded[-1] == ("b", "dave@localhost/there")
    # the local session has the highest priority now: local delivery chooses the same
    d.on_registry("bind b bob@localhost/there 0 1 0")
    assert links.to_bare(message("bob@localhost"), None) is None
    # equal priorities on both nodes: both get it
    d.on_registry("bind b bob@localhost/there 1 1 0")
    count = len(forwarded)
    assert links.to_bare(message("bob@localhost"), None) is True
    assert len(forwarded) == count + 1 and len(here.got) == 1
    # a groupchat message to a full JID on node b is carried; to a gone resource it is not
    assert links.to_full(message("bob@localhost/there", "groupchat"), None) is True
    assert links.to_full(message("bob@localhost/gone", "groupchat"), None) is None
    # to the bare JID, groupchat and errors are refused or dropped by local delivery
    assert links.to_bare(message("bob@localhost", "groupchat"), None) is None
    assert links.to_bare(message("bob@localhost", "error"), None) is None


def test_a_cluster_without_the_redis_client_says_what_to_install(monkeypatch):
    import sys

    import xmppd.cluster
    from xmppd.cluster import start_node

    monkeypatch.setitem(sys.modules, "txredisapi", None)  # not installed
    monkeypatch.delitem(sys.modules, "xmppd.cluster.node", raising=False)
    monkeypatch.delitem(sys.modules, "xmppd.cluster.redis", raising=False)
    for name in ("node", "redis"):  # the package's attributes too, or they are reused
        monkeypatch.delattr(xmppd.cluster, name, raising=False)
    failures = []
    start_node(None).addErrback(failures.append)
    [failure] = failures
    assert "[cluster] needs the Redis client: pip install 'xmppd[cluster]'" in str(failure.value)


def test_the_registry_carries_the_carbons_flag_and_reads_values_without_it():
    assert encode(local_session("a@localhost/x", priority=-2)) == "-2 1 0"
    assert encode(local_session("a@localhost/x", available=False), carbons=True) == "0 0 1"
    assert decode("5 1 1") == (5, True, True)
    assert decode("5 1") == (5, True, False)  # as the first step wrote it
    for junk in ("5", "5 1 1 1", "x 1 1"):
        try:
            decode(junk)
        except ValueError:
            continue
        raise AssertionError(junk)
    d, _ = directory()
    d.on_registry("bind b bob@localhost/desk 0 1 1")
    d.on_registry("bind b bob@localhost/phone 0 1 0")
    assert d.get(parse_jid("bob@localhost/desk")).carbons is True
    assert d.get(parse_jid("bob@localhost/phone")).carbons is False
    d.on_registry("bind b bob@localhost/desk 0 1 0")
    assert d.get(parse_jid("bob@localhost/desk")).carbons is False
    d.on_registry("bind b bob@localhost/my phone 1 1 0")  # a resource may hold spaces
    assert d.get(parse_jid("bob@localhost/my phone")).priority == 1
    d.on_registry("unbind b bob@localhost/my phone")
    assert d.get(parse_jid("bob@localhost/my phone")) is None


def presence(to: str, type: str | None = None) -> Stanza:
    element = domish.Element((None, "presence"))
    element["to"], element["from"] = to, "carol@localhost/x"
    if type:
        element["type"] = type
    return Stanza(element, parse_jid("carol@localhost/x"), parse_jid(to))


def test_presence_from_another_node_reaches_available_sessions_and_is_never_bounced():
    available = local_session("bob@localhost/up")
    bound = local_session("bob@localhost/bound", available=False)
    bounced = []
    arrivals = Arrivals(Local(available, bound), lambda interface: None,
                        lambda stanza, condition: bounced.append(condition), False)
    # for the bare JID (a broadcast): only to an available session (RFC 6121 §8.5.2.1.2)
    arrivals.arrived(presence("bob@localhost"), parse_jid("bob@localhost/up"))
    arrivals.arrived(presence("bob@localhost"), parse_jid("bob@localhost/bound"))
    assert len(available.got) == 1 and not bound.got
    # for the full JID (directed presence): to that resource, available or not (§8.5.3.2.2)
    arrivals.arrived(presence("bob@localhost/bound"), parse_jid("bob@localhost/bound"))
    assert len(bound.got) == 1
    # the session is gone: dropped, not answered with an error
    arrivals.arrived(presence("bob@localhost/gone", "unavailable"),
                     parse_jid("bob@localhost/gone"))
    assert bounced == []


def test_carbons_go_to_enabled_resources_on_other_nodes():
    phone = local_session("alice@localhost/phone")
    d, forwarded = directory(Local(phone))
    d.on_registry("bind b alice@localhost/tablet 0 1 1")
    d.on_registry("bind b alice@localhost/watch 0 1 0")  # carbons off
    copier = CarbonCopier(d.local, remote=lambda: d)
    sent = message("bob@localhost/desk")
    sent.element["from"] = "alice@localhost/phone"
    sent.element.addElement("body", content="hi")
    copier.sent(sent, SimpleNamespace(account=parse_jid("alice@localhost"), jid=phone.jid))
    assert forwarded == [("b", "alice@localhost/tablet")]
    # received: the tablet gets the original (highest priority), so no copy for it
    d.on_registry("bind b alice@localhost/tablet 5 1 1")
    received = message("alice@localhost")
    received.element.addElement("body", content="hello")
    copier.received(received, None)
    assert forwarded == [("b", "alice@localhost/tablet")]
    # to the phone's full JID: the tablet gets a received copy
    to_phone = message("alice@localhost/phone")
    to_phone.element.addElement("body", content="hello phone")
    copier.received(to_phone, None)
    assert forwarded[-1] == ("b", "alice@localhost/tablet") and len(forwarded) == 2
