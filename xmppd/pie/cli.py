# -*- test-case-name: tests.unit.test_xep0227 -*-
"""``xmppdctl export FILE`` and ``xmppdctl import PATH...``: XEP-0227 files in and out.

Export reads the database directly (it may run beside the server: each read sees committed
data). Import writes it directly and so wants the server stopped: the running server keeps
rosters and other data cached, and would not see what appeared under it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from xmppd.admin import control
from xmppd.pie.model import PieError
from xmppd.pie.reader import read_paths
from xmppd.pie.transfer import Exporter, Importer
from xmppd.pie.writer import write_document
from xmppd.storage import open_storage

COMMANDS = ("export", "import")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The export and import commands' arguments, for xmppdctl's parser."""
    export = commands.add_parser(
        "export", help="write every account and its data to a XEP-0227 file (it holds SCRAM "
                       "keys: keep it private)")
    export.add_argument("file", metavar="FILE", help="the file to write (must not exist)")
    export.add_argument("--domain", metavar="DOMAIN", help="only the accounts of DOMAIN")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    imported = commands.add_parser(
        "import", help="create accounts with their data from XEP-0227 files (Prosody's "
                       "prosody-migrator, ejabberd's export_piefxis, our export); the server "
                       "must be stopped")
    imported.add_argument("paths", nargs="+", metavar="PATH",
                          help="a XEP-0227 file, or a directory of them")
    imported.add_argument("--replace", action="store_true",
                          help="replace accounts that exist, with all their data (else they "
                               "are skipped)")


async def run(reactor, config, args: argparse.Namespace, stdout: TextIO | None = None) -> None:
    out = sys.stdout if stdout is None else stdout
    if args.command == "export":
        await export(reactor, config, args.file, args.domain, args.force, out)
    else:
        await import_paths(reactor, config, args.paths, args.replace, out)


async def export(reactor, config, file: str, domain: str | None, force: bool,
                 out: TextIO) -> int:
    """Write the export; how many accounts it holds."""
    target = Path(os.path.abspath(file))
    if target.exists() and not force:
        raise ValueError(f"{file} exists: choose another name, or --force to replace it")
    if domain is not None and domain not in config.server.domains:
        raise ValueError(f"{domain} is not a domain of this server")
    storage = await _open(reactor, config)
    try:
        exporter = Exporter(storage)
        accounts = [await exporter.export_account(jid)
                    for jid in await exporter.accounts(domain)]
    finally:
        await storage.close()
    hosts: dict[str, list] = {}
    for account in accounts:
        hosts.setdefault(account.host, []).append(account)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:  # mkstemp: owner-only, as SCRAM keys want
            count = write_document(stream, sorted(hosts.items()))
        if force:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    print(f"wrote {target}: {count} account{'' if count == 1 else 's'}", file=out)
    return count


async def import_paths(reactor, config, paths: list[str], replace: bool, out: TextIO) -> int:
    """Import every account of ``paths``; how many were imported. Every file is read before
    anything is written, so a broken file changes nothing."""
    socket = config.server.control_socket
    if socket is not None and control.server_running(socket):
        raise ValueError("xmppd is running: stop it before importing (it caches rosters and "
                         "other data, and would not see the imported accounts)")
    try:
        accounts = list(read_paths(paths))
    except PieError as error:
        raise ValueError(str(error)) from None
    storage = await _open(reactor, config)
    imported = 0
    try:
        importer = Importer(storage, config.server.domains, replace,
                            say=lambda line: print(line, file=out))
        for account in accounts:
            imported += await importer.import_account(account)
    finally:
        await storage.close()
    skipped = len(accounts) - imported
    print(f"imported {imported} account{'' if imported == 1 else 's'}, skipped {skipped}",
          file=out)
    return imported


async def _open(reactor, config):
    storage = open_storage(config, reactor=reactor)
    await storage.open()
    return storage
