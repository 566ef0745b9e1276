"""XEP-0313 on a real server with real SQLite: two local accounts exchange messages through
real streams; each archive holds its copy, the recipient's copy is stamped, queries page
both ways, preferences, forbidden archives, forged stanza-ids, account deletion."""

from __future__ import annotations

from twisted.words.xish import domish

from tests.personal_case import error_condition
from tests.plugin_case import PluginServerCase
from xmppd import ns
from xmppd.events import USER_DELETED, USER_DELETING
from xmppd.im.subscription import SubState
from xmppd.interfaces import IRoster
from xmppd.jid import parse_jid
from xmppd.mam.prefs import ArchivePrefs, Prefs
from xmppd.storage.stores.archive_log import SQLArchiveLog


def chat(to: str, body: str, extra: str = "", id: str = "m") -> str:
    return f"<message to='{to}' type='chat' id='{id}'><body>{body}</body>{extra}</message>"


def mam_query(inner: str = "", queryid: str = "q", form: str = "") -> str:
    fields = (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
              f"<value>urn:xmpp:mam:2</value></field>{form}</x>") if form else ""
    return f"<query xmlns='urn:xmpp:mam:2' queryid='{queryid}'>{fields}{inner}</query>"


def field(var: str, *values: str) -> str:
    return f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"


def rsm(inner: str) -> str:
    return f"<set xmlns='http://jabber.org/protocol/rsm'>{inner}</set>"


def stanza_ids(message: domish.Element) -> list[tuple[str, str]]:
    return [(each["by"], each["id"]) for each in message.elements(ns.STANZA_ID, "stanza-id")]


class MamCase(PluginServerCase):
    enabled = ("mam",)
    users = ("alice", "bob")

    async def started(self) -> None:
        self.alice = await self.client("alice", "phone", available=True)
        self.bob = await self.client("bob", "laptop", available=True)

    async def ask(self, harness, type: str, payload: str, to: str | None = None):
        """Send one IQ; the messages before its answer, and the answer."""
        address = f" to='{to}'" if to else ""
        harness.feed(f"<iq type='{type}' id='q1'{address}>{payload}</iq>")
        messages = []
        while True:
            for element in await self._next(harness):
                if element.name == "iq":
                    assert element["id"] == "q1", element.toXml()
                    return messages, element
                messages.append(element)

    async def _next(self, harness) -> list:
        from twisted.internet import reactor, task

        for _ in range(500):
            self.clock.advance(0)  # a reactor turn ends: the archive's write starts (writer.py)
            found = harness.elements()
            if found:
                return found
            await task.deferLater(reactor, 0.01, lambda: None)
        raise AssertionError("no answer")

    async def send_chats(self, count: int, start: int = 0) -> list[str]:
        """alice → bob ``count`` messages; the stanza-ids bob got."""
        ids = []
        for number in range(start, start + count):
            self.alice.feed(chat("bob@localhost", f"hello {number}", id=f"m{number}"))
        received = []
        while len(received) < count:
            received += [each for each in await self._next(self.bob) if each.name == "message"]
        for message in received:
            ((by, id),) = stanza_ids(message)
            self.assertEqual(by, "bob@localhost")
            ids.append(id)
        return ids

    async def page(self, harness, form: str = "", set_: str = "", flip: bool = False):
        inner = rsm(set_) if set_ else ""
        inner += "<flip-page/>" if flip else ""
        messages, answer = await self.ask(harness, "set", mam_query(inner, form=form))
        self.assertEqual(answer["type"], "result", answer.toXml())
        (fin,) = answer.elements(ns.MAM, "fin")
        ids = []
        for message in messages:
            (result,) = message.elements(ns.MAM, "result")
            self.assertEqual(result["queryid"], "q")
            ids.append(result["id"])
        return ids, fin


