"""xmppdctl: argument handling in-process, database commands on the test reactor, one real run.

``main()`` ends in ``task.react``, which stops the global reactor for good, so in this process it
is only driven down the paths that finish before the reactor starts; the database commands go
through ``run()`` (what ``main`` hands to ``react``) and the whole program runs in a subprocess.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.internet import defer, reactor
from twisted.trial import unittest

from xmppd.admin import ctl
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


class RunTests(unittest.TestCase):
    def setUp(self):
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.config = load_config(write_config(self.folder))
        self.database = self.folder / "var" / "xmppd.sqlite"

    @defer.inlineCallbacks
    def ctl(self, *argv, config=None):
        args = ctl.build_parser().parse_args(["--config", "unused", *argv])
        out, err = io.StringIO(), io.StringIO()
        status = yield defer.Deferred.fromCoroutine(
            ctl.run(reactor, config or self.config, args, out, err)
        )
        return status, out.getvalue(), err.getvalue()

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
    def test_postgresql_is_refused_in_one_line(self):
        config = load_config(
            write_config(self.folder, '[storage]\nbackend = "postgresql"\ndsn = "dbname=x"\n')
        )
        status, out, err = yield self.ctl("users", config=config)
        self.assertEqual((status, out), (1, ""))
        assert_one_error_line(err, "postgresql backend arrives in a later release")


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
