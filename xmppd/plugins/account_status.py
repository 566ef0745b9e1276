# -*- test-case-name: tests.integration.test_adhoc_admin -*-
"""Disabled accounts (``xmppdctl disable USER``, XEP-0133's disable-user): kept with all
their data, refused at login with ``account-disabled`` (RFC 6120 §6.5.1) whatever the
mechanism, their sessions ended when they are disabled; enabled again with
``xmppdctl enable USER``."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from xmppd import events
from xmppd.admin.api import AdminAPI
from xmppd.admin.disabled import DisabledAccounts
from xmppd.interfaces import IDisabledAccounts, IXmppdPlugin
from xmppd.options import no_options

DISABLED_CONDITION, DISABLED_TEXT = "not-authorized", "account disabled"


@implementer(IDisabledAccounts)
class _Accounts:
    """IDisabledAccounts over the store: disabling also ends the account's sessions."""

    def __init__(self, disabled: DisabledAccounts, sessions) -> None:
        self.disabled = disabled
        self.sessions = sessions
        self.enable = disabled.enable
        self.listed = disabled.listed

    @defer.inlineCallbacks
    def disable(self, account):
        yield self.disabled.disable(account)
        for session in list(self.sessions.resources(account)):
            session.close(DISABLED_CONDITION, DISABLED_TEXT)


@implementer(IXmppdPlugin)
class AccountStatus:
    name = "account_status"
    requires = ()

    configure = staticmethod(no_options)

    def setup(self, ctx) -> None:
        disabled = DisabledAccounts(ctx.open_store("disabled-accounts", "map"),
                                    ctx.reactor.seconds)
        api = AdminAPI.for_plugin(ctx)
        accounts = _Accounts(disabled, ctx.sessions)
        ctx.login_gate(disabled.gate)
        ctx.provide(IDisabledAccounts, accounts)
        ctx.on(events.USER_DELETED, disabled.forget)

        def disable(jid: str):
            return accounts.disable(api.account(jid)).addCallback(lambda _: f"{jid} disabled")

        def enable(jid: str):
            d = accounts.enable(api.account(jid))
            return d.addCallback(lambda was: f"{jid} enabled" if was else f"{jid} was enabled")

        def listed(domain: str | None = None):
            domains = [domain] if domain else sorted(ctx.domains)
            d = defer.gatherResults([accounts.listed(each) for each in domains])
            return d.addCallback(lambda lists: [jid for each in lists for jid in each])

        ctx.admin_command("disable", disable, "refuse an account's logins, end its sessions",
                          args=("JID",))
        ctx.admin_command("enable", enable, "let a disabled account log in again",
                          args=("JID",))
        ctx.admin_command("disabled", listed, "list the disabled accounts",
                          args=("DOMAIN?",))


account_status = AccountStatus()
