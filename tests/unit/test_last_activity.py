"""XEP-0012 last activity on a real server whose reactor is a Clock: the server's uptime, an
account's last logout and status for its contacts, 0 while it is online, forbidden to others,
service-unavailable for no such account, and what a reload or a second resource changes."""

from __future__ import annotations

from tests.devices_case import DevicesCase, error_condition
from xmppd import ns

LAST = "<query xmlns='jabber:iq:last'/>"


def seconds_and_status(answer) -> tuple[int, str]:
    assert answer["type"] == "result", answer.toXml()
    (query,) = answer.elements()
    assert (query.uri, query.name) == (ns.LAST, "query")
    return int(query["seconds"]), str(query)


class LastActivityCase(DevicesCase):
    enabled = ("last_activity",)
    users = ("alice", "bob", "mallory")

    async def started(self) -> None:
        await super().started()
        await self.befriend("alice", "bob")

    async def log_out(self, harness, status: str | None = None) -> None:
        """Unavailable presence (with ``status``), then the stream closes."""
        inner = f"<status>{status}</status>" if status else ""
        harness.feed(f"<presence type='unavailable'>{inner}</presence>")
        await self.settle(harness)
        harness.feed("</stream:stream>")
        self.clients.remove(harness)  # the keyval write is queued: later reads wait for it


class HostTests(LastActivityCase):
    async def test_uptime_of_the_server(self):
        bob = await self.online("bob", "desk")
        self.clock.advance(123.7)
        self.assertEqual(seconds_and_status(await self.ask(bob, "get", LAST, to="localhost")),
                         (123, ""))

    async def test_feature_on_the_host(self):
        self.assertIn(ns.LAST, self.server.features.features())


class AccountTests(LastActivityCase):
    async def test_online_account_is_zero(self):
        await self.online("alice", "phone")
        bob = await self.online("bob", "desk")
        self.clock.advance(50)
        answer = await self.ask(bob, "get", LAST, to="alice@localhost")
        self.assertEqual(seconds_and_status(answer), (0, ""))

    async def test_seconds_since_logout_and_status(self):
        alice = await self.online("alice", "phone")
        self.clock.advance(10)
        await self.log_out(alice, "Heading home")
        self.clock.advance(903)
        bob = await self.online("bob", "desk")
        answer = await self.ask(bob, "get", LAST, to="alice@localhost")
        self.assertEqual(seconds_and_status(answer), (903, "Heading home"))

    async def test_a_dropped_connection_has_no_status(self):
        alice = await self.online("alice", "phone")
        alice.stream.connectionLost(None)
        self.clients.remove(alice)
        self.clock.advance(5)
        bob = await self.online("bob", "desk")
        self.assertEqual(seconds_and_status(await self.ask(bob, "get", LAST,
                                                           to="alice@localhost")), (5, ""))

    async def test_only_the_last_session_to_end_counts(self):
        phone = await self.online("alice", "phone")
        laptop = await self.online("alice", "laptop")
        await self.log_out(phone, "phone off")
        self.clock.advance(60)
        bob = await self.online("bob", "desk")
        self.assertEqual(seconds_and_status(await self.ask(bob, "get", LAST,
                                                           to="alice@localhost")), (0, ""))
        await self.log_out(laptop, "laptop off")
        self.clock.advance(7)
        self.assertEqual(seconds_and_status(await self.ask(bob, "get", LAST,
                                                           to="alice@localhost", id="q2")),
                         (7, "laptop off"))

    async def test_bound_but_unavailable_is_not_online(self):
        alice = await self.online("alice", "phone")
        await self.log_out(alice, "bye")
        harness = await self.client("alice", "silent")  # bound, never available
        self.clients.append(harness)
        self.clock.advance(30)
        bob = await self.online("bob", "desk")
        answer = await self.ask(bob, "get", LAST, to="alice@localhost")
        self.assertEqual(seconds_and_status(answer), (30, "bye"))

    async def test_the_account_asks_about_itself(self):
        alice = await self.online("alice", "phone")
        self.assertEqual(seconds_and_status(await self.ask(alice, "get", LAST)), (0, ""))
        self.assertEqual(seconds_and_status(await self.ask(alice, "get", LAST, id="q2",
                                                           to="alice@localhost")), (0, ""))

    async def test_no_logout_seen_yet(self):
        bob = await self.online("bob", "desk")
        answer = await self.ask(bob, "get", LAST, to="alice@localhost")
        self.assertEqual(error_condition(answer), "item-not-found")


