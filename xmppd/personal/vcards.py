# -*- test-case-name: tests.unit.test_vcard -*-
"""vCards (XEP-0054) kept as XML text in a keyval store, and the photo hash of each (XEP-0153).

Decisions worth knowing:

* The vCard is stored as the client sent it, not checked against the vCard-XML DTD: clients
  add their own elements and read back only what they know, as with Prosody and ejabberd.
  Only its size (``max_size``, bytes of its XML) and its PHOTO's BINVAL are checked: a BINVAL
  that is not base64 would give every contact a hash of nothing, so it is ``bad-request``.
* Setting an empty ``<vCard/>`` removes the stored one; reading it back then gives an empty
  ``<vCard/>`` all the same.
* Presence asks for the photo hash on every available presence an account sends, so hashes
  are cached in memory, bounded (least recently used go first). Every write goes through
  ``set``, which replaces the cached hash after its write, while a read only fills a missing
  entry: a read racing a write never leaves the old hash behind.
* Lookups of an account whose hash is not cached yet share one storage read: at login the
  avatar_hash plugin asks at bind and again for the first presence, often before the first
  read is back.
"""

from __future__ import annotations

import binascii
import hashlib
from base64 import b64decode
from collections import OrderedDict

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IVCards
from xmppd.jid import JID
from xmppd.personal.elements import from_text, text_of, text_size, to_text

HASH_CACHE_SIZE = 4096  # accounts whose photo hash is kept in memory
_NOT_CACHED = object()


def photo_hash(vcard: domish.Element) -> str | None:
    """The XEP-0153 hash of the vCard's PHOTO/BINVAL (§3.1: SHA-1 of the image bytes, lower
    case hex), or None without one. Whitespace in the base64 is ignored (§4.6 rule 5);
    anything else that is not base64 is ``bad-request``."""
    binval = _photo_binval(vcard)
    if binval is None:
        return None
    data = "".join(binval.split())
    if not data:
        return None
    try:
        image = b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise StanzaError("bad-request", "the PHOTO's BINVAL is not base64") from None
    return hashlib.sha1(image).hexdigest() if image else None


def _photo_binval(vcard: domish.Element) -> str | None:
    for photo in vcard.elements(ns.VCARD, "PHOTO"):
        for binval in photo.elements(ns.VCARD, "BINVAL"):
            return text_of(binval)
    return None


def empty_vcard() -> domish.Element:
    return domish.Element((ns.VCARD, "vCard"))


@implementer(IVCards)
class VCards:
    """The vCards of one server's accounts; ``store`` is an IKeyValStore of XML text."""

    def __init__(self, store, max_size: int) -> None:
        self._store = store
        self.max_size = max_size
        self._hashes: OrderedDict[str, str | None] = OrderedDict()
        self._reading: dict[str, list[defer.Deferred]] = {}  # owner -> lookups waiting

    async def _get(self, account: JID) -> domish.Element | None:
        text = await self._store.get(account.userhost())
        return None if text is None else from_text(text, f"vCard of {account.userhost()}")

    def get(self, account: JID) -> defer.Deferred:
        return defer.ensureDeferred(self._get(account))

    def set(self, account: JID, vcard: domish.Element) -> defer.Deferred:
        return defer.ensureDeferred(self._set(account, vcard))

    async def _set(self, account: JID, vcard: domish.Element) -> None:
        owner = account.userhost()
        if not any(True for _ in vcard.elements()) and not text_of(vcard).strip():
            await self._store.delete(owner)
            self._remember(owner, None)
            return
        text = to_text(vcard)
        if text_size(text) > self.max_size:
            raise StanzaError("not-acceptable",
                              f"a vCard may take at most {self.max_size} bytes")
        digest = photo_hash(vcard)
        await self._store.set(owner, text)
        self._remember(owner, digest)

    def photo_hash(self, account: JID) -> defer.Deferred:
        owner = account.userhost()
        cached = self._hashes.get(owner, _NOT_CACHED)
        if cached is not _NOT_CACHED:
            self._hashes.move_to_end(owner)
            return defer.succeed(cached)
        d = defer.Deferred()
        waiting = self._reading.get(owner)
        if waiting is not None:
            waiting.append(d)
            return d
        self._reading[owner] = [d]  # before the read: it may well fire at once
        self.get(account).addCallback(self._filled, owner).addBoth(self._answer, owner)
        return d

    def _answer(self, result, owner: str) -> None:
        """Give the one read's hash (or failure) to every lookup that waited for it."""
        for d in self._reading.pop(owner, ()):
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def _filled(self, vcard: domish.Element | None, owner: str) -> str | None:
        try:
            digest = None if vcard is None else photo_hash(vcard)
        except StanzaError:
            digest = None  # stored before the check existed, or by hand: no hash to offer
        if owner not in self._hashes:
            self._remember(owner, digest)
        return self._hashes.get(owner, digest)

    def _remember(self, owner: str, digest: str | None) -> None:
        self._hashes[owner] = digest
        self._hashes.move_to_end(owner)
        while len(self._hashes) > HASH_CACHE_SIZE:
            self._hashes.popitem(last=False)

    def forget(self, account: JID) -> None:
        """The account is gone (its stored vCard went with it): drop its cached hash."""
        self._hashes.pop(account.userhost(), None)
