# -*- test-case-name: tests.unit.test_adhoc -*-
"""XEP-0050 ad-hoc commands on the server's domains, with XEP-0133 administration.

Commands are listed in disco#items on the ``http://jabber.org/protocol/commands`` node of
each host, only those the asker may run; other plugins add commands through
IAdHocCommands. ``[plugins.adhoc] admin = false`` leaves XEP-0133's set out (it is only
ever shown to and run by ``[server] admins``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import implementer

from xmppd import events, ns
from xmppd.adhoc.admin import AdminCommands
from xmppd.adhoc.commands import Commands
from xmppd.adhoc.protocol import CommandProtocol
from xmppd.adhoc.sessions import DEFAULT_LIFETIME, Executions
from xmppd.admin.api import AdminAPI
from xmppd.interfaces import IAdHocCommands, IDisabledAccounts, IXmppdPlugin


@dataclass(frozen=True)
class AdHocSettings:
    admin: bool
    session_lifetime: int


@implementer(IAdHocCommands)
class _Offered:
    """What other plugins see: ``add`` and nothing else."""

    def __init__(self, commands: Commands) -> None:
        self.add = commands.add


@implementer(IXmppdPlugin)
class AdHoc:
    name = "adhoc"
    requires = ()

    def configure(self, options) -> AdHocSettings:
        options.known("admin", "session_lifetime")
        return AdHocSettings(
            admin=options.option_bool("admin", True),
            session_lifetime=options.option_int("session_lifetime", int(DEFAULT_LIFETIME),
                                                minimum=10, maximum=86_400),
        )

    def setup(self, ctx) -> None:
        commands = Commands()
        protocol = CommandProtocol(commands,
                                   Executions(ctx.reactor, ctx.settings.session_lifetime))
        ctx.feature(ns.COMMANDS)
        ctx.iq("set", ns.COMMANDS, "command", protocol.on_command)
        ctx.disco_items(protocol.disco_items)
        ctx.disco_info(protocol.disco_info)
        ctx.on(events.SESSION_CLOSED,
               lambda session, polite: protocol.executions.forget(session.jid))
        ctx.provide(IAdHocCommands, _Offered(commands))
        if ctx.settings.admin:
            admin = AdminCommands(AdminAPI.for_plugin(ctx), ctx.sessions, ctx.send,
                                  ctx.open_store("motd", "keyval"),
                                  lambda: ctx.server_config.server.admins,
                                  lambda: ctx.query(IDisabledAccounts))
            for command in admin.commands():
                commands.add(command)
            ctx.on(events.RESOURCE_AVAILABLE, admin.on_available)


adhoc = AdHoc()
