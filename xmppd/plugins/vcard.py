# -*- test-case-name: tests.unit.test_vcard -*-
"""XEP-0054 vcard-temp: each account's vCard, set by the account, read by anyone.

Decisions worth knowing:

* An account reads its own vCard with no 'to' or its own bare JID (§3.1); without one stored
  the answer is an empty ``<vCard/>``, which §3.1 allows and clients take as "none yet".
* Anyone (other accounts, remote servers) reads an account's vCard at its bare JID (§3.3);
  the server answers for the account, never the account's resources. Without a vCard the
  answer is ``service-unavailable``, as §3.3 (version 1.3) requires: the same answer as for
  an account that does not exist, so vCard look-ups cannot tell which accounts exist.
* Only the account sets its vCard (§3.2): a set at anyone else's bare JID is ``forbidden``.
  A vCard over ``[plugins.vcard] max_size`` bytes of XML is ``not-acceptable``.
* ``vcard-temp`` is advertised on the host (the disco of §4) and on the account's own disco,
  the two places a client asks. The vCard goes with the account: its store's owner is the
  account's bare JID.
* Other plugins (the XEP-0153 avatar hash) read vCards through IVCards, and hear of a
  vCard the account's client set through ``events.VCARD_STORED``, emitted before the set
  is answered (XEP-0398 publishes its photo as the PEP avatar that way); what they write
  through IVCards is not told, so conversions cannot loop.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IVCards, IXmppdPlugin
from xmppd.personal.vcards import VCards, empty_vcard
from xmppd.plugins._config import max_size_only
from xmppd.stanza import Stanza

DEFAULT_MAX_SIZE = 65_536


@implementer(IXmppdPlugin)
class VCardPlugin:
    name = "vcard"
    requires = ()

    def configure(self, options) -> int:
        """max_size, checked before the database opens."""
        return max_size_only(options, DEFAULT_MAX_SIZE)

    def setup(self, ctx) -> None:
        self.ctx = ctx
        self.vcards = VCards(ctx.open_store("vcard", "keyval"), ctx.settings)
        ctx.provide(IVCards, self.vcards)
        for entity in ("host", "account"):
            ctx.feature(ns.VCARD, to=entity)
        ctx.iq("get", ns.VCARD, "vCard", self.on_get_own, to="self")
        ctx.iq("get", ns.VCARD, "vCard", self.on_get_other, to="bare")
        ctx.iq("set", ns.VCARD, "vCard", self.on_set_own, to="self")
        ctx.iq("set", ns.VCARD, "vCard", self.on_set_other, to="bare")
        ctx.on(events.USER_DELETED, self.vcards.forget)

    def on_get_own(self, stanza: Stanza, origin) -> defer.Deferred:
        return self.vcards.get(stanza.recipient).addCallback(_or_empty)

    def on_get_other(self, stanza: Stanza, origin) -> defer.Deferred:
        return self.vcards.get(stanza.recipient).addCallback(_or_unavailable)

    def on_set_own(self, stanza: Stanza, origin) -> defer.Deferred:
        return defer.ensureDeferred(self._set_own(stanza.recipient, stanza.payload()))

    async def _set_own(self, account, vcard: domish.Element) -> None:
        await self.vcards.set(account, vcard)
        await self.ctx.emit(events.VCARD_STORED, account, vcard)

    def on_set_other(self, stanza: Stanza, origin) -> None:
        raise StanzaError("forbidden", "only the account itself sets its vCard")


def _or_empty(vcard: domish.Element | None) -> domish.Element:
    return empty_vcard() if vcard is None else vcard


def _or_unavailable(vcard: domish.Element | None) -> domish.Element:
    if vcard is None:
        raise StanzaError("service-unavailable")
    return vcard


vcard = VCardPlugin()
