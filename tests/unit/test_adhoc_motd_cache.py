"""The message of the day is read from storage once per domain, not at every login; the
set-motd and delete-motd commands keep the remembered copy true, a read that races a write
does not bring the old one back, and a failed write makes the next login read storage."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from xmppd import ns
from xmppd.adhoc.admin import AdminCommands
from xmppd.adhoc.commands import Request
from xmppd.jid import parse_jid

HOST = "localhost"
REQUEST = Request(parse_jid("admin@localhost/desk"), parse_jid(HOST))


class CountingStore:
    """A keyval store in memory that counts reads; ``hold`` keeps the next reads waiting."""

    def __init__(self) -> None:
        self.values: dict[str, dict] = {}
        self.reads = 0
        self.hold = False
        self.held: list[tuple[str, defer.Deferred]] = []
        self.fail_writes = False

    def get(self, owner: str) -> defer.Deferred:
        self.reads += 1
        if self.hold:
            d = defer.Deferred()
            self.held.append((owner, d))
            return d
        return defer.succeed(self.values.get(owner))

    def set(self, owner: str, value: dict) -> defer.Deferred:
        if self.fail_writes:
            return defer.fail(RuntimeError("disk full"))
        self.values[owner] = value
        return defer.succeed(None)

    def delete(self, owner: str) -> defer.Deferred:
        return defer.succeed(self.values.pop(owner, None) is not None)


class MotdForm:
    """What set-motd reads of its submitted form."""

    def __init__(self, body: str, subject: str = "") -> None:
        self.body, self.subject = body, subject

    def get_values(self, var: str) -> list[str]:
        assert var == "motd"
        return self.body.split("\n")

    def get_text(self, var: str) -> str:
        assert var == "subject"
        return self.subject


class Session:
    def __init__(self, name: str) -> None:
        self.jid = parse_jid(f"{name}@{HOST}/phone")


class MotdCacheTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = CountingStore()
        self.sent: list = []
        self.commands = AdminCommands(None, None, self.sent.append, self.store,
                                      admins=lambda: [], disabled=lambda: None)

    def login(self, name: str = "alice") -> list[str]:
        """The bodies of the headlines one login got."""
        self.sent.clear()
        self.successResultOf(self.commands.on_available(Session(name)))
        return [str(next(message.elements(ns.CLIENT, "body"))) for message in self.sent]

    def set_motd(self, body: str) -> None:
        self.successResultOf(self.commands.set_motd(REQUEST, MotdForm(body)))

    def test_read_once_per_domain(self):
        self.store.values[HOST] = {"subject": "News", "body": "hello"}
        self.assertEqual(self.login("alice"), ["hello"])
        self.assertEqual(self.login("bob"), ["hello"])
        self.assertEqual(self.store.reads, 1)

    def test_no_motd_is_remembered_too(self):
        self.assertEqual(self.login(), [])
        self.assertEqual(self.login(), [])
        self.assertEqual(self.store.reads, 1)

    def test_set_and_delete_change_what_logins_get_without_a_read(self):
        self.assertEqual(self.login(), [])
        self.set_motd("maintenance at noon")
        self.assertEqual(self.login(), ["maintenance at noon"])
        self.successResultOf(self.commands.delete_motd(REQUEST, None))
        self.assertEqual(self.login(), [])
        self.assertEqual(self.store.reads, 1)
        self.assertNotIn(HOST, self.store.values)

    def test_a_read_that_races_a_write_does_not_bring_the_old_one_back(self):
        self.store.values[HOST] = {"subject": "Old", "body": "old"}
        self.store.hold = True
        waiting = self.commands.on_available(Session("alice"))
        self.store.hold = False
        self.set_motd("new")
        (owner, d), = self.store.held
        d.callback({"subject": "Old", "body": "old"})  # what the read saw before the write
        self.successResultOf(waiting)
        self.assertEqual(self.login("bob"), ["new"])

    def test_a_failed_write_makes_the_next_login_read_storage(self):
        self.store.values[HOST] = {"subject": "Kept", "body": "kept"}
        self.assertEqual(self.login(), ["kept"])
        self.store.fail_writes = True
        self.failureResultOf(self.commands.set_motd(REQUEST, MotdForm("lost")), RuntimeError)
        self.assertEqual(self.login(), ["kept"])
        self.assertEqual(self.store.reads, 2)