class ArchiveTests(MamCase):
    async def test_both_archives_hold_the_message_and_bob_got_his_id(self):
        (bob_id,) = await self.send_chats(1)
        bob_ids, fin = await self.page(self.bob)
        self.assertEqual((bob_ids, fin.getAttribute("complete")), ([bob_id], "true"))
        alice_ids, _ = await self.page(self.alice)
        self.assertEqual(len(alice_ids), 1)
        self.assertNotEqual(alice_ids, bob_ids)
        messages, _ = await self.ask(self.bob, "set", mam_query())
        (result,) = messages[0].elements(ns.MAM, "result")
        (forwarded,) = result.elements(ns.FORWARD, "forwarded")
        (delay,) = forwarded.elements(ns.DELAY, "delay")
        (original,) = forwarded.elements(ns.CLIENT, "message")
        self.assertEqual((original["from"], str(next(original.elements(ns.CLIENT, "body")))),
                         ("alice@localhost/phone", "hello 0"))
        self.assertTrue(delay["stamp"].endswith("Z"))

    async def test_paging_forwards_and_backwards_gives_the_same_ids(self):
        sent = await self.send_chats(300)
        forwards, after = [], ""
        while True:
            ids, fin = await self.page(self.bob, set_=f"<max>47</max>{after}")
            forwards += ids
            if fin.getAttribute("complete") == "true":
                break
            after = f"<after>{ids[-1]}</after>"
        backwards, before = [], "<before/>"
        while True:
            ids, fin = await self.page(self.bob, set_=f"<max>50</max>{before}")
            backwards = ids + backwards
            if fin.getAttribute("complete") == "true":
                break
            before = f"<before>{ids[0]}</before>"
        self.assertEqual(forwards, sent)
        self.assertEqual(backwards, sent)
        (count,) = fin.elements(ns.RSM, "set")
        self.assertEqual(str(next(count.elements(ns.RSM, "count"))), "300")

    async def test_flipped_page_is_the_same_page_reversed(self):
        sent = await self.send_chats(10)
        ids, fin = await self.page(self.bob, set_="<max>4</max><before/>", flip=True)
        self.assertEqual(ids, list(reversed(sent[-4:])))
        (rsm_set,) = fin.elements(ns.RSM, "set")
        self.assertEqual(str(next(rsm_set.elements(ns.RSM, "first"))), sent[-4])

    async def test_filters(self):
        sent = await self.send_chats(3)
        self.clock.advance(100)
        self.bob.feed(chat("alice@localhost", "back"))
        later = await self.send_chats(2, start=3)
        everything = await self.page(self.bob)
        self.assertEqual(len(everything[0]), 6)
        by_with, _ = await self.page(self.bob, form=field("with", "alice@localhost/phone"))
        self.assertEqual(by_with, everything[0])  # bob's answer is with alice too
        self.assertEqual((await self.page(self.bob, form=field("with", "carol@localhost")))[0],
                         [])
        by_time, _ = await self.page(self.bob, form=field("start", "1970-01-01T00:01:00Z"))
        self.assertEqual(by_time[1:], later)
        by_end, _ = await self.page(self.bob, form=field("end", "1970-01-01T00:00:10+00:00"))
        self.assertEqual(by_end, sent)
        between, _ = await self.page(self.bob, form=field("after-id", sent[0])
                                     + field("before-id", later[0]))
        self.assertEqual(len(between), 3)
        chosen, _ = await self.page(self.bob, form=field("ids", later[1], sent[1]))
        self.assertEqual(chosen, [sent[1], later[1]])

    async def test_errors(self):
        await self.send_chats(2)
        cases = [
            (mam_query(form=field("ids", "nope")), "item-not-found"),
            (mam_query(form=field("after-id", "nope")), "item-not-found"),
            (mam_query(rsm("<after>nope</after>")), "item-not-found"),
            (mam_query(form=field("start", "yesterday")), "bad-request"),
            (mam_query(form=field("with", "@@")), "bad-request"),
            (mam_query(form=field("{urn:x}fulltext", "hi")), "feature-not-implemented"),
            (mam_query(rsm("<max>ten</max>")), "bad-request"),
            (mam_query(rsm("<index>3</index>")), "feature-not-implemented"),
            ("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>"
             "<field var='FORM_TYPE'><value>urn:other</value></field></x></query>",
             "bad-request"),
        ]
        for payload, condition in cases:
            messages, answer = await self.ask(self.bob, "set", payload)
            self.assertEqual((error_condition(answer), messages), (condition, []), payload)

    async def test_another_accounts_archive_is_forbidden(self):
        await self.send_chats(1)
        for type, payload in (("set", mam_query()), ("get", mam_query()),
                              ("get", "<prefs xmlns='urn:xmpp:mam:2'/>")):
            messages, answer = await self.ask(self.alice, type, payload, to="bob@localhost")
            self.assertEqual((error_condition(answer), messages), ("forbidden", []))

    async def test_the_form_lists_the_extended_fields(self):
        _, answer = await self.ask(self.bob, "get", mam_query())
        (query,) = answer.elements(ns.MAM, "query")
        (form,) = query.elements(ns.DATA_FORMS, "x")
        self.assertEqual([each["var"] for each in form.elements(ns.DATA_FORMS, "field")],
                         ["FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"])

    async def test_features_on_the_accounts_disco(self):
        _, answer = await self.ask(self.bob, "get",
                                   "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        features = {each["var"] for each in next(answer.elements()).elements(
            ns.DISCO_INFO, "feature")}
        self.assertLessEqual({ns.MAM, ns.MAM_EXTENDED}, features)


