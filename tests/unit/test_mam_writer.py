"""The archive's batch writer on real SQLite, its timer on a task.Clock: entries wait for
the delay or the batch size, one transaction per batch, ``settled`` commits what concerns an
account at the end of the reactor turn, group commit (one write at a time, the requests that
come meanwhile share the next), a slow disk makes senders wait, a failed write is logged and
lets the waiters go."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from xmppd.mam.writer import BatchWriter
from xmppd.storage.records import ArchiveEntry, new_entry_id
from xmppd.storage.sqlite import SQLiteStorage


class Recording:
    """The real store, with each append_many batch recorded."""

    def __init__(self, store) -> None:
        self.store = store
        self.batches: list[list] = []
        self.fail = False
        self.hold: defer.Deferred | None = None  # set: writes wait for it (a slow disk)

    def append_many(self, entries):
        batch = list(entries)
        self.batches.append(batch)
        if self.fail:
            return defer.fail(OSError("disk full"))
        if self.hold is not None:
            return self.hold.addCallback(lambda _: self.store.append_many(batch))
        return self.store.append_many(batch)


def entry(number: int) -> ArchiveEntry:
    return ArchiveEntry(float(number), "bob@localhost", f"<message id='{number}'/>",
                        new_entry_id())


class WriterTests(TestCase):
    def setUp(self):
        self.storage = SQLiteStorage(":memory:")
        self.addCleanup(self.storage.close)
        self.clock = Clock()
        self.store = Recording(self.storage.open_store("mam", "archive"))
        self.writer = BatchWriter(self.store, self.clock.callLater, 0.05, 10)
        return self.storage.open()

    async def test_entries_wait_for_the_delay_then_go_in_one_batch(self):
        for number in range(3):
            self.assertIsNone(self.writer.add("alice@localhost", entry(number)))
        self.assertEqual((self.store.batches, self.writer.pending), ([], 3))
        self.clock.advance(0.049)
        self.assertEqual(self.store.batches, [])
        self.clock.advance(0.001)
        self.assertEqual([len(batch) for batch in self.store.batches], [3])
        self.assertEqual(await self.store.store.count("alice@localhost"), 3)

    async def test_a_full_batch_goes_at_once_and_the_timer_restarts(self):
        for number in range(12):
            self.writer.add("alice@localhost", entry(number))
        self.assertEqual([len(batch) for batch in self.store.batches], [10])
        self.clock.advance(0.05)  # the rest goes once the first batch is on disk
        await self.writer.settled("alice@localhost")
        self.assertEqual([len(batch) for batch in self.store.batches], [10, 2])
        page = await self.store.store.query("alice@localhost")
        self.assertEqual([each.stamp for each in page.entries], [float(n) for n in range(12)])

    async def test_settled_commits_what_concerns_the_account_now(self):
        self.assertIsNone(self.writer.settled("alice@localhost"))
        self.writer.add("bob@localhost", entry(1), ("alice@localhost",))
        d = self.writer.settled("alice@localhost")  # alice sent it: her answer waits
        self.assertEqual(len(self.store.batches), 0)  # at the end of the reactor turn
        self.clock.advance(0)
        self.assertEqual(len(self.store.batches), 1)
        await d
        self.assertEqual(await self.store.store.count("bob@localhost"), 1)
        self.assertIsNone(self.writer.settled("alice@localhost"))
        self.assertIsNone(self.writer.settled("carol@localhost"))

    async def test_settled_waits_for_a_write_under_way(self):
        self.writer.add("bob@localhost", entry(1))
        written = self.writer.flush()
        waiting = self.writer.settled("bob@localhost")
        self.assertIsNotNone(waiting)
        await waiting
        self.assertTrue(written.called)

    async def test_no_delay_means_a_commit_per_entry_that_the_sender_waits_for(self):
        writer = BatchWriter(self.store, self.clock.callLater, 0, 10)
        d = writer.add("alice@localhost", entry(1))
        self.assertIsNotNone(d)
        self.clock.advance(0)
        await d
        self.assertEqual(await self.store.store.count("alice@localhost"), 1)

    async def test_requests_of_one_turn_share_one_write(self):
        for number, account in enumerate(("a@localhost", "b@localhost", "c@localhost")):
            self.writer.add(account, entry(number))
        waits = [self.writer.settled(account)
                 for account in ("a@localhost", "b@localhost", "c@localhost", "a@localhost")]
        self.clock.advance(0)
        await defer.gatherResults(waits)
        self.assertEqual([len(batch) for batch in self.store.batches], [3])
        self.assertEqual((self.writer.writes, self.writer.written), (1, 3))

    async def test_one_write_at_a_time_the_requests_meanwhile_share_the_next(self):
        self.store.hold = defer.Deferred()  # the disk is slow: the first write waits
        self.writer.add("a@localhost", entry(1))
        first = self.writer.settled("a@localhost")
        self.clock.advance(0)
        self.assertEqual(len(self.store.batches), 1)
        waits = []
        for number in range(2, 6):  # four requests while the first write is under way
            account = f"u{number}@localhost"
            self.writer.add(account, entry(number))
            waits.append(self.writer.settled(account))
            self.clock.advance(0)
        self.assertEqual(len(self.store.batches), 1)  # none started a write of its own
        self.assertFalse(any(wait.called for wait in waits))
        # a's entry is under way: a's answer waits for that write, not for the next one
        self.assertIs(self.writer.settled("a@localhost").called, False)
        hold, self.store.hold = self.store.hold, None
        hold.callback(None)
        await first
        await defer.gatherResults(waits)
        self.assertEqual([len(batch) for batch in self.store.batches], [1, 4])
        self.assertEqual(await self.store.store.count("u5@localhost"), 1)
        self.assertIsNone(self.writer.settled("u5@localhost"))

    async def test_the_timer_during_a_write_waits_for_it(self):
        self.store.hold = defer.Deferred()
        self.writer.add("a@localhost", entry(1))
        self.writer.settled("a@localhost")
        self.clock.advance(0)
        self.writer.add("b@localhost", entry(2))
        self.clock.advance(0.05)  # the delay is over, but a write is under way
        self.assertEqual(len(self.store.batches), 1)
        hold, self.store.hold = self.store.hold, None
        hold.callback(None)
        await self.writer.flush()
        self.assertEqual([len(batch) for batch in self.store.batches], [1, 1])

    async def test_a_full_batch_behind_a_write_under_way_makes_senders_wait(self):
        writer = BatchWriter(self.store, self.clock.callLater, 0.05, 2)
        self.store.hold = defer.Deferred()
        self.assertIsNone(writer.add("a@localhost", entry(1)))
        self.assertIsNone(writer.add("a@localhost", entry(2)))  # full: written at once
        self.assertEqual(len(self.store.batches), 1)
        self.assertIsNone(writer.add("a@localhost", entry(3)))
        waiting = writer.add("a@localhost", entry(4))  # full again, behind the first
        self.assertIsInstance(waiting, defer.Deferred)
        self.assertFalse(waiting.called)
        hold, self.store.hold = self.store.hold, None
        hold.callback(None)
        await waiting
        await writer.flush()
        self.assertEqual([len(batch) for batch in self.store.batches], [2, 2])
        self.assertEqual(await self.store.store.count("a@localhost"), 4)

    async def test_a_failed_write_is_logged_and_releases_its_waiters(self):
        self.store.fail = True
        self.writer.add("alice@localhost", entry(1))
        await self.writer.flush()
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertIsNone(self.writer.settled("alice@localhost"))

    async def test_forget_drops_an_accounts_waiting_entries(self):
        self.writer.add("alice@localhost", entry(1))
        self.writer.add("bob@localhost", entry(2))
        self.writer.forget("alice@localhost")
        await self.writer.flush()
        self.assertEqual([owner for owner, _ in self.store.batches[0]], ["bob@localhost"])
