"""The request and answer of a resumption across nodes (xmppd.cluster.resumption), with the
channels replaced by lists: who is asked, what is answered, the bounded wait, a late
answer, a hand-over nobody heard, and malformed messages."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from xmppd.cluster.broadcast import Broadcast
from xmppd.cluster.directory import stanza_channel
from xmppd.cluster.resumption import ANSWER, ANSWER_TIMEOUT, TOPIC, RemoteResumption
from xmppd.jid import parse_jid

ALICE = parse_jid("alice@localhost")
STATE = {"jid": "alice@localhost/phone", "id": "sm-1"}


class FakeRedis:
    """PUBLISH recorded; each answers the number of subscribers the test sets."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []
        self.listeners = 2

    def publish(self, channel: str, text: str) -> defer.Deferred:
        self.published.append((channel, text))
        if isinstance(self.listeners, Exception):
            return defer.fail(self.listeners)
        return defer.succeed(self.listeners)


class FakeSessions:
    """The smacks plugin's IResumableSessions: one session, ``sm-1`` of alice."""

    def __init__(self) -> None:
        self.held = {"sm-1": ALICE}
        self.adopted: list[dict] = []

    def hand_over(self, previd, account):
        if self.held.get(previd) != account:
            return None
        del self.held[previd]
        return dict(STATE)

    def adopt(self, state):
        if "jid" not in state:
            raise ValueError("not a session")
        self.adopted.append(state)
        return object()  # the ManagedSession made


class ResumptionTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = FakeRedis()
        self.sessions = FakeSessions()
        self.node = RemoteResumption("b", Broadcast(self.redis, "b"), self.redis.publish,
                                     lambda: self.sessions, self.clock)
        self.undo = self.node.start()

    def question(self) -> dict:
        channel, text = self.redis.published[-1]
        head, _, body = text.partition("\n")
        self.assertEqual((channel, head), ("xmppd:broadcast", f"{TOPIC} b"))
        return json.loads(body)

    def answer(self, ask: str, state) -> None:
        message = f"{ANSWER}\n{json.dumps({'ask': ask, 'state': state})}"
        self.assertTrue(self.node.takes(stanza_channel("b"), message))

    def results(self, d: defer.Deferred) -> list:
        out: list = []
        d.addCallback(out.append)
        return out

    def test_the_holder_hands_the_session_over_and_it_is_adopted_here(self):
        self.redis.listeners = 3  # b itself and two others
        got = self.results(self.node.fetch("sm-1", ALICE))
        question = self.question()
        self.assertEqual((question["previd"], question["account"]), ("sm-1", "alice@localhost"))
        self.answer(question["ask"], None)  # one says: not here
        self.assertEqual(got, [])
        self.answer(question["ask"], STATE)
        self.assertEqual((got, self.sessions.adopted), ([True], [STATE]))
        self.assertEqual(self.node.asks, {})
        self.clock.advance(ANSWER_TIMEOUT)  # the timer went with the answer
        self.assertEqual(got, [True])

    def test_every_other_node_says_no_and_it_fails_without_waiting(self):
        self.redis.listeners = 3
        got = self.results(self.node.fetch("sm-1", ALICE))
        ask = self.question()["ask"]
        self.answer(ask, None)
        self.answer(ask, None)
        self.assertEqual(got, [False])

    def test_alone_it_fails_at_once(self):
        self.redis.listeners = 1  # only b heard its own question
        self.assertEqual(self.results(self.node.fetch("sm-1", ALICE)), [False])

    def test_a_failed_publish_fails_at_once(self):
        self.redis.listeners = ConnectionError("gone")
        self.assertEqual(self.results(self.node.fetch("sm-1", ALICE)), [False])
        self.flushLoggedErrors(ConnectionError)

    def test_a_silent_node_ends_the_wait_and_a_late_session_still_lives_here(self):
        got = self.results(self.node.fetch("sm-1", ALICE))
        ask = self.question()["ask"]
        self.clock.advance(ANSWER_TIMEOUT - 0.1)
        self.assertEqual(got, [])
        self.clock.advance(0.1)
        self.assertEqual(got, [False])
        self.answer(ask, STATE)  # too late for the stream, not for the session
        self.assertEqual(self.sessions.adopted, [STATE])

    def test_the_holder_answers_the_asking_node_and_only_the_owner_gets_it(self):
        self.node.asked("a", json.dumps({"ask": "q1", "previd": "sm-1",
                                         "account": "mallory@localhost"}))
        self.node.asked("a", json.dumps({"ask": "q2", "previd": "nope",
                                         "account": "alice@localhost"}))
        self.node.asked("a", json.dumps({"ask": "q3", "previd": "sm-1",
                                         "account": "alice@localhost"}))
        answers = [(channel, json.loads(text.partition("\n")[2]))
                   for channel, text in self.redis.published]
        self.assertEqual(answers, [(stanza_channel("a"), {"ask": "q1", "state": None}),
                                   (stanza_channel("a"), {"ask": "q2", "state": None}),
                                   (stanza_channel("a"), {"ask": "q3", "state": STATE})])
        self.assertEqual((self.sessions.held, self.sessions.adopted), ({}, []))

    def test_a_hand_over_nobody_heard_is_taken_back(self):
        self.redis.listeners = 0  # the asking node stopped listening
        self.node.asked("a", json.dumps({"ask": "q", "previd": "sm-1",
                                         "account": "alice@localhost"}))
        self.assertEqual(self.sessions.adopted, [STATE])
        self.redis.listeners = ConnectionError("gone")
        self.sessions.held["sm-2"] = ALICE
        self.node.asked("a", json.dumps({"ask": "q", "previd": "sm-2",
                                         "account": "alice@localhost"}))
        self.assertEqual(len(self.sessions.adopted), 2)
        self.flushLoggedErrors(ConnectionError)

    def test_malformed_messages_are_ignored(self):
        for text in ("not json", "{}", json.dumps({"ask": "q", "previd": "sm-1",
                                                    "account": "@@"})):
            self.node.asked("a", text)
        self.assertEqual(self.redis.published, [])
        self.assertEqual(self.sessions.held, {"sm-1": ALICE})
        got = self.results(self.node.fetch("sm-1", ALICE))
        ask = self.question()["ask"]
        for text in ("garbage", json.dumps({"state": None})):
            self.node.takes(stanza_channel("b"), f"{ANSWER}\n{text}")
        self.answer(ask, {"unreadable": True})  # adopt refuses it: the ask fails
        self.assertEqual((got, self.sessions.adopted), ([False], []))

    def test_only_answers_on_its_own_channel_are_taken(self):
        self.assertFalse(self.node.takes(stanza_channel("b"), "room\n<presence/>"))
        self.assertFalse(self.node.takes(stanza_channel("c"), f"{ANSWER}\n{{}}"))
        self.assertFalse(self.node.takes("xmppd:registry", f"{ANSWER}\n{{}}"))

    def test_without_smacks_nothing_is_handed_over(self):
        self.sessions = None
        self.node.asked("a", json.dumps({"ask": "q", "previd": "sm-1",
                                         "account": "alice@localhost"}))
        (channel, text), = self.redis.published
        self.assertEqual(json.loads(text.partition("\n")[2])["state"], None)
