# -*- test-case-name: tests.unit.test_backup -*-
"""``xmppdctl backup FILE``: a consistent copy of the database, taken while the server runs.

The running server does the copy itself (the control socket's ``backup`` call), on its
database thread with SQLite's online backup API: the copy is one committed state, and the
server keeps serving while it is made. With the server stopped, xmppdctl opens the database
and does the same. Either way the copy is written to a temporary file next to FILE, checked
with ``PRAGMA integrity_check``, and only then linked into place, so FILE is never a half
copy; an existing FILE is kept unless ``--force``. The copy is owner-only (it holds SCRAM
keys), like the database.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from twisted.internet import defer, threads

from xmppd.admin import control
from xmppd.storage import open_storage

BACKUP_TIMEOUT = 3600.0  # seconds xmppdctl waits for the server's copy of a large database
FORCE = "force"  # the control call's second argument when an existing file may go


class BackupError(ValueError):
    """A backup that cannot be made; the message says why, for the operator."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``backup`` command's arguments, for xmppdctl's parser."""
    parser = commands.add_parser(
        "backup", help="write a consistent copy of the database to FILE (the running "
                       "server makes it without stopping; else xmppdctl does)")
    parser.add_argument("file", metavar="FILE", help="the copy to write (must not exist)")
    parser.add_argument("--force", action="store_true",
                        help="replace FILE if it exists")


async def backup_storage(storage, destination: str, force: bool = False) -> dict:
    """Copy ``storage`` into ``destination``; a dict saying what was written."""
    if not hasattr(storage, "backup"):
        raise BackupError("this storage backend cannot make backups (use its own tools)")
    target = Path(destination)
    if not target.is_absolute():
        raise BackupError(f"{destination}: give an absolute path")
    if target.is_dir():
        raise BackupError(f"{destination} is a directory: name the file to write")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    if target.exists() and not force:
        raise BackupError(f"{destination} exists: choose another name, or --force to replace it")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                                 dir=target.parent)
    except OSError as error:
        raise BackupError(f"cannot write in {target.parent}: {error.strerror or error}") from None
    os.close(descriptor)  # mkstemp made it 0600: SQLite keeps that mode
    try:
        pages = await storage.backup(temporary)
        summary = await threads.deferToThread(inspect_copy, temporary)
        _move_into_place(temporary, target, force)
    except OSError as error:
        raise BackupError(f"cannot write {destination}: {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return {"file": str(target), "bytes": target.stat().st_size, "pages": pages, **summary}


def inspect_copy(path: str) -> dict:
    """What a copy holds (accounts, schema version), after ``PRAGMA integrity_check``
    finds it sound; BackupError when it does not."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError(f"the copy failed its integrity check: {'; '.join(problems[:3])}")
        accounts = connection.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    finally:
        connection.close()
    return {"accounts": accounts, "schema_version": version}


def _move_into_place(temporary: str, target: Path, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the file appeared meanwhile: never overwritten
    except FileExistsError:
        raise BackupError(f"{target} exists: choose another name, or --force to replace "
                          "it") from None


def show(result: dict, out: TextIO) -> None:
    print(f"wrote {result['file']}: {result['bytes']} bytes, {result['accounts']} "
          f"account{'' if result['accounts'] == 1 else 's'}, integrity check ok", file=out)


async def run(reactor, config, args: argparse.Namespace, stdout: TextIO | None = None) -> dict:
    """Have the running server make the copy, or make it here when the server is stopped."""
    destination = os.path.abspath(args.file)
    force = FORCE if args.force else None
    path = config.server.control_socket
    if path is not None:
        try:
            result = await control.call(path, "backup", destination, force,
                                        timeout=BACKUP_TIMEOUT, reactor=reactor)
        except control.ServerNotRunning:
            result = None
        if result is not None:
            show(result, sys.stdout if stdout is None else stdout)
            return result
    result = await offline(reactor, config, destination, bool(force))
    show(result, sys.stdout if stdout is None else stdout)
    return result


async def offline(reactor, config, destination: str, force: bool) -> dict:
    """The copy with no server running: xmppdctl opens the database itself."""
    storage = open_storage(config, reactor=reactor)
    database = getattr(storage, "path", None)
    if database is not None and not os.path.exists(database):
        raise BackupError(f"there is no database at {database} to back up")
    await storage.open()
    try:
        return await backup_storage(storage, destination, force)
    finally:
        await storage.close()


def backup_call(storage, destination: str, force: str | None = None) -> defer.Deferred:
    """The control socket's ``backup`` call: ``force`` is "force" or None."""
    if force not in (None, FORCE):
        return defer.fail(BackupError(f"the second argument is {FORCE!r} or nothing"))
    return defer.ensureDeferred(backup_storage(storage, destination, force == FORCE))
