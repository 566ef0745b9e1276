"""The roster plugin over real client streams and real SQLite: RFC 6121 §2 and IRoster."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from tests.helpers import ServerFixture, StreamHarness
from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.im import subscription
from xmppd.im.roster_items import item_element
from xmppd.interfaces import IRoster
from xmppd.jid import parse_jid
from xmppd.plugins.roster import MAX_TEXT_LENGTH, parse_stored_stanza
from xmppd.registry import PluginError
from xmppd.storage.records import RosterItem

PASSWORD = "pencil and paper"
ALICE = parse_jid("alice@localhost")
BOB = parse_jid("bob@localhost")
CAROL = parse_jid("carol@example.net")
ROSTER_PLUGIN = '[plugins]\nenabled = ["roster"]\n'


class Client:
    """One logged-in resource; keeps what the server wrote until a test asks for it."""

    def __init__(self, harness: StreamHarness, jid: str) -> None:
        self.harness = harness
        self.jid = parse_jid(jid)
        self.inbox: list[domish.Element] = []

    def send(self, xml: str) -> None:
        self.harness.feed(xml)

    def drain(self) -> list[domish.Element]:
        self.inbox += self.harness.elements()
        received, self.inbox = self.inbox, []
        return received

    async def next(self, match, timeout: float = 5.0) -> domish.Element:
        waited = 0.0
        while True:
            self.inbox += self.harness.elements()
            for element in self.inbox:
                if match(element):
                    self.inbox.remove(element)
                    return element
            if waited >= timeout:
                raise AssertionError(f"nothing matching arrived; got {self._seen()}")
            await task.deferLater(reactor, 0.01, lambda: None)
            waited += 0.01

    async def collect(self, count: int, timeout: float = 5.0) -> list[domish.Element]:
        """The next ``count`` elements, in the order they arrived."""
        waited = 0.0
        while len(self.inbox) < count:
            self.inbox += self.harness.elements()
            if waited >= timeout:
                raise AssertionError(f"fewer than {count} elements arrived: {self._seen()}")
            await task.deferLater(reactor, 0.01, lambda: None)
            waited += 0.01
        received, self.inbox = self.inbox[:count], self.inbox[count:]
        return received

    async def request(self, iq_id: str, xml: str) -> domish.Element:
        """Send an IQ and wait for its answer (a result or an error)."""
        self.send(xml)
        return await self.next(lambda e: e.name == "iq" and e.getAttribute("id") == iq_id
                               and e.getAttribute("type") in ("result", "error"))

    async def get_roster(self, ver: str | None = None) -> domish.Element:
        version = "" if ver is None else f" ver='{ver}'"
        reply = await self.request("get", f"<iq type='get' id='get'>"
                                          f"<query xmlns='jabber:iq:roster'{version}/></iq>")
        assert reply["type"] == "result", reply.toXml()
        return reply

    async def set_item(self, item_xml: str, iq_id: str = "set") -> domish.Element:
        return await self.request(iq_id, f"<iq type='set' id='{iq_id}'>"
                                         f"<query xmlns='jabber:iq:roster'>{item_xml}</query></iq>")

    async def push(self) -> domish.Element:
        return await self.next(lambda e: e.name == "iq" and e.getAttribute("type") == "set")

    def _seen(self) -> str:
        return ", ".join(element.toXml() for element in self.inbox) or "nothing"


def error_condition(reply: domish.Element) -> str:
    assert reply["type"] == "error", reply.toXml()
    error = next(child for child in reply.elements() if child.name == "error")
    return next(child.name for child in error.elements() if child.uri == ns.STANZA_ERRORS)


def items_of(query: domish.Element) -> list[domish.Element]:
    return [child for child in query.elements() if child.name == "item"]


def the_query(iq: domish.Element) -> domish.Element:
    (query,) = [child for child in iq.elements() if child.name == "query"]
    assert query.uri == ns.ROSTER
    return query


def groups_of(item: domish.Element) -> list[str]:
    return [str(group) for group in item.elements() if group.name == "group"]


class RosterTestCase(TestCase):
    plugins = ROSTER_PLUGIN

    def setUp(self):
        path = Path(self.mktemp())
        path.mkdir(parents=True)
        self.fixture = ServerFixture(path, "require_encryption = false\n" + self.plugins)
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.fixture.start()
        for user in ("alice", "bob"):
            await self.fixture.add_user(user, PASSWORD)
        self.server = self.fixture.server
        self.roster = self.server.query(IRoster)

    async def client(self, user: str = "alice", resource: str = "a",
                     interested: bool = True) -> Client:
        harness = StreamHarness(self.server)
        client = Client(harness, await harness.login(user, PASSWORD, resource))
        if interested:
            await client.get_roster()
        return client

    def capture_routes(self) -> list:
        """What the server routes on its own (origin None), e.g. presence to a removed contact."""
        routed = []
        route = self.roster._route_stanza  # the context's route, bound at setup

        def capturing(stanza, origin):
            if origin is None and stanza.kind == "presence":
                routed.append((stanza.type, stanza.sender.full(), stanza.recipient.full()))
            return route(stanza, origin)

        self.roster._route_stanza = capturing
        self.addCleanup(setattr, self.roster, "_route_stanza", route)
        return routed


class GetTests(RosterTestCase):
    async def test_empty_roster_carries_a_version(self):
        alice = await self.client(interested=False)
        reply = await alice.get_roster()
        query = the_query(reply)
        self.assertEqual(query["ver"], "0")
        self.assertEqual(items_of(query), [])
        self.assertEqual(reply["to"], "alice@localhost/a")

    async def test_own_bare_jid_as_recipient_is_the_same_roster(self):
        alice = await self.client(interested=False)
        reply = await alice.request("g", "<iq type='get' id='g' to='alice@localhost'>"
                                         "<query xmlns='jabber:iq:roster'/></iq>")
        self.assertEqual(reply["type"], "result")
        self.assertEqual(the_query(reply)["ver"], "0")

    async def test_items_show_subscription_ask_approved_and_groups(self):
        await self.roster.set_state(ALICE, BOB, subscription.FROM_PENDING_OUT)
        await self.roster.set_state(ALICE, CAROL, subscription.SubState("to", approved=True))
        alice = await self.client(interested=False)
        await alice.set_item("<item jid='bob@localhost' name='Bob'><group>Friends</group>"
                             "<group>Work</group></item>")
        query = the_query(await alice.get_roster())
        self.assertEqual(query["ver"], "3")
        bob, carol = items_of(query)
        self.assertEqual((bob["jid"], bob["name"], bob["subscription"], bob["ask"]),
                         ("bob@localhost", "Bob", "from", "subscribe"))
        self.assertFalse(bob.hasAttribute("approved"))
        self.assertEqual(groups_of(bob), ["Friends", "Work"])
        self.assertEqual((carol["jid"], carol["subscription"], carol["approved"]),
                         ("carol@example.net", "to", "true"))
        self.assertFalse(carol.hasAttribute("ask") or carol.hasAttribute("name"))

    async def test_a_pending_inbound_request_is_not_a_roster_item(self):
        await self.roster.set_state(ALICE, BOB, subscription.NONE_PENDING_IN)
        alice = await self.client(interested=False)
        self.assertEqual(items_of(the_query(await alice.get_roster())), [])

    async def test_current_version_gets_an_empty_result_and_still_pushes(self):
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost'/>")
        await alice.push()
        other = await self.client(resource="b", interested=False)
        reply = await other.get_roster(ver="1")
        self.assertEqual(list(reply.elements()), [])
        stale = await other.get_roster(ver="0")
        self.assertEqual(the_query(stale)["ver"], "1")
        self.assertEqual([item["jid"] for item in items_of(the_query(stale))], ["bob@localhost"])
        # The versioned get alone made the resource interested.
        fresh = await self.client(resource="c", interested=False)
        await fresh.request("v", "<iq type='get' id='v'><query xmlns='jabber:iq:roster' "
                                 "ver='1'/></iq>")
        await alice.set_item("<item jid='carol@example.net'/>")
        self.assertEqual(items_of(the_query(await fresh.push()))[0]["jid"], "carol@example.net")

    async def test_another_accounts_roster_is_forbidden(self):
        alice = await self.client(interested=False)
        reply = await alice.request("x", "<iq type='get' id='x' to='bob@localhost'>"
                                         "<query xmlns='jabber:iq:roster'/></iq>")
        self.assertEqual(error_condition(reply), "forbidden")
        reply = await alice.request("y", "<iq type='set' id='y' to='bob@localhost'>"
                                         "<query xmlns='jabber:iq:roster'>"
                                         "<item jid='carol@example.net'/></query></iq>")
        self.assertEqual(error_condition(reply), "forbidden")
        self.assertEqual(await self.roster.items(BOB), [])

    def test_a_request_without_a_client_session_is_forbidden(self):
        from xmppd.stanza import Stanza

        element = domish.Element((ns.CLIENT, "iq"))
        element["type"] = "get"
        element.addElement((ns.ROSTER, "query"))
        stanza = Stanza(element, ALICE, ALICE)
        with self.assertRaises(StanzaError) as caught:
            self.roster.on_get(stanza, None)
        self.assertEqual(caught.exception.condition, "forbidden")


class SetTests(RosterTestCase):
    async def test_set_answers_then_pushes_to_every_interested_resource(self):
        first = await self.client(resource="a")
        second = await self.client(resource="b")
        idle = await self.client(resource="c", interested=False)
        self.server.sessions.get(idle.jid).available = True  # available but not interested
        first.send("<iq type='set' id='add'><query xmlns='jabber:iq:roster'>"
                   "<item jid='bob@localhost' name='Bob'><group>Friends</group></item>"
                   "</query></iq>")
        result = await first.next(lambda e: e.getAttribute("id") == "add")
        self.assertEqual(result["type"], "result")
        self.assertEqual(list(result.elements()), [])
        pushes = []
        for client in (first, second):
            push = await client.push()
            self.assertEqual(push["to"], client.jid.full())
            self.assertFalse(push.hasAttribute("from"))
            query = the_query(push)
            self.assertEqual(query["ver"], "1")
            (item,) = items_of(query)
            self.assertEqual((item["jid"], item["name"], item["subscription"]),
                             ("bob@localhost", "Bob", "none"))
            self.assertEqual(groups_of(item), ["Friends"])
            pushes.append(push["id"])
        self.assertNotEqual(pushes[0], pushes[1])
        self.assertEqual(first.drain() + second.drain() + idle.drain(), [])

    async def test_result_comes_before_the_push(self):
        alice = await self.client()
        for iq_id in ("add", "again"):
            alice.send(f"<iq type='set' id='{iq_id}'><query xmlns='jabber:iq:roster'>"
                       "<item jid='bob@localhost'/></query></iq>")
            result, push = await alice.collect(2)
            self.assertEqual((result["id"], result["type"]), (iq_id, "result"))
            self.assertEqual(push["type"], "set")

    async def test_update_replaces_name_and_groups_and_keeps_the_subscription(self):
        await self.roster.set_state(ALICE, BOB, subscription.BOTH)
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost' name='Bobby'><group>A</group>"
                             "<group>B</group></item>")
        await alice.push()
        await alice.set_item("<item jid='bob@localhost'><group>C</group></item>", "again")
        (item,) = items_of(the_query(await alice.push()))
        self.assertEqual(item["subscription"], "both")
        self.assertFalse(item.hasAttribute("name"))
        self.assertEqual(groups_of(item), ["C"])
        (stored,) = await self.roster.items(ALICE)
        self.assertEqual((stored.name, stored.groups, stored.subscription),
                         (None, ("C",), "both"))

    async def test_client_subscription_ask_and_approved_are_ignored(self):
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost/phone' subscription='both' "
                             "ask='subscribe' approved='true'/>")
        (item,) = items_of(the_query(await alice.push()))
        self.assertEqual(item["jid"], "bob@localhost")  # stored as the bare JID
        self.assertEqual(item["subscription"], "none")
        self.assertFalse(item.hasAttribute("ask") or item.hasAttribute("approved"))
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.NONE)

    async def test_invalid_roster_sets_get_the_rfc_errors_and_change_nothing(self):
        alice = await self.client()
        long_text = "x" * (MAX_TEXT_LENGTH + 1)
        cases = [
            ("<item jid='bob@localhost'/><item jid='carol@example.net'/>", "bad-request"),
            ("", "bad-request"),
            ("<item xmlns='urn:example:other' jid='bob@localhost'/>", "bad-request"),
            ("<item name='nobody'/>", "bad-request"),
            ("<item jid=''/>", "bad-request"),
            ("<item jid='bad@@localhost'/>", "jid-malformed"),
            ("<item jid='bob@localhost'><group>A</group><group>A</group></item>", "bad-request"),
            ("<item jid='bob@localhost'><group></group></item>", "not-acceptable"),
            (f"<item jid='bob@localhost' name='{long_text}'/>", "not-acceptable"),
            (f"<item jid='bob@localhost'><group>{long_text}</group></item>", "not-acceptable"),
            ("<item jid='alice@localhost'/>", "not-allowed"),
            ("<item jid='Alice@LOCALHOST/x'/>", "not-allowed"),
            ("<item jid='bob@localhost' subscription='remove'/>", "item-not-found"),
        ]
        for number, (item_xml, condition) in enumerate(cases):
            reply = await alice.set_item(item_xml, f"bad{number}")
            self.assertEqual(error_condition(reply), condition, item_xml[:60])
        self.assertEqual(alice.drain(), [])  # no pushes
        self.assertEqual(await self.roster.items(ALICE), [])

    async def test_longest_allowed_name_and_group_are_kept(self):
        alice = await self.client()
        text = "é" * MAX_TEXT_LENGTH
        reply = await alice.set_item(f"<item jid='bob@localhost' name='{text}'>"
                                     f"<group>{text}</group></item>")
        self.assertEqual(reply["type"], "result")
        (stored,) = await self.roster.items(ALICE)
        self.assertEqual((stored.name, stored.groups), (text, (text,)))

    async def test_group_text_split_by_references_is_one_group(self):
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost'><group>Fish &amp; Chips</group></item>")
        (stored,) = await self.roster.items(ALICE)
        self.assertEqual(stored.groups, ("Fish & Chips",))

    async def test_a_closed_session_is_no_longer_interested(self):
        alice = await self.client()
        session = self.server.sessions.get(alice.jid)
        self.assertIn(session, self.roster.interested)
        alice.send("</stream:stream>")
        alice.harness.stream.connectionLost(None)
        self.assertNotIn(session, self.roster.interested)
        self.assertEqual(len(self.roster.interested), 0)


class RemoveTests(RosterTestCase):
    async def test_remove_pushes_and_ends_a_mutual_subscription(self):
        await self.roster.set_state(ALICE, BOB, subscription.BOTH)
        alice = await self.client(resource="a")
        other = await self.client(resource="b")
        self.server.sessions.get(alice.jid).available = True
        routed = self.capture_routes()
        reply = await alice.set_item("<item jid='bob@localhost' subscription='remove' "
                                     "name='ignored'><group>ignored</group></item>")
        self.assertEqual(reply["type"], "result")
        for client in (alice, other):
            query = the_query(await client.push())
            self.assertEqual(query["ver"], "2")
            (item,) = items_of(query)
            self.assertEqual((item["jid"], item["subscription"]), ("bob@localhost", "remove"))
            self.assertEqual(list(item.elements()), [])
        self.assertEqual(routed, [
            ("unsubscribe", "alice@localhost", "bob@localhost"),
            ("unsubscribed", "alice@localhost", "bob@localhost"),
            ("unavailable", "alice@localhost/a", "bob@localhost"),
        ])
        self.assertEqual(await self.roster.items(ALICE), [])
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.NONE)

    async def test_remove_with_pending_requests_in_both_directions(self):
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost'/>")
        await alice.push()
        request = domish.Element((ns.CLIENT, "presence"))
        request["type"] = "subscribe"
        request["from"] = "bob@localhost"
        await self.roster.set_state(ALICE, BOB, subscription.NONE_PENDING_OUT_IN, request)
        await alice.push()
        routed = self.capture_routes()
        await alice.set_item("<item jid='bob@localhost' subscription='remove'/>", "remove")
        await alice.push()
        self.assertEqual(routed, [("unsubscribe", "alice@localhost", "bob@localhost"),
                                  ("unsubscribed", "alice@localhost", "bob@localhost")])
        self.assertEqual(await self.roster.pending_requests(ALICE), [])

    async def test_remove_of_an_item_without_subscription_sends_nothing(self):
        alice = await self.client()
        self.server.sessions.get(alice.jid).available = True
        await alice.set_item("<item jid='bob@localhost'/>")
        routed = self.capture_routes()
        reply = await alice.set_item("<item jid='bob@localhost' subscription='remove'/>", "rm")
        self.assertEqual(reply["type"], "result")
        self.assertEqual(routed, [])

    async def test_from_only_sends_unsubscribed_and_unavailable_from_available_resources(self):
        await self.roster.set_state(ALICE, BOB, subscription.FROM)
        alice = await self.client(resource="a")
        await self.client(resource="b")  # connected, never available
        third = await self.client(resource="c")
        self.server.sessions.get(alice.jid).available = True
        self.server.sessions.get(third.jid).available = True
        routed = self.capture_routes()
        await alice.set_item("<item jid='bob@localhost' subscription='remove'/>")
        self.assertEqual(routed[0], ("unsubscribed", "alice@localhost", "bob@localhost"))
        self.assertEqual(sorted(routed[1:]),
                         [("unavailable", "alice@localhost/a", "bob@localhost"),
                          ("unavailable", "alice@localhost/c", "bob@localhost")])


class RosterServiceTests(RosterTestCase):
    async def test_unknown_contact_is_none_and_none_creates_no_item(self):
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.NONE)
        alice = await self.client()
        await self.roster.set_state(ALICE, BOB, subscription.NONE)
        self.assertEqual(await self.roster.items(ALICE), [])
        self.assertEqual(alice.drain(), [])

    async def test_pending_in_round_trip_and_approval_push(self):
        alice = await self.client()
        request = domish.Element((ns.CLIENT, "presence"))
        request["type"] = "subscribe"
        request["from"] = "bob@localhost/phone"
        request["to"] = "alice@localhost"
        request.addElement("status", content="let me in & see")
        await self.roster.set_state(ALICE, BOB.bare(), subscription.NONE_PENDING_IN, request)
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.NONE_PENDING_IN)
        self.assertEqual(await self.roster.items(ALICE), [])
        self.assertEqual(alice.drain(), [])  # pending in is invisible: no push
        (kept,) = await self.roster.pending_requests(ALICE)
        self.assertEqual((kept.name, kept["type"], kept["from"]),
                         ("presence", "subscribe", "bob@localhost/phone"))
        self.assertEqual(str(next(kept.elements())), "let me in & see")

        await self.roster.set_state(ALICE, BOB, subscription.FROM)
        (item,) = items_of(the_query(await alice.push()))
        self.assertEqual((item["jid"], item["subscription"]), ("bob@localhost", "from"))
        self.assertEqual(await self.roster.get_state(ALICE, BOB), subscription.FROM)
        self.assertEqual(await self.roster.pending_requests(ALICE), [])

    async def test_an_account_known_to_hold_no_request_costs_no_read(self):
        reads = []
        get_requests = self.roster.store.get_requests
        self.patch(self.roster.store, "get_requests",
                   lambda *args: reads.append(args) or get_requests(*args))
        self.assertEqual(await self.roster.pending_requests(ALICE), [])
        self.assertEqual(reads, [])
        await self.roster.set_state(ALICE, CAROL, subscription.NONE_PENDING_IN)
        (kept,) = await self.roster.pending_requests(ALICE)  # read: alice holds one now
        (again,) = await self.roster.pending_requests(ALICE)  # kept until answered
        self.assertEqual(again["from"], "carol@example.net")
        self.assertEqual(len(reads), 2)  # set_state found none to check without a read
        await self.roster.set_state(ALICE, CAROL, subscription.FROM)  # answered
        self.assertEqual(await self.roster.pending_requests(ALICE), [])  # read, found none
        reads.clear()
        self.assertEqual(await self.roster.pending_requests(ALICE), [])
        self.assertEqual(reads, [])

    async def test_a_request_without_its_stanza_is_kept_as_a_plain_subscribe(self):
        await self.roster.set_state(ALICE, CAROL, subscription.NONE_PENDING_IN)
        (kept,) = await self.roster.pending_requests(ALICE)
        self.assertEqual((kept["type"], kept["from"], kept["to"]),
                         ("subscribe", "carol@example.net", "alice@localhost"))

    async def test_set_state_keeps_name_and_groups_and_pushes_only_visible_changes(self):
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost' name='Bob'><group>G</group></item>")
        await alice.push()
        await self.roster.set_state(ALICE, BOB, subscription.NONE_PENDING_OUT)
        (item,) = items_of(the_query(await alice.push()))
        self.assertEqual((item["name"], item["ask"], groups_of(item)), ("Bob", "subscribe", ["G"]))
        await self.roster.set_state(ALICE, BOB, subscription.NONE_PENDING_OUT_IN)
        self.assertEqual(alice.drain(), [])  # only pending_in changed
        await self.roster.set_state(ALICE, BOB, subscription.SubState("none"))
        (item,) = items_of(the_query(await alice.push()))
        self.assertFalse(item.hasAttribute("ask"))
        (stored,) = await self.roster.items(ALICE)  # the item stays, now with nothing
        self.assertEqual(stored.subscription, "none")

    async def test_concurrent_changes_to_one_item_lose_nothing(self):
        alice = await self.client()
        alice.send("<iq type='set' id='name'><query xmlns='jabber:iq:roster'>"
                   "<item jid='bob@localhost' name='Bob'/></query></iq>")
        await self.roster.set_state(ALICE, BOB, subscription.TO)
        await alice.next(lambda e: e.getAttribute("id") == "name")
        (stored,) = await self.roster.items(ALICE)
        self.assertEqual((stored.name, stored.subscription), ("Bob", "to"))
        self.assertEqual(len(self.roster.locks), 0)

    async def test_changes_are_told_and_another_nodes_change_is_pushed_and_not_kept_stale(self):
        """A cluster (xmppd.cluster.rosters): each stored change is told as ROSTER_CHANGED;
        one another node stored arrives as ROSTER_CHANGED_ELSEWHERE: pushed to the
        interested resources here, and the roster kept in memory is dropped."""
        told = []
        self.server.events.on(events.ROSTER_CHANGED, lambda *change: told.append(change))
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost' name='Bob'/>")
        await alice.push()
        ((account, version, item),) = told
        self.assertEqual((account, item["jid"], item["name"]), (ALICE, "bob@localhost", "Bob"))
        self.assertIn(ALICE, self.roster.cache)
        # another node renames bob in the shared database, then says so
        renamed = RosterItem(contact="bob@localhost", name="Robert", groups=(),
                             subscription="none", pending_out=False, approved=False)
        newer = await self.roster.store.put_item("alice", "localhost", renamed)
        await self.server.emit(events.ROSTER_CHANGED_ELSEWHERE, ALICE, newer,
                               item_element(renamed))
        push = the_query(await alice.push())
        self.assertEqual((push["ver"], items_of(push)[0]["name"]), (str(newer), "Robert"))
        self.assertNotIn(ALICE, self.roster.cache)
        (answer,) = items_of(the_query(await alice.get_roster()))
        self.assertEqual(answer["name"], "Robert")
        self.assertEqual(len(told), 1)  # what came from elsewhere is not told again

    def test_set_state_takes_only_a_substate(self):
        with self.assertRaises(TypeError):
            self.roster.set_state(ALICE, BOB, "both")


class ParseStoredTests(TestCase):
    def test_a_broken_stored_stanza_is_skipped(self):
        self.assertIsNone(parse_stored_stanza("<presence type='subscribe'"))
        self.assertIsNone(parse_stored_stanza("<!-- no -->"))
        self.assertIsNone(parse_stored_stanza(""))
        kept = parse_stored_stanza("<presence type='subscribe' from='a@b'/>")
        self.assertEqual((kept.name, kept.uri, kept["from"]), ("presence", ns.CLIENT, "a@b"))


class MaxItemsTests(RosterTestCase):
    plugins = ROSTER_PLUGIN + "[plugins.roster]\nmax_items = 2\n"

    async def test_a_full_roster_refuses_new_items_but_not_updates(self):
        alice = await self.client()
        await alice.set_item("<item jid='bob@localhost'/>", "one")
        await alice.set_item("<item jid='carol@example.net'/>", "two")
        reply = await alice.set_item("<item jid='dave@example.net'/>", "three")
        self.assertEqual(error_condition(reply), "not-allowed")
        error = next(child for child in reply.elements() if child.name == "error")
        text = next(child for child in error.elements() if child.name == "text")
        self.assertEqual(str(text), "roster is full")
        reply = await alice.set_item("<item jid='bob@localhost' name='Bob'/>", "four")
        self.assertEqual(reply["type"], "result")
        failure = None
        try:
            await self.roster.set_state(ALICE, parse_jid("dave@example.net"),
                                        subscription.NONE_PENDING_OUT)
        except StanzaError as error:
            failure = error
        self.assertEqual(failure.condition, "not-allowed")
        # A pending request is no item: it does not count against the limit.
        await self.roster.set_state(ALICE, parse_jid("dave@example.net"),
                                    subscription.NONE_PENDING_IN)
        self.assertEqual(len(await self.roster.items(ALICE)), 2)


class ConfigTests(TestCase):
    async def _start_with(self, section: str) -> None:
        path = Path(self.mktemp())
        path.mkdir(parents=True)
        fixture = ServerFixture(path, "require_encryption = false\n" + ROSTER_PLUGIN + section)
        self.addCleanup(lambda: defer.ensureDeferred(fixture.storage.close()))
        await fixture.start()

    async def test_unknown_key_and_bad_max_items_stop_start_up(self):
        for section, message in (("[plugins.roster]\nmax_itemz = 5\n", "max_itemz"),
                                 ("[plugins.roster]\nmax_items = 0\n", "max_items"),
                                 ("[plugins.roster]\nmax_items = true\n", "max_items"),
                                 ("[plugins.roster]\nmax_items = '9'\n", "max_items")):
            with self.assertRaises(PluginError) as caught:
                await self._start_with(section)
            self.assertIn(message, str(caught.exception))
