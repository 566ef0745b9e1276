# -*- test-case-name: tests.integration.test_postgresql -*-
"""``xmppdctl migrate-storage --from CONFIG --to CONFIG``: move the whole database from the
storage one config names to the storage another names (SQLite to PostgreSQL, or back).

Both configs are read and checked first; the two must name different databases, and no
server may be running on either (each config's control socket is probed): a server writing
to the source while it is copied would lose what it wrote, one on the destination would
write into a half copy. Both databases are opened (so migrated to this version's schema),
the destination must be empty, and every table is copied and counted
(xmppd.storage.copy). The source is left as it was: switch the server's config to the
destination's ``[storage]`` and start it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from xmppd.admin import control
from xmppd.config import load_config
from xmppd.storage import open_storage
from xmppd.storage.copy import copy_storage

COMMAND = "migrate-storage"


class MigrateError(ValueError):
    """The move cannot be made; the message says why, for the operator."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The command's arguments, for xmppdctl's parser."""
    parser = commands.add_parser(
        COMMAND, help="copy the whole database from one config's [storage] to another's "
                      "(e.g. SQLite to PostgreSQL), every table counted; servers stopped")
    parser.add_argument("--from", dest="source", required=True, metavar="CONFIG",
                        help="the config whose [storage] is copied")
    parser.add_argument("--to", dest="destination", required=True, metavar="CONFIG",
                        help="the config whose [storage] receives it (an empty database)")


def where(config) -> str:
    """The database a config names, for messages (a dsn without its password)."""
    if config.storage.backend == "sqlite":
        return f"sqlite {os.fspath(config.storage.path)}"
    from xmppd.storage.postgresql import describe_dsn

    return describe_dsn(config.storage.dsn)


def _refuse_running(config, role: str) -> None:
    socket = config.server.control_socket
    if socket is not None and control.server_running(socket):
        raise MigrateError(f"xmppd is running on the {role} ({where(config)}, control socket "
                           f"{socket}): stop it first")


async def run(reactor, config, args: argparse.Namespace, stdout: TextIO | None = None) -> dict:
    """Copy; ``config`` is unused (the command names its two configs itself)."""
    out = sys.stdout if stdout is None else stdout
    source_config, destination_config = load_config(args.source), load_config(args.destination)
    if where(source_config) == where(destination_config):
        raise MigrateError(f"--from and --to name the same database ({where(source_config)})")
    _refuse_running(source_config, "source")
    _refuse_running(destination_config, "destination")
    if source_config.storage.backend == "sqlite" and not os.path.exists(
            source_config.storage.path):
        raise MigrateError(f"there is no database at {source_config.storage.path} to copy")
    source = open_storage(source_config, reactor=reactor)
    destination = open_storage(destination_config, reactor=reactor)
    await source.open()
    try:
        await destination.open()
        try:
            copied = await copy_storage(source, destination,
                                        say=lambda line: print(line, file=out))
        finally:
            await destination.close()
    finally:
        await source.close()
    rows = sum(copied.values())
    print(f"copied {rows} rows in {len(copied)} tables from {where(source_config)} to "
          f"{where(destination_config)}; counts verified", file=out)
    return copied
