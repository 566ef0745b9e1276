"""xmppdctl: argument handling in-process, commands on the test reactor, one real run.

``main()`` ends in ``task.react``, which stops the global reactor for good, so in this process it
is only driven down the paths that finish before the reactor starts; the commands go through
``run()`` (what ``main`` hands to ``react``), against the database (no server) or a control
socket served in this process, and the whole program runs in a subprocess.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from twisted.internet import defer, reactor
from twisted.trial import unittest

from xmppd.admin import control, ctl
from xmppd.admin.api import AdminAPI
from xmppd.admin.commands import AdminCommand, AdminCommands
from xmppd.admin.passwords import hash_password, verify_password
from xmppd.config import PASSWORD_HASH_SHAPE, load_config
from xmppd.storage.auth import StorageAuthBackend
from xmppd.storage.sqlite import SQLiteStorage

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "tr0ub4dor&3 is a distinctive password"


def write_config(folder: Path, storage: str = "") -> Path:
    path = folder / "xmppd.toml"
    path.write_text(
        '[server]\ndomains = ["example.org", "example.net"]\ndata_dir = "var"\n' + storage
    )
    return path


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("xmppdctl: "), err
    for fragment in fragments:
        assert fragment in err


def assert_password_absent(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "xmppd.sqlite" for p in files), files
    for file in files:
        assert PASSWORD.encode() not in file.read_bytes(), file


# --------------------------------------------------------------------------- main(), no reactor


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_hash_password_prints_a_hash_the_manhole_accepts(capsys):
    assert ctl.main(["hash-password", PASSWORD]) == 0
    out, err = capsys.readouterr()
    hashed = out.strip()
    assert out == hashed + "\n" and err == ""
    assert PASSWORD_HASH_SHAPE.fullmatch(hashed)
    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + "!", hashed)


def test_hash_password_reads_one_line_from_a_pipe(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("piped secret\nnext line\n"))
    assert ctl.main(["hash-password"]) == 0
    assert verify_password("piped secret", capsys.readouterr().out.strip())


def test_a_terminal_is_asked_twice(monkeypatch, capsys):
    answers = iter(["typed secret", "typed secret", "first", "second"])
    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert ctl.main(["hash-password"]) == 0
    assert verify_password("typed secret", capsys.readouterr().out.strip())

    assert ctl.main(["hash-password"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, "do not match")


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "sha256$1000$c2FsdA==$aGFzaA==",  # another scheme
        "pbkdf2-sha256$0$c2FsdA==$aGFzaA==",  # no iterations
        "pbkdf2-sha256$１０$c2FsdA==$aGFzaA==",  # digits, but not ASCII ones
        "pbkdf2-sha256$1000$not base64!$aGFzaA==",
        "pbkdf2-sha256$1000$c2FsdA==",  # hash missing
        "the password itself",
    ],
)
def test_a_malformed_hash_is_an_error_not_a_refusal(hashed):
    with pytest.raises(ValueError) as error:
        verify_password("the password itself", hashed)
    assert "the password itself" not in str(error.value)


def test_each_hash_has_its_own_salt():
    first, second = hash_password(PASSWORD, iterations=1000), hash_password(PASSWORD, 1000)
    assert first != second
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    with pytest.raises(ValueError):
        hash_password("")


def test_ctrl_d_at_the_prompt_is_no_password(monkeypatch, capsys):
    def eof(prompt):
        raise EOFError

    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    monkeypatch.setattr("getpass.getpass", eof)
    assert ctl.main(["hash-password"]) == 1
    assert_one_error_line(capsys.readouterr().err, "no password")


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["adduser"], ["deluser", "a@example.org", "extra"], ["users", "a", "b"]],
)
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ctl.main(argv)
    assert exit_info.value.code == 2
    assert "usage: xmppdctl" in capsys.readouterr().err


def test_config_comes_from_the_environment_or_the_default(monkeypatch):
    monkeypatch.delenv("XMPPD_CONFIG", raising=False)
    assert ctl.build_parser().parse_args(["users"]).config == "etc/xmppd.toml"
    monkeypatch.setenv("XMPPD_CONFIG", "/srv/xmppd.toml")
    assert ctl.build_parser().parse_args(["users"]).config == "/srv/xmppd.toml"
    assert ctl.build_parser().parse_args(["--config", "x.toml", "users"]).config == "x.toml"


def test_an_unreadable_config_is_one_line(tmp_path, capsys):
    assert ctl.main(["--config", str(tmp_path / "missing.toml"), "users"]) == 1
    assert_one_error_line(capsys.readouterr().err, "missing.toml")
    (tmp_path / "bad.toml").write_text("[server]\ndomains = []\n")
    assert ctl.main(["--config", str(tmp_path / "bad.toml"), "users"]) == 1
    assert_one_error_line(capsys.readouterr().err, "domains")


def test_no_password_on_standard_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    config = write_config(tmp_path)
    assert ctl.main(["--config", str(config), "adduser", "alice@example.org"]) == 1
    assert_one_error_line(capsys.readouterr().err, "no password")
    assert not (tmp_path / "var").exists()


# --------------------------------------------------------------------------- run(), on the reactor


class CtlTestCase(unittest.TestCase):
    @defer.inlineCallbacks
    def ctl(self, *argv, config=None):
        args = ctl.build_parser().parse_args(["--config", "unused", *argv])
        out, err = io.StringIO(), io.StringIO()
        status = yield defer.Deferred.fromCoroutine(
            ctl.run(reactor, config or self.config, args, out, err)
        )
        return status, out.getvalue(), err.getvalue()


class RunTests(CtlTestCase):
    """No server runs: the account commands use the database, the others say so."""

    def setUp(self):
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.config = load_config(write_config(self.folder))
        self.database = self.folder / "var" / "xmppd.sqlite"

    @defer.inlineCallbacks
    def password_works(self, localpart, domain, password):
        storage = SQLiteStorage(str(self.database))
        yield storage.open()
        try:
            works = yield StorageAuthBackend(storage.users).check_password(
                localpart, domain, password
            )
        finally:
            yield storage.close()
        return works

    @defer.inlineCallbacks
    def test_an_account_from_creation_to_deletion(self):
        self.assertEqual(
            (yield self.ctl("adduser", "Alice@Example.org", PASSWORD)),
            (0, "created alice@example.org\n", ""),
        )
        yield self.ctl("adduser", "bob@example.net", PASSWORD)
        self.assertEqual(
            (yield self.ctl("users")), (0, "alice@example.org\nbob@example.net\n", "")
        )
        self.assertEqual((yield self.ctl("users", "example.net")), (0, "bob@example.net\n", ""))
        self.assertTrue((yield self.password_works("alice", "example.org", PASSWORD)))

        self.assertEqual(
            (yield self.ctl("passwd", "alice@example.org", "a new one")),
            (0, "password changed for alice@example.org\n", ""),
        )
        self.assertFalse((yield self.password_works("alice", "example.org", PASSWORD)))
        self.assertTrue((yield self.password_works("alice", "example.org", "a new one")))

        self.assertEqual(
            (yield self.ctl("deluser", "alice@example.org")), (0, "deleted alice@example.org\n", "")
        )
        self.assertEqual((yield self.ctl("users")), (0, "bob@example.net\n", ""))

    @defer.inlineCallbacks
    def test_a_bad_jid_fails_before_the_database_is_touched(self):
        for jid in ("alice@@example.org", "alice@example.org/phone", "example.org"):
            status, out, err = yield self.ctl("adduser", jid, PASSWORD)
            self.assertEqual((status, out), (1, ""))
            assert_one_error_line(err, jid)
        self.assertFalse(self.database.exists())

    @defer.inlineCallbacks
    def test_an_unknown_domain_is_refused(self):
        status, out, err = yield self.ctl("adduser", "alice@example.com", PASSWORD)
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "example.com is not a domain of this server")

    @defer.inlineCallbacks
    def test_a_duplicate_user_is_refused_and_keeps_its_password(self):
        yield self.ctl("adduser", "alice@example.org", PASSWORD)
        status, out, err = yield self.ctl("adduser", "alice@example.org", "another")
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "alice@example.org already exists")
        self.assertTrue((yield self.password_works("alice", "example.org", PASSWORD)))

    @defer.inlineCallbacks
    def test_changing_an_unknown_account_is_refused(self):
        for argv in (("deluser", "carol@example.org"), ("passwd", "carol@example.org", "x")):
            status, out, err = yield self.ctl(*argv)
            self.assertEqual((status, out), (1, ""))
            assert_one_error_line(err, "no such user: carol@example.org")

    @defer.inlineCallbacks
    def test_a_bad_password_is_refused(self):
        status, out, err = yield self.ctl("adduser", "alice@example.org", "")
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "password")

    @defer.inlineCallbacks
    def test_works_while_the_server_has_the_database_open(self):
        server = SQLiteStorage(str(self.database))
        yield server.open()
        self.addCleanup(server.close)
        self.assertEqual((yield self.ctl("adduser", "alice@example.org", PASSWORD))[0], 0)
        self.assertTrue((yield server.users.user_exists("alice", "example.org")))

    @defer.inlineCallbacks
    def test_the_password_is_not_in_the_database_files(self):
        yield self.ctl("adduser", "alice@example.org", PASSWORD)
        assert_password_absent(self.folder)

    @defer.inlineCallbacks
    def test_an_unreachable_postgresql_is_one_line(self):
        dsn = "host=127.0.0.1 port=1 dbname=x password=sekrit"
        config = load_config(write_config(
            self.folder, f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'))
        status, out, err = yield self.ctl("users", config=config)
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "postgresql://127.0.0.1:1/x: cannot connect: ")
        self.assertNotIn("sekrit", err)


    @defer.inlineCallbacks
    def test_server_commands_say_the_server_is_not_running(self):
        expected = (f"xmppdctl: xmppd is not running (no control socket at "
                    f"{self.folder.resolve() / 'var' / 'control.sock'})\n")
        for argv in (["sessions"], ["kick", "alice@example.org"], ["s2s"],
                     ["s2s-close", "example.com"]):
            self.assertEqual((yield self.ctl(*argv)), (1, "", expected))
        self.assertFalse(self.database.exists())

    @defer.inlineCallbacks
    def test_with_the_control_socket_off_only_the_database_commands_work(self):
        config = load_config(write_config(self.folder, 'control_socket = ""\n'))
        self.assertIsNone(config.server.control_socket)
        self.assertEqual((yield self.ctl("adduser", "alice@example.org", "x", config=config)),
                         (0, "created alice@example.org\n", ""))
        status, out, err = yield self.ctl("sessions", config=config)
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, 'control socket is turned off ([server] control_socket = "")')


class LiveAdmin(AdminAPI):
    """The real account commands on in-memory SQLite, with canned sessions and s2s links."""

    def __init__(self, storage) -> None:
        super().__init__(storage, ["example.org", "example.net"])
        self.sessions = [
            {"jid": "alice@example.org/phone", "peer": "127.0.0.1:40000", "secure": True,
             "mechanism": "SCRAM-SHA-256-PLUS", "since": 1_700_000_000.0},
            {"jid": "bob@example.net/laptop", "peer": "127.0.0.1:40001", "secure": False,
             "mechanism": "PLAIN", "since": 1_700_000_060.0},
        ]
        self.closed_links: list[str] = []

    def delete_user(self, jid):
        # As with the real server: the account's sessions end after it is deleted.
        return super().delete_user(jid).addCallback(lambda _: self.kick(jid.lower()))

    def list_sessions(self):
        return list(self.sessions)

    def kick(self, jid):
        gone = [s for s in self.sessions if jid in (s["jid"], s["jid"].split("/")[0])]
        self.sessions = [s for s in self.sessions if s not in gone]
        return len(gone)

    def list_s2s(self):
        return []

    def close_s2s(self, domain):
        self.closed_links.append(domain)
        return 2 if domain == "b.example" else 0


class LiveTests(CtlTestCase):
    """A server runs (its control socket served in this process): commands go to it."""

    @defer.inlineCallbacks
    def setUp(self):
        self.folder = Path(tempfile.mkdtemp(prefix="xmppdctl-"))  # short socket paths
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)
        self.config = load_config(write_config(self.folder))
        self.storage = SQLiteStorage(":memory:")
        yield self.storage.open()
        self.addCleanup(self.storage.close)
        self.admin = LiveAdmin(self.storage)
        service = control.make_control_service(self.config.server.control_socket, self.admin,
                                               reactor)
        service.startService()
        self.addCleanup(service.stopService)

    @defer.inlineCallbacks
    def test_account_commands_go_to_the_running_server(self):
        self.assertEqual((yield self.ctl("adduser", "Alice@Example.org", PASSWORD)),
                         (0, "created alice@example.org\n", ""))
        self.assertEqual((yield self.ctl("users")), (0, "alice@example.org\n", ""))
        self.assertEqual((yield self.storage.users.list_users(None)), ["alice@example.org"])
        self.assertEqual((yield self.ctl("passwd", "alice@example.org", "new")),
                         (0, "password changed for alice@example.org\n", ""))
        self.assertEqual((yield self.ctl("deluser", "alice@example.org")),
                         (0, "deleted alice@example.org, ended 1 session\n", ""))
        self.assertEqual([s["jid"] for s in self.admin.sessions], ["bob@example.net/laptop"])
        self.assertEqual((yield self.storage.users.list_users(None)), [])
        # The server's database was used, not a file of xmppdctl's own.
        self.assertFalse((self.folder / "var" / "xmppd.sqlite").exists())

    @defer.inlineCallbacks
    def test_the_servers_errors_are_one_line(self):
        yield self.ctl("adduser", "alice@example.org", PASSWORD)
        status, out, err = yield self.ctl("adduser", "alice@example.org", "other")
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "user alice@example.org already exists")
        status, out, err = yield self.ctl("deluser", "carol@example.org")
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "no such user: carol@example.org")

    @defer.inlineCallbacks
    def test_sessions_are_listed_as_a_table(self):
        def local(seconds):
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))

        status, out, err = yield self.ctl("sessions")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.splitlines(), [
            "JID                      PEER             SECURE  MECHANISM           SINCE",
            f"alice@example.org/phone  127.0.0.1:40000  yes     SCRAM-SHA-256-PLUS  "
            f"{local(1_700_000_000)}",
            f"bob@example.net/laptop   127.0.0.1:40001  no      PLAIN               "
            f"{local(1_700_000_060)}",
        ])

    @defer.inlineCallbacks
    def test_kick_ends_sessions_and_says_when_there_is_none(self):
        self.assertEqual((yield self.ctl("kick", "alice@example.org/phone")),
                         (0, "closed 1 session of alice@example.org/phone\n", ""))
        status, out, err = yield self.ctl("kick", "alice@example.org/phone")
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "no session of alice@example.org/phone")
        self.assertEqual((yield self.ctl("sessions"))[1].count("\n"), 2)  # header + bob

    @defer.inlineCallbacks
    def test_s2s_links_are_listed_and_closed(self):
        self.assertEqual((yield self.ctl("s2s")), (0, "", ""))
        self.assertEqual((yield self.ctl("s2s-close", "b.example")),
                         (0, "closed 2 s2s streams with b.example\n", ""))
        status, out, err = yield self.ctl("s2s-close", "c.example")
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "no s2s link with c.example")
        self.assertEqual(self.admin.closed_links, ["b.example", "c.example"])

    @defer.inlineCallbacks
    def test_a_new_command_is_one_row_even_with_two_words(self):
        row = ctl.Command("close_s2s", True, ("domain",), "close a peer's links")
        self.patch(ctl, "COMMANDS", {**ctl.COMMANDS, "peer close": row})
        args = ctl.build_parser().parse_args(["peer", "close", "b.example"])
        self.assertEqual((args.command_name, args.domain), ("peer close", "b.example"))
        self.assertEqual((yield self.ctl("peer", "close", "b.example")), (0, "2\n", ""))


class PluginCommandTests(CtlTestCase):
    """Commands a plugin registers (xmppd.admin.commands) are listed and called by their
    words over the control socket, with nothing about them in xmppdctl itself."""

    @defer.inlineCallbacks
    def setUp(self):
        self.folder = Path(tempfile.mkdtemp(prefix="xmppdctl-"))  # short socket paths
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)
        self.config = load_config(write_config(self.folder))
        self.commands = AdminCommands()
        self.called = []
        self.remove = self.commands.add(AdminCommand(
            "peer greet", lambda domain, how="hello": self.called.append((domain, how)) or [
                {"domain": domain, "said": how}], "greet a peer", ("DOMAIN", "HOW?"), "greeter"))
        service = control.make_control_service(self.config.server.control_socket,
                                               LiveAdmin(None), reactor, self.commands)
        service.startService()
        self.addCleanup(service.stopService)
        yield None

    @defer.inlineCallbacks
    def plugin_ctl(self, *words):
        out, err = io.StringIO(), io.StringIO()
        status = yield defer.Deferred.fromCoroutine(
            ctl.run_plugin_command(reactor, self.config, list(words), out, err))
        return status, out.getvalue(), err.getvalue()

    def test_words_that_name_no_core_command_are_the_servers_to_resolve(self):
        self.assertEqual(ctl.plugin_words(["--config", "x.toml", "peer", "greet", "b"]),
                         ("x.toml", ["peer", "greet", "b"]))
        self.assertIsNone(ctl.plugin_words(["users"]))
        self.assertIsNone(ctl.plugin_words(["--help"]))

    @defer.inlineCallbacks
    def test_a_plugins_command_is_called_listed_and_explained(self):
        self.assertEqual((yield self.plugin_ctl("peer", "greet", "b.example")),
                         (0, "DOMAIN     SAID\nb.example  hello\n", ""))
        self.assertEqual(self.called, [("b.example", "hello")])
        status, out, _ = yield self.ctl("commands")
        self.assertEqual((status, out.splitlines()[1].split()[:2]), (0, ["peer", "greet"]))
        status, out, _ = yield self.plugin_ctl("peer", "--help")
        self.assertEqual(out, "xmppdctl peer greet DOMAIN [HOW]\n    greet a peer "
                              "(plugin greeter)\n")

    @defer.inlineCallbacks
    def test_bad_words_and_a_gone_plugin_are_one_line_errors(self):
        status, out, err = yield self.plugin_ctl("peer", "greet")
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "usage: peer greet DOMAIN [HOW]")
        status, _, err = yield self.plugin_ctl("peer", "wave")
        assert_one_error_line(err, "unknown command 'peer wave'; peer commands: peer greet")
        self.remove()  # the plugin stops: its command is gone
        status, _, err = yield self.plugin_ctl("peer", "greet", "b.example")
        self.assertEqual(status, 1)
        assert_one_error_line(err, "'peer greet' is a command of the greeter plugin, which is "
                                   "not loaded")
        status, _, err = yield self.plugin_ctl("frobnicate")
        assert_one_error_line(err, "unknown command 'frobnicate': no loaded plugin provides it")


class StaleSocketTests(CtlTestCase):
    @defer.inlineCallbacks
    def test_a_socket_left_by_a_dead_server_means_the_database_is_used(self):
        folder = Path(tempfile.mkdtemp(prefix="xmppdctl-"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        self.config = load_config(write_config(folder))
        path = self.config.server.control_socket
        path.parent.mkdir()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
            dead.bind(str(path))  # and never listens, as after a SIGKILL
        self.assertEqual((yield self.ctl("adduser", "alice@example.org", PASSWORD)),
                         (0, "created alice@example.org\n", ""))
        self.assertTrue((folder / "var" / "xmppd.sqlite").exists())
        self.assertEqual((yield self.ctl("sessions")),
                         (1, "", f"xmppdctl: xmppd is not running (no control socket at "
                                 f"{path})\n"))


# --------------------------------------------------------------------------- the real program


def xmppdctl(*argv: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    venv_python = REPO / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    return subprocess.run(
        [python, "-m", "xmppd.admin.ctl", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=120,
    )


def test_the_command_as_a_subprocess(tmp_path):
    config = str(write_config(tmp_path))
    created = xmppdctl("--config", config, "adduser", "alice@example.org", stdin=PASSWORD + "\n")
    assert (created.returncode, created.stdout, created.stderr) == (
        0, "created alice@example.org\n", ""
    )
    listed = xmppdctl("users", env={"XMPPD_CONFIG": config})
    assert (listed.returncode, listed.stdout) == (0, "alice@example.org\n")

    duplicate = xmppdctl("--config", config, "adduser", "alice@example.org", "x")
    assert duplicate.returncode == 1 and duplicate.stdout == ""
    assert_one_error_line(duplicate.stderr, "already exists")

    foreign = xmppdctl("--config", config, "adduser", "bob@example.com", "x")
    assert foreign.returncode == 1
    assert_one_error_line(foreign.stderr, "example.com is not a domain of this server")

    usage = xmppdctl("--config", config, "adduser")
    assert usage.returncode == 2 and "usage: xmppdctl" in usage.stderr
    assert_password_absent(tmp_path)
