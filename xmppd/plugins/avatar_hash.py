# -*- test-case-name: tests.unit.test_vcard_avatar -*-
"""XEP-0153 on the server's side: the hash of the account's vCard photo in its presence.

Contacts learn that an avatar changed from the hash in ``<x xmlns='vcard-temp:x:update'>``.
Many clients never add it (they do not do XEP-0153, or publish the vCard from another
resource), so the server adds what it knows, as Prosody's mod_avatar did: every available
presence an account sends (broadcast or directed, as §4.1 rule 1 asks of clients) gets
``<photo>HASH</photo>`` when the stored vCard has a BINVAL photo.

What the client said wins, read with §4.1:

* ``<x><photo>…</photo></x>`` (a hash, or empty for "no image"): left as it is. The client
  made a statement about the avatar; the server does not second-guess it.
* ``<x/>`` without ``<photo/>`` ("not ready to advertise"): the server fills in the hash of
  the stored vCard, which is what the client would advertise once it has read it (§4.4).
* no ``<x/>`` at all: the server adds ``<x><photo>HASH</photo></x>``.

Without a photo the server adds nothing: an empty ``<photo/>`` would make contacts drop an
avatar they may have from elsewhere (PEP, XEP-0084), and saying "no image" is the client's
business (§4.1 rule 3). The server does not resend presence when a vCard changes: the
client that changed it sends new presence (§3.1), and then gets the new hash.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.interfaces import IVCards, IXmppdPlugin
from xmppd.logs import get_logger
from xmppd.plugins._config import reject_unknown_keys
from xmppd.stanza import Stanza

log = get_logger(__name__)

# Before the presence plugin's link (priority 0) broadcasts and keeps the presence.
PRIORITY = 10


@implementer(IXmppdPlugin)
class AvatarHash:
    name = "avatar_hash"
    requires = ("vcard",)

    def configure(self, options) -> None:
        """No settings: any key in [plugins.avatar_hash] stops start-up."""
        reject_unknown_keys(options, ())

    def setup(self, ctx) -> None:
        self.ctx = ctx
        ctx.stanza("presence", "available", "outgoing", self.on_presence, PRIORITY)
        ctx.on(events.SESSION_BOUND, self.on_bound)

    def on_bound(self, session) -> None:
        """Read the hash while the client fetches its roster, so that its first presence
        finds it in memory and goes on without waiting for storage."""
        vcards = self.ctx.query(IVCards)
        if vcards is not None:
            vcards.photo_hash(session.jid.bare()).addErrback(_lookup_failed)

    def on_presence(self, stanza: Stanza, session) -> defer.Deferred | None:
        update = _update_child(stanza.element)
        if update is not None and _photo_child(update) is not None:
            return None
        vcards = self.ctx.query(IVCards)
        if vcards is None or stanza.sender is None:
            return None
        d = vcards.photo_hash(stanza.sender.bare())
        d.addCallbacks(add_photo_hash, _lookup_failed, (stanza.element, update))
        return None if d.called else d  # a hash in memory: the presence goes on at once


def add_photo_hash(digest: str | None, presence: domish.Element,
                   update: domish.Element | None) -> None:
    """Put ``digest`` in ``presence`` (in ``update``, its <x/> without <photo/>, if any)."""
    if digest is None:
        return
    if update is None:
        update = presence.addElement((ns.VCARD_UPDATE, "x"))
    update.addElement((ns.VCARD_UPDATE, "photo"), content=digest)


def _lookup_failed(failure) -> None:
    """Presence goes on without the hash: an avatar is not worth a lost presence."""
    log.failure("could not read the photo hash for a presence", failure)


def _update_child(presence: domish.Element) -> domish.Element | None:
    return next(presence.elements(ns.VCARD_UPDATE, "x"), None)


def _photo_child(update: domish.Element) -> domish.Element | None:
    return next(update.elements(ns.VCARD_UPDATE, "photo"), None)


avatar_hash = AvatarHash()
