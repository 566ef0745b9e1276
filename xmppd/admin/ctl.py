# -*- test-case-name: tests.unit.test_ctl -*-
"""xmppdctl: manage accounts from the shell, whether the server is running or not.

It opens the database itself (WAL and a busy timeout make that safe beside a running server)
and goes through the same AdminAPI as the manhole. Errors are one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TextIO

from twisted.internet import task

from xmppd.admin.api import AdminAPI
from xmppd.admin.passwords import hash_password
from xmppd.config import load_config
from xmppd.storage import open_storage

PROG = "xmppdctl"
DEFAULT_CONFIG = "etc/xmppd.toml"
CONFIG_VARIABLE = "XMPPD_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Manage an xmppd server's accounts.")
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get(CONFIG_VARIABLE, DEFAULT_CONFIG),
        help=f"the server's TOML config (default: ${CONFIG_VARIABLE} or {DEFAULT_CONFIG})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    password_help = (
        "asked for when omitted (twice on a terminal, else one line of standard input); "
        "a password on the command line is visible to other local users"
    )

    adduser = commands.add_parser("adduser", help="create an account")
    adduser.add_argument("jid", metavar="USER@DOMAIN")
    adduser.add_argument("password", nargs="?", metavar="PASSWORD", help=password_help)

    deluser = commands.add_parser("deluser", help="delete an account and all its data")
    deluser.add_argument("jid", metavar="USER@DOMAIN")

    passwd = commands.add_parser("passwd", help="set an account's password")
    passwd.add_argument("jid", metavar="USER@DOMAIN")
    passwd.add_argument("password", nargs="?", metavar="PASSWORD", help=password_help)

    users = commands.add_parser("users", help="list the accounts, of one domain or of all")
    users.add_argument("domain", nargs="?", metavar="DOMAIN")

    hashpw = commands.add_parser(
        "hash-password", help="print a hash for the config's manhole.password_hash"
    )
    hashpw.add_argument("password", nargs="?", metavar="PASSWORD", help=password_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (argparse exits 2 itself on bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "hash-password":
            print(hash_password(read_password(args.password)))
            return 0
        config = load_config(args.config)
        if "password" in args:
            args.password = read_password(args.password)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as error:
        return report(error)
    try:
        task.react(_react_main, (config, args))
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0  # not reached: react always exits


def read_password(given: str | None, stdin: TextIO | None = None, prompt=None) -> str:
    """``given``, or typed twice at a terminal (``prompt``: getpass), or a pipe's first line."""
    if given is not None:
        return given
    stdin = sys.stdin if stdin is None else stdin
    if stdin.isatty():
        prompt = getpass.getpass if prompt is None else prompt
        try:
            first = prompt("Password: ")
            again = prompt("Password again: ")
        except EOFError:
            raise ValueError("no password given") from None
        if again != first:
            raise ValueError("the passwords do not match")
        return first
    line = stdin.readline()
    if not line:
        raise ValueError("no password given (none on the command line or standard input)")
    return line.rstrip("\r\n")


async def run(
    reactor, config, args, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Carry out a database command on the running ``reactor``; returns the exit status."""
    stdout = sys.stdout if stdout is None else stdout
    try:
        storage = open_storage(config, reactor=reactor)
        api = AdminAPI(storage, config.server.domains)
        if "jid" in args:
            api.account(args.jid)  # a typo fails here, before the database is touched
    except Exception as error:
        return report(error, stderr)
    try:
        await storage.open()
        await COMMANDS[args.command](api, args, stdout)
    except Exception as error:
        return report(error, stderr)
    finally:
        await storage.close()
    return 0


def report(error: BaseException, stderr: TextIO | None = None) -> int:
    """Print ``error`` as one line and return the failure status."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{PROG}: {message}", file=sys.stderr if stderr is None else stderr)
    return 1


async def _add_user(api: AdminAPI, args, out: TextIO) -> None:
    await api.add_user(args.jid, args.password)
    print(f"created {api.account(args.jid).full()}", file=out)


async def _delete_user(api: AdminAPI, args, out: TextIO) -> None:
    await api.delete_user(args.jid)
    print(f"deleted {api.account(args.jid).full()}", file=out)


async def _set_password(api: AdminAPI, args, out: TextIO) -> None:
    await api.set_password(args.jid, args.password)
    print(f"password changed for {api.account(args.jid).full()}", file=out)


async def _list_users(api: AdminAPI, args, out: TextIO) -> None:
    for user in await api.list_users(args.domain):
        print(user, file=out)


COMMANDS = {
    "adduser": _add_user,
    "deluser": _delete_user,
    "passwd": _set_password,
    "users": _list_users,
}


async def _react_main(reactor, config, args) -> None:
    status = await run(reactor, config, args)
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    sys.exit(main())
