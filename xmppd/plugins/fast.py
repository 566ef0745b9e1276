# -*- test-case-name: tests.unit.test_fast -*-
"""XEP-0484 FAST: token logins for devices that logged in once with their password.

Offered inside SASL2 (XEP-0388) on encrypted streams; the logic is xmppd.sasl2.fast and
xmppd.sasl.ht. Options, in ``[plugins.fast]``:

- ``token_lifetime_days`` (default 30): a token is valid that long after it is issued;
- ``rotate_after_days`` (default 7): a token used when older than this brings its device a
  new one in the same <success/> (the old one stays valid until the new one is used).

A password change ends every token of the account (credentials-expired at their next use).

``xmppdctl fast list USER`` shows an account's devices and their tokens' expiry (never a
token or its hash); ``xmppdctl fast revoke USER [DEVICE]`` ends one device's tokens or all.
"""

from __future__ import annotations

from zope.interface import implementer

from xmppd.interfaces import IXmppdPlugin
from xmppd.jid import InvalidJID, parse_jid
from xmppd.sasl2.fast import STORE, FastTokens, Settings

DAY = 86400


@implementer(IXmppdPlugin)
class Fast:
    name = "fast"
    requires = ()

    def configure(self, options) -> Settings:
        """Checked before the database opens: an unknown key or bad value stops start-up."""
        options.known("token_lifetime_days", "rotate_after_days")
        lifetime = options.option_int("token_lifetime_days", 30, minimum=1, maximum=3650)
        rotate = options.option_int("rotate_after_days", 7, minimum=0, maximum=3650)
        if rotate >= lifetime:
            raise ValueError("[plugins.fast] rotate_after_days must be less than "
                             "token_lifetime_days")
        return Settings(lifetime=lifetime * DAY, rotate_after=rotate * DAY)

    def setup(self, ctx) -> None:
        settings = ctx.settings if isinstance(ctx.settings, Settings) else self.configure(ctx)
        users = ctx.storage.users
        tokens = FastTokens(ctx.open_store(STORE, "map"), settings, ctx.reactor,
                            lambda localpart, domain: users.get_credentials(localpart, domain,
                                                                            "sha-256"))
        domains = ctx.domains
        ctx.sasl2_extension(tokens)

        def account(user: str) -> str:
            try:
                jid = parse_jid(user)
            except (InvalidJID, ValueError):
                raise ValueError(f"not a JID: {user!r}") from None
            if jid.user is None or jid.resource is not None or jid.host not in domains:
                raise ValueError(f"{user} is not an account of ours (user@domain)")
            return jid.full()

        ctx.admin_command("fast list", lambda user: tokens.list(account(user)),
                          "the FAST token devices of an account (XEP-0484)", args=("USER",))
        ctx.admin_command("fast revoke",
                          lambda user, device=None: tokens.revoke(account(user), device),
                          "end the FAST tokens of one device of an account, or of all",
                          args=("USER", "DEVICE?"))


fast = Fast()
