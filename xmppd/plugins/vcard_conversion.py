# -*- test-case-name: tests.unit.test_vcard_conversion -*-
"""XEP-0398 user avatar to vCard-based avatars conversion: a client that publishes its
avatar with XEP-0084 (PEP) is seen with it by XEP-0153 clients and in MUCs (the vCard PHOTO,
whose hash the avatar_hash plugin puts in presence), and a client that sets a vCard photo is
seen by XEP-0084 clients. ``urn:xmpp:pep-vcard-conversion:0`` is advertised on the account
(§2). What is converted and when is xmppd.personal.avatar_conversion.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.interfaces import IPep, IVCards, IXmppdPlugin
from xmppd.jid import JID
from xmppd.pep.changes import PepChange
from xmppd.personal.avatar_conversion import AvatarConversion
from xmppd.plugins._config import reject_unknown_keys


@implementer(IXmppdPlugin)
class VCardConversion:
    name = "vcard_conversion"
    requires = ("pep", "vcard")

    def configure(self, options) -> None:
        """No settings: any key in [plugins.vcard_conversion] stops start-up."""
        reject_unknown_keys(options, ())

    def setup(self, ctx) -> None:
        self.conversion = AvatarConversion(lambda: (ctx.query(IPep), ctx.query(IVCards)))
        ctx.feature(ns.PEP_VCARD_CONVERSION, to="account")
        ctx.on(events.PEP_CHANGED, self.on_pep_changed)
        ctx.on(events.VCARD_STORED, self.on_vcard_stored)

    def on_pep_changed(self, change: PepChange) -> defer.Deferred | None:
        payload = change.payload
        if (change.node != ns.AVATAR_METADATA or payload is None
                or payload.uri != ns.AVATAR_METADATA):
            return None
        return defer.ensureDeferred(self.conversion.from_metadata(change.account, payload))

    def on_vcard_stored(self, account: JID, vcard: domish.Element) -> defer.Deferred:
        return defer.ensureDeferred(self.conversion.from_vcard(account, vcard))


vcard_conversion = VCardConversion()