class AccessTests(LastActivityCase):
    async def test_a_non_contact_is_forbidden(self):
        alice = await self.online("alice", "phone")
        await self.log_out(alice, "secret plans")
        mallory = await self.online("mallory", "lair")
        answer = await self.ask(mallory, "get", LAST, to="alice@localhost")
        self.assertEqual(error_condition(answer), "forbidden")
        self.assertNotIn("secret plans", answer.toXml())

    async def test_a_contact_alice_follows_but_who_does_not_follow_her_is_forbidden(self):
        from xmppd.im.subscription import SubState
        from xmppd.interfaces import IRoster
        from xmppd.jid import parse_jid

        roster = self.server.query(IRoster)
        await roster.set_state(parse_jid("alice@localhost"), parse_jid("mallory@localhost"),
                               SubState("to"))
        mallory = await self.online("mallory", "lair")
        answer = await self.ask(mallory, "get", LAST, to="alice@localhost")
        self.assertEqual(error_condition(answer), "forbidden")

    async def test_unknown_account_is_service_unavailable(self):
        bob = await self.online("bob", "desk")
        answer = await self.ask(bob, "get", LAST, to="nobody@localhost")
        self.assertEqual(error_condition(answer), "service-unavailable")


class ReloadTests(LastActivityCase):
    enabled = ("last_activity", "time")

    async def test_stop_leaves_nothing_and_the_kept_logout_survives_a_reload(self):
        from tests.unit.test_plugin_reload import shape

        alice = await self.online("alice", "phone")
        await self.log_out(alice, "gone fishing")
        loaded = shape(self.server)
        registry = self.fixture.registry
        for name in ("time", "last_activity"):
            registry.stop(name)
        self.assertNotIn(ns.LAST, self.server.features.features())
        self.assertNotIn(ns.TIME, self.server.features.features())
        for name in ("last_activity", "time"):
            await registry.start(name)
        self.assertEqual(shape(self.server), loaded)
        self.clock.advance(40)
        bob = await self.online("bob", "desk")
        self.assertEqual(seconds_and_status(await self.ask(bob, "get", LAST,
                                                           to="alice@localhost")),
                         (40, "gone fishing"))


class BatchedWriteTests(LastActivityCase):
    """Logouts wait in memory up to FLUSH_DELAY and are written together; answers read them
    from memory meanwhile; a deleted account's waiting entry is dropped; teardown writes."""

    def setUp(self):
        from xmppd.plugins.last_activity import last_activity

        self.plugin = last_activity
        return super().setUp()

    def stored(self, owner: str = "alice@localhost"):
        return self.server.storage.open_store("last_activity", "keyval").get(owner)

    def count_writes(self) -> list[str]:
        """The owners of each write, a batch's sorted (no single ``set`` is expected)."""
        written: list = []
        set_many = self.plugin.store.set_many
        self.plugin.store.set = lambda owner, value: written.append(("single set", owner))

        def counting(values):
            written.append(sorted(values))
            return set_many(values)

        self.plugin.store.set_many = counting
        return written

    async def test_logouts_are_written_together_after_the_delay(self):
        from xmppd.plugins.last_activity import FLUSH_DELAY

        written = self.count_writes()
        alice = await self.online("alice", "phone")
        mallory = await self.online("mallory", "lair")
        await self.log_out(alice, "first")
        await self.log_out(mallory)
        self.assertEqual(written, [])
        bob = await self.online("bob", "desk")
        self.clock.advance(1)
        self.assertEqual(seconds_and_status(await self.ask(bob, "get", LAST,
                                                           to="alice@localhost")),
                         (1, "first"))  # from memory
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual(written, [["alice@localhost", "mallory@localhost"]])  # one write
        self.assertEqual((await self.stored())["status"], "first")

    async def test_a_second_logout_before_the_write_replaces_the_first(self):
        from xmppd.plugins.last_activity import FLUSH_DELAY

        written = self.count_writes()
        await self.log_out(await self.online("alice", "phone"), "one")
        await self.log_out(await self.online("alice", "phone"), "two")
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual(written, [["alice@localhost"]])
        self.assertEqual((await self.stored())["status"], "two")

    async def test_a_deleted_account_is_not_written_back(self):
        from xmppd import events
        from xmppd.jid import parse_jid
        from xmppd.plugins.last_activity import FLUSH_DELAY

        written = self.count_writes()
        await self.log_out(await self.online("alice", "phone"), "bye")
        await self.server.storage.users.delete_user("alice", "localhost")
        self.server.emit(events.USER_DELETED, parse_jid("alice@localhost"))
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual(written, [])
        self.assertIsNone(await self.stored())

    async def test_teardown_writes_what_is_waiting(self):
        written = self.count_writes()
        await self.log_out(await self.online("alice", "phone"), "stopping")
        self.fixture.registry.stop("last_activity")
        self.assertEqual(written, [["alice@localhost"]])
        self.assertEqual((await self.stored())["status"], "stopping")
        self.assertEqual(self.clock.getDelayedCalls(), [])  # no flush left behind