class WhatIsArchivedTests(MamCase):
    async def test_only_archivable_one_to_one_messages(self):
        self.alice.feed("<message to='bob@localhost' type='chat'><active "
                        "xmlns='http://jabber.org/protocol/chatstates'/></message>")
        self.alice.feed(chat("bob@localhost", "secret", "<no-permanent-store "
                             "xmlns='urn:xmpp:hints'/>"))
        self.alice.feed("<message to='bob@localhost/laptop' type='groupchat'><body>g</body>"
                        "</message>")
        self.alice.feed("<message to='bob@localhost' type='headline'><body>h</body></message>")
        received = []
        while len(received) < 4:
            received += await self._next(self.bob)
        self.assertEqual([stanza_ids(each) for each in received], [[]] * 4)
        self.assertEqual((await self.page(self.bob))[0], [])
        self.assertEqual((await self.page(self.alice))[0], [])

    async def test_forged_stanza_ids_are_removed(self):
        forged = ("<stanza-id xmlns='urn:xmpp:sid:0' by='BOB@localhost' id='fake1'/>"
                  "<stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='fake2'/>"
                  "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='fake3'/>"
                  "<stanza-id xmlns='urn:xmpp:sid:0' by='room@conference.example' id='ok'/>"
                  "<origin-id xmlns='urn:xmpp:sid:0' id='mine'/>")
        self.alice.feed(chat("bob@localhost", "hi", forged))
        (message,) = await self._next(self.bob)
        ids = stanza_ids(message)
        self.assertEqual(ids[0], ("room@conference.example", "ok"))
        self.assertEqual([by for by, _ in ids[1:]], ["bob@localhost"])
        self.assertEqual(len(list(message.elements(ns.STANZA_ID, "origin-id"))), 1)
        (bob_id,), _ = await self.page(self.bob)
        self.assertEqual(bob_id, ids[1][1])
        messages, _ = await self.ask(self.alice, "set", mam_query())
        kept = str(messages[0].toXml())  # alice's copy: the router took every forged id,
        # bob's included, before any link saw the message (issue 15)
        self.assertEqual(("fake1" in kept, "fake2" in kept, "fake3" in kept),
                         (False, False, False))

    async def test_a_forged_id_is_removed_from_what_is_not_archived(self):
        self.alice.feed("<message to='bob@localhost/laptop' type='groupchat'><body>g</body>"
                        "<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='x'/></message>")
        (message,) = await self._next(self.bob)
        self.assertEqual(stanza_ids(message), [])

    async def test_a_note_to_self_is_archived_once(self):
        self.alice.feed(chat("alice@localhost", "remember the milk"))
        (message,) = await self._next(self.alice)
        ((by, id),) = stanza_ids(message)
        self.assertEqual(((await self.page(self.alice))[0]), [id])

    async def test_a_message_for_nobody_is_archived_by_its_sender_only(self):
        self.alice.feed(chat("nobody@localhost", "hello?"))
        (error,) = await self._next(self.alice)
        self.assertEqual(error_condition_of_message(error), "service-unavailable")
        self.assertEqual(len((await self.page(self.alice))[0]), 1)
        store = SQLArchiveLog(self.server.storage, "mam")
        self.assertEqual(await store.count("nobody@localhost"), 0)

    async def test_deleted_account_loses_its_archive(self):
        await self.send_chats(3)
        await self.page(self.bob)
        store = SQLArchiveLog(self.server.storage, "mam")
        self.assertEqual(await store.count("bob@localhost"), 3)
        await self.server.storage.users.delete_user("bob", "localhost")
        self.assertEqual(await store.count("bob@localhost"), 0)


    async def test_entries_waiting_for_a_deleted_account_are_not_written_after(self):
        await self.send_chats(3)  # still in the batch: no IQ, no timer yet
        deleting = self.server.emit(USER_DELETING, parse_jid("bob@localhost"))
        self.clock.advance(0)  # the end of the reactor turn: the write of alice's copies starts
        await deleting
        await self.server.storage.users.delete_user("bob", "localhost")
        self.clock.advance(1)
        store = SQLArchiveLog(self.server.storage, "mam")
        self.assertEqual(await store.count("bob@localhost"), 0)
        self.assertEqual(await store.count("alice@localhost"), 3)


