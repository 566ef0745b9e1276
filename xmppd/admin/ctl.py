# -*- test-case-name: tests.unit.test_ctl -*-
"""xmppdctl: run the server's admin commands from the shell.

When the server runs, every command goes through its control socket (xmppd.admin.control),
so the live server does the work: a deleted account's sessions end and plugins clean up after
it. When it does not run, the account commands open the database themselves (WAL and a busy
timeout make that safe) and go through the same AdminAPI; the commands that only a live server
can answer (sessions, kick, s2s) say it is not running. Errors are one line on stderr, exit 1.

Each core command is one row of COMMANDS: the AdminAPI method, whether it needs the running
server, and its arguments by name (see ARGUMENTS). A row whose name has two words becomes a
sub-command of the first. Any other command (``trust request DOMAIN``, ``incident list``) is
a plugin's (xmppd.admin.commands): its words go to the running server, which knows which
plugins are loaded and what they provide; ``xmppdctl commands`` lists them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from twisted.internet import defer, task

from xmppd.admin import backup, control, migrate_storage
from xmppd.admin.api import AdminAPI
from xmppd.admin.passwords import hash_password
from xmppd.check.findings import AREAS as CHECK_AREAS
from xmppd.config import load_config
from xmppd.pie import cli as pie_cli
from xmppd.storage import open_storage

PROG = "xmppdctl"
DEFAULT_CONFIG = "etc/xmppd.toml"
CONFIG_VARIABLE = "XMPPD_CONFIG"
PASSWORD_HELP = (
    "asked for when omitted (twice on a terminal, else one line of standard input); "
    "a password on the command line is visible to other local users"
)

# How a command prints its result: show(result, arguments by name, output).
Show = Callable[[Any, Mapping[str, Any], TextIO], None]


@dataclass(frozen=True)
class Argument:
    metavar: str
    help: str | None = None


# The arguments commands take, by the name used in COMMANDS; "name?" makes one optional.
ARGUMENTS = {
    "account": Argument("USER@DOMAIN"),  # a bare JID on one of our domains, checked up front
    "password": Argument("PASSWORD", PASSWORD_HELP),  # read by read_password() when omitted
    "jid": Argument("JID", "a full JID (one session) or a bare one (all of the account's)"),
    "domain": Argument("DOMAIN"),
    "description": Argument("DESCRIPTION", "what happened, in words"),
}


def show_result(result: Any, values: Mapping[str, Any], out: TextIO) -> None:
    """Print any result: nothing for None, a table for a list of dicts, one line per item."""
    if result is None:
        return
    if isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        for line in table(result):
            print(line, file=out)
    elif isinstance(result, list):
        for item in result:
            print(cell("", item), file=out)
    elif isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {cell(key, value)}", file=out)
    else:
        print(cell("", result), file=out)


def table(rows: list[dict]) -> list[str]:
    """Rows of dicts as aligned text columns under a header of their keys."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[column.upper() for column in columns]]
    cells += [[cell(column, row.get(column)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
            for line in cells]


def cell(key: str, value: Any) -> str:
    """One value as an operator reads it; times (``since``) are POSIX seconds, shown local."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "since" and isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    if isinstance(value, list):
        return ", ".join(cell("", item) for item in value)
    return str(value)


def say(template: str) -> Show:
    """Print ``template`` filled with the command's arguments."""

    def show(result: Any, values: Mapping[str, Any], out: TextIO) -> None:
        print(template.format(**values), file=out)

    return show


def count(template: str, none: str) -> Show:
    """Print ``template`` with ``{count}`` closed; when nothing was, fail with ``none``."""

    def show(result: Any, values: Mapping[str, Any], out: TextIO) -> None:
        number = 1 if result is None else int(result)
        if not number:
            raise LookupError(none.format(**values))
        plural = "" if number == 1 else "s"
        print(template.format(count=number, s=plural, **values), file=out)

    return show


def show_reload(result: Any, values: Mapping[str, Any], out: TextIO) -> None:
    """One line per change applied, per change that needs a restart, per problem; a
    problem makes the command fail (the server kept what it had for that part)."""
    for line in result.get("applied", []):
        print(f"applied: {line}", file=out)
    for line in result.get("restart", []):
        print(f"needs a restart: {line}", file=out)
    if result.get("problems"):
        raise control.ControlError("reload: " + " | ".join(result["problems"]))


def show_deleted(result: Any, values: Mapping[str, Any], out: TextIO) -> None:
    ended = f", ended {result} session{'' if result == 1 else 's'}" if result else ""
    print(f"deleted {values['account']}{ended}", file=out)


@dataclass(frozen=True)
class Command:
    """One xmppdctl command: which AdminAPI method it calls, and whether offline is possible."""

    method: str
    needs_server: bool
    arguments: tuple[str, ...]
    help: str
    show: Show = show_result


COMMANDS: dict[str, Command] = {
    "adduser": Command("add_user", False, ("account", "password?"), "create an account",
                       say("created {account}")),
    "deluser": Command("delete_user", False, ("account",), "delete an account and all its data",
                       show_deleted),
    "passwd": Command("set_password", False, ("account", "password?"), "set an account's "
                      "password", say("password changed for {account}")),
    "users": Command("list_users", False, ("domain?",), "list the accounts, of one domain or "
                     "of all"),
    "sessions": Command("list_sessions", True, (), "list the client sessions of the running "
                        "server"),
    "kick": Command("kick", True, ("jid",), "end a client session, or all of an account's",
                    count("closed {count} session{s} of {jid}", "no session of {jid}")),
    "s2s": Command("list_s2s", True, (), "list the server-to-server links"),
    "s2s-close": Command("close_s2s", True, ("domain",), "close the links with a server",
                         count("closed {count} s2s stream{s} with {domain}",
                               "no s2s link with {domain}")),
    "commands": Command(control.COMMANDS_CALL, True, (), "list the commands the running "
                        "server's plugins add (e.g. trust, incident)"),
    "reload": Command("reload", True, (), "reload the config and certificates in the running "
                      "server, as SIGHUP does (what cannot change at run time is named)",
                      show_reload),
}
PLUGIN_EPILOG = ("The running server's plugins add commands of their own, e.g. "
                 "`trust request DOMAIN` (server_trust) or `incident list` (incident): "
                 "`xmppdctl commands` lists them, `xmppdctl GROUP --help` shows a group's.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Manage an xmppd server.",
                                     epilog=PLUGIN_EPILOG)
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get(CONFIG_VARIABLE, DEFAULT_CONFIG),
        help=f"the server's TOML config (default: ${CONFIG_VARIABLE} or {DEFAULT_CONFIG})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, command in COMMANDS.items():
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            groups[group] = commands.add_parser(group, help=f"{group} commands").add_subparsers(
                dest=f"{group}_command", required=True, metavar="COMMAND")
        sub = (groups[group] if group else commands).add_parser(leaf, help=command.help)
        sub.set_defaults(command_name=name)
        for spec in command.arguments:
            argument = ARGUMENTS[spec.rstrip("?")]
            sub.add_argument(spec.rstrip("?"), metavar=argument.metavar, help=argument.help,
                             nargs="?" if spec.endswith("?") else None)

    check = commands.add_parser(
        "check", help="check the config, DNS, certificates and our ports; one line per "
                      "finding, exit 1 on any warning or error")
    check.add_argument("--only", action="append", choices=CHECK_AREAS, metavar="AREA",
                       help=f"check only this area (repeatable): {', '.join(CHECK_AREAS)}")
    check.add_argument("--dns", action="append", default=[], metavar="HOST:PORT",
                       help="ask this DNS server (repeatable; default: [s2s] dns_servers, "
                            "else the system's)")
    check.add_argument("--warn-days", type=int, default=14, metavar="DAYS",
                       help="warn about certificates expiring within DAYS (default 14)")

    backup.add_parser(commands)
    migrate_storage.add_parser(commands)
    pie_cli.add_parsers(commands)

    hashpw = commands.add_parser(
        "hash-password", help="print a hash for the config's manhole.password_hash"
    )
    hashpw.add_argument("password", nargs="?", metavar="PASSWORD", help=PASSWORD_HELP)
    return parser


def plugin_words(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """(--config value, the command's words) when ``argv`` names no core command: a plugin's
    command for the running server to resolve; None for a core command (or no command)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, words = pre.parse_known_args(argv)
    core = {name.split()[0] for name in COMMANDS} | {"hash-password", "check", "backup",
                                                     migrate_storage.COMMAND, *pie_cli.COMMANDS}
    if not words or words[0].startswith("-") or words[0] in core:
        return None
    return known.config, words


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (argparse exits 2 itself on bad usage)."""
    argv = sys.argv[1:] if argv is None else argv
    plugin = plugin_words(argv)
    if plugin is not None:
        return _main_plugin_command(*plugin, argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "hash-password":
            print(hash_password(read_password(args.password)))
            return 0
        if args.command == "check":  # before load_config: its problems are findings
            return _main_check(args)
        if args.command == migrate_storage.COMMAND:  # two configs of its own, no --config
            return _main_data(None, args)
        config = load_config(args.config)
        if args.command in ("backup", *pie_cli.COMMANDS):
            return _main_data(config, args)
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


def _main_data(config, args: argparse.Namespace) -> int:
    """backup, export, import, migrate-storage: what moves the server's data around."""
    run = {"backup": backup.run, migrate_storage.COMMAND: migrate_storage.run}.get(
        args.command, pie_cli.run)

    async def done(reactor) -> None:
        try:
            await run(reactor, config, args)
        except Exception as error:
            raise SystemExit(report(error)) from None

    try:
        task.react(done)
    except SystemExit as finished:
        return finished.code if isinstance(finished.code, int) else 1
    return 0  # not reached: react always exits


def _main_check(args: argparse.Namespace) -> int:
    from xmppd.check.runner import CheckOptions, run_check

    servers = []
    for value in args.dns:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            return report(ValueError(f"--dns {value}: expected HOST:PORT, e.g. 127.0.0.1:53"))
        servers.append((host.strip("[]"), int(port)))
    options = CheckOptions(areas=args.only or CHECK_AREAS, dns_servers=servers,
                           warn_days=args.warn_days)

    async def checked(reactor) -> None:
        status = await run_check(reactor, args.config, options)
        if status:
            raise SystemExit(status)

    try:
        task.react(checked)
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
    """Carry out one command on the running ``reactor``; returns the exit status."""
    stdout = sys.stdout if stdout is None else stdout
    command = COMMANDS[args.command_name]
    try:
        values = arguments_of(command, args, config)
        result = await execute(reactor, config, command, list(values.values()))
        command.show(result, values, stdout)
    except Exception as error:
        return report(error, stderr)
    return 0


def arguments_of(command: Command, args: argparse.Namespace, config) -> dict[str, Any]:
    """The command's arguments by name, in call order; accounts are checked and normalized
    here, so a typo fails before the server or the database is touched."""
    values = {}
    for spec in command.arguments:
        name = spec.rstrip("?")
        value = getattr(args, name)
        if name == "account":
            value = AdminAPI(None, config.server.domains).account(value).full()
        values[name] = value
    return values


async def execute(reactor, config, command: Command, arguments: list) -> Any:
    """Call the command's AdminAPI method in the running server, or on the database if it
    is stopped and the command can do without it."""
    path = config.server.control_socket
    if path is not None:
        try:
            return await control.call(path, command.method, *arguments, reactor=reactor)
        except control.ServerNotRunning:
            if command.needs_server:
                raise
    elif command.needs_server:
        raise control.ControlError(
            'the control socket is turned off ([server] control_socket = ""), so xmppdctl '
            "cannot reach the running server")
    return await offline(reactor, config, command, arguments)


async def offline(reactor, config, command: Command, arguments: list) -> Any:
    """Run the command's AdminAPI method on the database, with no server around."""
    storage = open_storage(config, reactor=reactor)
    api = AdminAPI(storage, config.server.domains)
    try:
        await storage.open()
        return await defer.maybeDeferred(getattr(api, command.method), *arguments)
    finally:
        await storage.close()


def _main_plugin_command(config_path: str | None, words: list[str], argv: list[str]) -> int:
    """A plugin's command for the running server; without one to ask, a usage error."""
    parser = build_parser()
    try:
        config = load_config(config_path or os.environ.get(CONFIG_VARIABLE, DEFAULT_CONFIG))
        path = config.server.control_socket
        running = path is not None and control.server_running(path)
    except Exception:
        parser.parse_args(argv)  # exits 2: not a core command
        raise
    if not running:
        parser.error(f"{words[0]!r} is not a core command, and xmppd is not running to "
                     f"provide it from a plugin (control socket: {path or 'off'})")
    try:
        task.react(_react_plugin, (config, words))
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0  # not reached: react always exits


async def run_plugin_command(reactor, config, words: list[str], stdout: TextIO | None = None,
                             stderr: TextIO | None = None) -> int:
    """Have the running server carry out a plugin's command (``words``: its name, then its
    arguments), or show the help of the commands ``words`` start (with -h/--help)."""
    stdout = sys.stdout if stdout is None else stdout
    path = config.server.control_socket
    try:
        if path is None:
            raise control.ControlError(
                f'the control socket is turned off ([server] control_socket = ""), so '
                f"xmppdctl cannot reach the running server for {words[0]!r}")
        try:
            if "-h" in words or "--help" in words:
                rows = await control.call(path, control.COMMANDS_CALL, reactor=reactor)
                show_plugin_help([w for w in words if not w.startswith("-")], rows, stdout)
                return 0
            result = await control.call(path, control.COMMAND_CALL, *words, reactor=reactor)
        except control.ServerNotRunning as error:
            raise control.ControlError(
                f"{error}; {words[0]!r} is not a core command: plugins of the running server "
                f"provide it") from None
        show_result(result, {}, stdout)
    except Exception as error:
        return report(error, stderr)
    return 0


def show_plugin_help(words: list[str], rows: list[dict], out: TextIO) -> None:
    """The usage and help of each command whose name starts with ``words``."""
    prefix = " ".join(words)
    matching = [row for row in rows
                if row["command"] == prefix or row["command"].startswith(prefix + " ")]
    if not matching:
        raise LookupError(f"no loaded plugin provides {prefix!r} (see `{PROG} commands`)")
    for row in matching:
        shown = [f"[{a[:-1]}]" if a.endswith("?") else a for a in row["args"]]
        usage = " ".join([PROG, row["command"], *shown])
        print(f"{usage}\n    {row['help']} (plugin {row['plugin']})", file=out)


async def _react_plugin(reactor, config, words) -> None:
    status = await run_plugin_command(reactor, config, words)
    if status:
        raise SystemExit(status)


def report(error: BaseException, stderr: TextIO | None = None) -> int:
    """Print ``error`` as one line (a config's problems one line each); the failure status."""
    for problem in getattr(error, "problems", None) or [str(error)]:
        message = " ".join(problem.split()) or type(error).__name__
        print(f"{PROG}: {message}", file=sys.stderr if stderr is None else stderr)
    return 1


async def _react_main(reactor, config, args) -> None:
    status = await run(reactor, config, args)
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    sys.exit(main())
