"""A real PostgreSQL server for the tests, and the storage engines to run the contracts on.

``postgresql()`` starts one server per test process, from Debian's package (``postgresql``,
installed by ``.ci/run``), in a temporary directory: initdb, then postgres on a free loopback
port with its unix socket in that directory, as the ``postgres`` user when the tests run as
root (PostgreSQL refuses root), stopped and removed when the process exits. It never skips:
when the server cannot be started every test that needs it fails with the reason.

Each storage test gets a schema of its own (``fresh_dsn``), an integration test a database
of its own (``fresh_database``): nothing carries over from one test to the next.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from tests.integration.serverproc import free_port

SUPERUSER = "xmppd_test"
START_TIMEOUT = 60  # seconds; initdb and the first start on a busy 2-core machine


class PostgreSQLUnavailable(RuntimeError):
    """The test PostgreSQL server could not be started (the message says why)."""


def _bin_dir() -> str:
    """Where Debian's newest PostgreSQL keeps initdb and pg_ctl (they are not on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    raise PostgreSQLUnavailable(
        "PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")


def _run_as() -> list[str]:
    """The command prefix that drops root for PostgreSQL, nothing when we are not root."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise PostgreSQLUnavailable("running as root and no 'postgres' or 'nobody' user to run as")


class PostgreSQLServer:
    """One throw-away PostgreSQL cluster."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.prefix = _run_as()
        self.directory = tempfile.mkdtemp(prefix="xmppd-pg-")
        self.data = os.path.join(self.directory, "data")
        self.log = os.path.join(self.directory, "postgres.log")
        self.port = 0
        self._names = itertools.count(1)
        if self.prefix:
            user = pwd.getpwnam(self.prefix[2])
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        os.chmod(self.directory, 0o700)

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run([*self.prefix, *command], capture_output=True, text=True,
                                    timeout=START_TIMEOUT, cwd=self.directory)
        except (OSError, subprocess.SubprocessError) as error:
            raise PostgreSQLUnavailable(f"{' '.join(command)}: {error}") from None
        if result.returncode != 0:
            raise PostgreSQLUnavailable(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}"
                f"{result.stderr}\n{self._log_tail()}")
        return result

    def _log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as log:
                return log.read()[-3000:]
        except OSError:
            return ""

    def start(self) -> None:
        # No fsync: a test cluster need not survive a power cut, and it is much faster.
        self._run(os.path.join(self.bin, "initdb"), "-D", self.data, "-U", SUPERUSER,
                  "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        for attempt in range(3):  # a free port may be taken between the probe and the bind
            self.port = free_port()
            options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
                       " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                       " -c max_connections=200")
            try:
                self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log,
                          "-o", options, "-w", "-t", str(START_TIMEOUT), "start")
                return
            except PostgreSQLUnavailable:
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        if self.port:
            subprocess.run([*self.prefix, os.path.join(self.bin, "pg_ctl"), "-D", self.data,
                            "-m", "fast", "-w", "stop"], capture_output=True, timeout=60,
                           cwd=self.directory)
            self.port = 0
        shutil.rmtree(self.directory, ignore_errors=True)

    def dsn(self, dbname: str = "postgres", **options: str) -> str:
        extra = "".join(f" {key}={value}" for key, value in options.items())
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}{extra}"

    def execute(self, *statements: str, dbname: str = "postgres") -> None:
        """Run statements as the superuser, each in autocommit (CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def fresh_dsn(self) -> str:
        """A dsn whose connections see a new, empty schema first: one test's database."""
        schema = f"test_{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE SCHEMA {schema}")
        return self.dsn(options=f"'-c search_path={schema}'")

    def fresh_database(self) -> str:
        """A dsn of a new, empty database (for a server process, an xmppdctl)."""
        name = f"xmppd_{os.getpid()}_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)


_server: PostgreSQLServer | None = None
_failure: str | None = None


def postgresql() -> PostgreSQLServer:
    """The test process's PostgreSQL server, started on first use; PostgreSQLUnavailable
    (every time, with the first reason) when it cannot be."""
    global _server, _failure
    if _failure is not None:
        raise PostgreSQLUnavailable(_failure)
    if _server is None:
        try:
            import psycopg  # noqa: F401  (the engine needs it: say so here, once)
        except ImportError:
            _failure = "psycopg is not installed: pip install -e '.[test,postgresql]'"
            raise PostgreSQLUnavailable(_failure) from None
        server = PostgreSQLServer()
        atexit.register(server.stop)
        try:
            server.start()
        except (PostgreSQLUnavailable, OSError, subprocess.SubprocessError) as error:
            _failure = f"the test PostgreSQL server did not start: {error}"
            server.stop()
            raise PostgreSQLUnavailable(_failure) from None
        _server = server
    return _server


class OnPostgreSQL:
    """Mixed into a storage contract's TestCase: each test on a new schema of the test
    server (before the contract, so that its ``make_storage`` is the one used)."""

    def make_storage(self):
        from xmppd.storage.postgresql import PostgreSQLStorage

        return PostgreSQLStorage(postgresql().fresh_dsn())
