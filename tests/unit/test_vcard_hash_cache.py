"""The photo hash cache of xmppd.personal.vcards: lookups of an account not cached yet share
one storage read (avatar_hash asks at bind and again at the first presence), a write while
that read is out wins over it, and a failed read fails its lookups and is not remembered."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.personal_case import PNG_SHA1, photo_xml, vcard_xml
from xmppd.jid import parse_jid
from xmppd.personal.elements import from_text
from xmppd.personal.vcards import VCards

ALICE = parse_jid("alice@localhost")


class SlowStore:
    """A keyval store whose reads wait until the test answers them."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.reads: list[tuple[str, defer.Deferred]] = []

    def get(self, owner: str) -> defer.Deferred:
        d = defer.Deferred()
        self.reads.append((owner, d))
        return d

    def set(self, owner: str, value) -> defer.Deferred:
        self.values[owner] = value
        return defer.succeed(None)

    def delete(self, owner: str) -> defer.Deferred:
        return defer.succeed(self.values.pop(owner, None) is not None)

    def answer(self, index: int = 0) -> None:
        owner, d = self.reads[index]
        d.callback(self.values.get(owner))


def results(*ds: defer.Deferred) -> list:
    seen: list = []
    for d in ds:
        d.addBoth(seen.append)
    return seen


class PhotoHashCacheTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = SlowStore()
        self.vcards = VCards(self.store, 65_536)
        self.store.values["alice@localhost"] = vcard_xml(photo_xml())

    def test_lookups_during_one_read_share_it(self):
        first, second = self.vcards.photo_hash(ALICE), self.vcards.photo_hash(ALICE)
        self.assertEqual(len(self.store.reads), 1)
        seen = results(first, second)
        self.assertEqual(seen, [])
        self.store.answer()
        self.assertEqual(seen, [PNG_SHA1, PNG_SHA1])
        self.assertEqual(self.successResultOf(self.vcards.photo_hash(ALICE)), PNG_SHA1)
        self.assertEqual(len(self.store.reads), 1)  # cached from then on

    def test_a_read_that_answers_at_once_answers_the_lookup(self):
        self.store.get = lambda owner: defer.succeed(self.store.values.get(owner))
        self.assertEqual(self.successResultOf(self.vcards.photo_hash(ALICE)), PNG_SHA1)

    def test_a_write_while_the_read_is_out_wins(self):
        waiting = self.vcards.photo_hash(ALICE)
        self.successResultOf(self.vcards.set(ALICE, from_text(vcard_xml(), "vCard")))
        self.store.values["alice@localhost"] = vcard_xml(photo_xml())  # what the read saw
        self.store.answer()
        self.assertIsNone(self.successResultOf(waiting))  # the write's: no photo any more
        self.assertIsNone(self.successResultOf(self.vcards.photo_hash(ALICE)))

    def test_a_failed_read_fails_every_lookup_and_is_not_remembered(self):
        first, second = self.vcards.photo_hash(ALICE), self.vcards.photo_hash(ALICE)
        self.store.reads[0][1].errback(RuntimeError("database gone"))
        for d in (first, second):
            self.failureResultOf(d, RuntimeError)
        third = self.vcards.photo_hash(ALICE)
        self.assertEqual(len(self.store.reads), 2)  # read again
        self.store.answer(1)
        self.assertEqual(self.successResultOf(third), PNG_SHA1)

    def test_forget_drops_the_cached_hash(self):
        self.store.get = lambda owner: defer.succeed(self.store.values.get(owner))
        self.assertEqual(self.successResultOf(self.vcards.photo_hash(ALICE)), PNG_SHA1)
        del self.store.values["alice@localhost"]
        self.vcards.forget(ALICE)
        self.assertIsNone(self.successResultOf(self.vcards.photo_hash(ALICE)))