def error_condition_of_message(message: domish.Element) -> str:
    assert message["type"] == "error", message.toXml()
    (error,) = [child for child in message.elements() if child.name == "error"]
    return next(child.name for child in error.elements() if child.uri == ns.STANZA_ERRORS)


class PrefsTests(MamCase):
    async def set_prefs(self, harness, default: str, always=(), never=()):
        def jids(names):
            return "".join(f"<jid>{name}</jid>" for name in names)
        payload = (f"<prefs xmlns='urn:xmpp:mam:2' default='{default}'><always>{jids(always)}"
                   f"</always><never>{jids(never)}</never></prefs>")
        _, answer = await self.ask(harness, "set", payload)
        self.assertEqual(answer["type"], "result", answer.toXml())
        return answer

    async def test_default_prefs_then_set_and_read_back(self):
        _, answer = await self.ask(self.bob, "get", "<prefs xmlns='urn:xmpp:mam:2'/>")
        (prefs,) = answer.elements(ns.MAM, "prefs")
        self.assertEqual(prefs["default"], "always")
        await self.set_prefs(self.bob, "never", always=["carol@example.org/x"])
        _, answer = await self.ask(self.bob, "get", "<prefs xmlns='urn:xmpp:mam:2'/>")
        (prefs,) = answer.elements(ns.MAM, "prefs")
        (always,) = prefs.elements(ns.MAM, "always")
        self.assertEqual((prefs["default"], [str(j) for j in always.elements()]),
                         ("never", ["carol@example.org"]))

    async def test_never_keeps_nothing_and_stamps_nothing(self):
        await self.set_prefs(self.bob, "never")
        self.alice.feed(chat("bob@localhost", "hi"))
        (message,) = await self._next(self.bob)
        self.assertEqual(stanza_ids(message), [])
        self.assertEqual((await self.page(self.bob))[0], [])
        self.assertEqual(len((await self.page(self.alice))[0]), 1)

    async def test_never_list_beats_always_default(self):
        await self.set_prefs(self.alice, "always", never=["bob@localhost"])
        await self.send_chats(1)
        self.assertEqual((await self.page(self.alice))[0], [])

    async def test_roster_default_archives_contacts_only(self):
        await self.set_prefs(self.bob, "roster", always=[])
        self.alice.feed(chat("bob@localhost", "stranger"))
        (message,) = await self._next(self.bob)
        self.assertEqual(stanza_ids(message), [])
        roster = self.server.query(IRoster)
        await roster.set_state(parse_jid("bob@localhost"), parse_jid("alice@localhost"),
                               SubState("both"))
        await self.send_chats(1)
        self.assertEqual(len((await self.page(self.bob))[0]), 1)

    async def test_bad_prefs(self):
        for payload, condition in (
            ("<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>", "bad-request"),
            ("<prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>@@</jid></always>"
             "</prefs>", "jid-malformed"),
        ):
            _, answer = await self.ask(self.bob, "set", payload)
            self.assertEqual(error_condition(answer), condition)


    async def test_prefs_are_read_back_at_start_up_and_go_with_the_account(self):
        await self.set_prefs(self.bob, "roster", never=["carol@example.org"])
        store = self.server.storage.open_store("mam_prefs", "map")
        again = ArchivePrefs(store, "always")
        await again.load(["localhost"])
        self.assertEqual(again.get(parse_jid("bob@localhost")),
                         Prefs("roster", frozenset(), frozenset({"carol@example.org"})))
        self.assertEqual(again.get(parse_jid("alice@localhost")), Prefs("always"))
        await self.server.storage.users.delete_user("bob", "localhost")
        await self.server.emit(USER_DELETED, parse_jid("bob@localhost"))
        self.assertEqual(await store.items("localhost"), {})


class RetentionTests(MamCase):
    sections = {"mam": {"retention_days": 2}}

    async def test_old_entries_are_purged_every_hour(self):
        await self.send_chats(2)
        self.clock.advance(86_400)
        later = await self.send_chats(1, start=2)
        await self.page(self.bob)  # committed
        self.clock.advance(86_400 + 3_600)  # the first two are now older than two days
        store = SQLArchiveLog(self.server.storage, "mam")
        await store.count("bob@localhost")  # behind the purge on the database thread
        self.assertEqual((await self.page(self.bob))[0], later)
