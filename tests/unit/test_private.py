"""XEP-0049 private XML storage on a real server with real SQLite: set and get per namespace,
reserved namespaces refused, only the account itself, the size limit, deletion with the
account."""

from __future__ import annotations

from twisted.words.xish import domish

from tests.personal_case import PersonalCase, error_condition
from xmppd import ns

BOOKMARKS = ("<storage xmlns='storage:bookmarks'>"
             "<conference jid='room@conference.localhost' autojoin='true'><nick>al</nick>"
             "</conference></storage>")


def query(inner: str) -> str:
    return f"<query xmlns='jabber:iq:private'>{inner}</query>"


def stored(answer: domish.Element) -> list[domish.Element]:
    assert answer["type"] == "result", answer.toXml()
    (result,) = answer.elements(ns.PRIVATE, "query")
    return list(result.elements())


class PrivateTests(PersonalCase):
    async def test_set_then_get_each_namespace_apart(self):
        alice = await self.client("alice", "phone")
        prefs = "<prefs xmlns='urn:example:prefs'><theme>dark</theme></prefs>"
        answer = await self.ask(alice, "set", query(BOOKMARKS + prefs))
        self.assertEqual((answer["type"], list(answer.elements())), ("result", []))
        (bookmarks,) = stored(await self.ask(alice, "get",
                                             query("<storage xmlns='storage:bookmarks'/>")))
        self.assertEqual((bookmarks.uri, bookmarks.name), ("storage:bookmarks", "storage"))
        (conference,) = bookmarks.elements()
        self.assertEqual((conference["jid"], str(next(conference.elements()))),
                         ("room@conference.localhost", "al"))
        (found,) = stored(await self.ask(alice, "get", query("<prefs xmlns='urn:example:prefs'/>"),
                                         to="alice@localhost"))
        (theme,) = found.elements("urn:example:prefs", "theme")
        self.assertEqual((found.name, str(theme)), ("prefs", "dark"))

    async def test_nothing_stored_answers_the_element_empty(self):
        alice = await self.client("alice", "phone")
        notes = query("<storage xmlns='storage:rosternotes'/>")
        (empty,) = stored(await self.ask(alice, "get", notes))
        self.assertEqual((empty.uri, empty.name, list(empty.children)),
                         ("storage:rosternotes", "storage", []))

    async def test_same_namespace_other_name_is_kept_apart_and_replaced_whole(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", query("<a xmlns='urn:x'><one/></a><b xmlns='urn:x'/>"))
        await self.ask(alice, "set", query("<a xmlns='urn:x'><two/></a>"))
        (a,) = stored(await self.ask(alice, "get", query("<a xmlns='urn:x'/>")))
        self.assertEqual([child.name for child in a.elements()], ["two"])
        (b,) = stored(await self.ask(alice, "get", query("<b xmlns='urn:x'/>")))
        self.assertEqual(b.name, "b")

    async def test_reserved_namespaces_are_not_acceptable(self):
        alice = await self.client("alice", "phone")
        for inner in ("<x xmlns='jabber:client'/>", "<x xmlns='jabber:server'/>",
                      "<query xmlns='jabber:iq:private'/>", "<unqualified/>"):
            for type in ("get", "set"):
                answer = await self.ask(alice, type, query(inner))
                self.assertEqual(error_condition(answer), "not-acceptable", (type, inner))
        self.assertEqual(await self.server.storage.open_store("private", "map")
                         .keys("alice@localhost"), [])

    async def test_malformed_queries(self):
        alice = await self.client("alice", "phone")
        self.assertEqual(error_condition(await self.ask(alice, "get", query(""))),
                         "not-acceptable")
        self.assertEqual(error_condition(await self.ask(alice, "set", query(""))),
                         "not-acceptable")
        two = query("<a xmlns='urn:x'/><b xmlns='urn:y'/>")
        self.assertEqual(error_condition(await self.ask(alice, "get", two)), "bad-request")
        twice = query("<a xmlns='urn:x'/><a xmlns='urn:x'/>")
        self.assertEqual(error_condition(await self.ask(alice, "set", twice)), "bad-request")

    async def test_another_account_is_forbidden(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", query(BOOKMARKS))
        bob = await self.client("bob", "desk")
        for type, inner in (("get", "<storage xmlns='storage:bookmarks'/>"), ("set", BOOKMARKS)):
            answer = await self.ask(bob, type, query(inner), to="alice@localhost")
            self.assertEqual(error_condition(answer), "forbidden", type)
        self.assertEqual(alice.elements(), [])

    async def test_the_data_goes_with_the_account(self):
        alice = await self.client("alice", "phone")
        await self.ask(alice, "set", query(BOOKMARKS))
        store = self.server.storage.open_store("private", "map")
        self.assertEqual(await store.keys("alice@localhost"), ["{storage:bookmarks}storage"])
        await self.server.storage.users.delete_user("alice", "localhost")
        self.assertEqual(await store.keys("alice@localhost"), [])


class PrivateSizeTests(PersonalCase):
    sections = {"private": {"max_size": 200}}

    async def test_the_account_total_is_bounded(self):
        alice = await self.client("alice", "phone")
        first = query(f"<a xmlns='urn:x'>{'x' * 100}</a>")
        self.assertEqual((await self.ask(alice, "set", first))["type"], "result")
        second = query(f"<b xmlns='urn:x'>{'y' * 100}</b>")
        self.assertEqual(error_condition(await self.ask(alice, "set", second)), "not-acceptable")
        (b,) = stored(await self.ask(alice, "get", query("<b xmlns='urn:x'/>")))
        self.assertEqual(list(b.children), [])  # nothing stored
        replaced = query(f"<a xmlns='urn:x'>{'z' * 150}</a>")  # replacing does not add up
        self.assertEqual((await self.ask(alice, "set", replaced))["type"], "result")
