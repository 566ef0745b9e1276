"""xmppd.admin.backup on real SQLite: the copy, its checks, and the files it will not touch;
through the control socket's dispatcher as xmppdctl calls it."""

from __future__ import annotations

import json
import os
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from xmppd.admin.api import AdminAPI
from xmppd.admin.backup import BackupError, backup_storage
from xmppd.admin.control import AdminDispatcher
from xmppd.storage.sqlite import SQLiteStorage


class BackupTests(unittest.TestCase):
    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.storage = SQLiteStorage(os.path.join(self.directory, "xmppd.sqlite"))
        self.api = AdminAPI(self.storage, ["example.org"])
        d = self.storage.open()
        d.addCallback(lambda _: self.api.add_user("alice@example.org", "pw-of-alice"))
        return d

    def tearDown(self):
        return self.storage.close()

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def backup(self, destination: str, force: bool = False) -> defer.Deferred:
        return defer.ensureDeferred(backup_storage(self.storage, destination, force))

    @defer.inlineCallbacks
    def test_copy_is_checked_and_counted(self):
        result = yield self.backup(self.path("copy.sqlite"))
        self.assertEqual((result["file"], result["accounts"]),
                         (self.path("copy.sqlite"), 1))
        with sqlite3.connect(self.path("copy.sqlite")) as copy:
            self.assertEqual(copy.execute("SELECT localpart FROM users").fetchall(),
                             [("alice",)])
        self.assertEqual(os.stat(self.path("copy.sqlite")).st_mode & 0o777, 0o600)
        self.assertEqual(sorted(os.listdir(self.directory)),
                         ["copy.sqlite", "xmppd.sqlite", "xmppd.sqlite-shm",
                          "xmppd.sqlite-wal"])  # nothing temporary left

    @defer.inlineCallbacks
    def test_an_existing_file_is_kept_unless_forced(self):
        with open(self.path("taken"), "w") as taken:
            taken.write("precious")
        with self.assertRaisesRegex(BackupError, "exists: choose another name"):
            yield self.backup(self.path("taken"))
        with open(self.path("taken")) as taken:
            self.assertEqual(taken.read(), "precious")
        yield self.backup(self.path("taken"), force=True)
        with sqlite3.connect(self.path("taken")) as copy:
            self.assertEqual(copy.execute("SELECT COUNT(*) FROM users").fetchone(), (1,))

    @defer.inlineCallbacks
    def test_bad_destinations_are_refused_with_the_reason(self):
        for destination, reason in ((self.directory, "is a directory"),
                                    ("relative.sqlite", "absolute path"),
                                    (self.path("no/such/dir/x.sqlite"), "is not a directory")):
            with self.assertRaisesRegex(BackupError, reason):
                yield self.backup(destination)

    @defer.inlineCallbacks
    def test_a_directory_nobody_may_write_is_an_operator_error(self):
        # /proc takes no new files, not even root's: the refusal is the operator's to fix
        with self.assertRaisesRegex(BackupError, "cannot write in /proc: "):
            yield self.backup("/proc/xmppd-backup-test.sqlite")

    @defer.inlineCallbacks
    def test_the_control_call(self):
        dispatcher = AdminDispatcher(self.api)
        line = json.dumps({"id": 7, "call": "backup", "args": [self.path("c.sqlite"), None]})
        answer = json.loads((yield dispatcher.answer(line.encode())))
        self.assertEqual((answer["ok"], answer["result"]["accounts"]), (True, 1))
        again = json.loads((yield dispatcher.answer(line.encode())))
        self.assertEqual(again["ok"], False)
        self.assertIn("exists", again["error"])
        line = json.dumps({"id": 8, "call": "backup", "args": [self.path("c.sqlite"), "yes"]})
        odd = json.loads((yield dispatcher.answer(line.encode())))
        self.assertEqual((odd["ok"], odd["error"]),
                         (False, "the second argument is 'force' or nothing"))
