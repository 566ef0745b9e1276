# -*- test-case-name: tests.unit.test_vcard_conversion -*-
"""XEP-0398: the account's avatar in both of its homes, the vCard PHOTO (XEP-0054/0153) and
the PEP nodes of XEP-0084 (the image on 'urn:xmpp:avatar:data', its description on
'urn:xmpp:avatar:metadata'), the item id being the SHA-1 of the image in both protocols.

* PEP to vCard (§3.1, a MUST): on a metadata publish, the ``<info/>`` without a url
  names the image; its data item is looked up, its hash checked against the id (§3.1
  SHOULD: a mismatch is not copied), and it becomes the PHOTO, other vCard fields kept.
  Metadata without any ``<info/>`` (XEP-0084 §4.2: avatar disabled) removes the PHOTO.
* vCard to PEP (§3.2, a MAY): a vCard set with a BINVAL PHOTO publishes the data item,
  then the metadata item, unless the metadata already names that image.

Writes go through IVCards and IPep, which tell no events, so neither direction wakes the
other. A refusal (size limits, a node configured against it) is logged by the event bus and
leaves the other home as it was.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from twisted.words.xish import domish

from xmppd import ns
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.personal.elements import text_of
from xmppd.personal.vcards import empty_vcard, photo_hash

log = get_logger(__name__)


def embedded_info(metadata: domish.Element) -> domish.Element | None:
    """The ``<info/>`` of an image kept on the data node (not at a url), or None."""
    for info in metadata.elements(ns.AVATAR_METADATA, "info"):
        if info.getAttribute("url") is None and info.getAttribute("id"):
            return info
    return None


def has_info(metadata: domish.Element) -> bool:
    return any(True for _ in metadata.elements(ns.AVATAR_METADATA, "info"))


def checked_image(data: domish.Element | None, item_id: str) -> str | None:
    """The base64 of a data item whose image hashes to its id, whitespace removed; None
    for anything else."""
    if data is None or data.uri != ns.AVATAR_DATA:
        return None
    encoded = "".join(text_of(data).split())
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return encoded if image and hashlib.sha1(image).hexdigest() == item_id.lower() else None


def with_photo(vcard: domish.Element | None, image_type: str | None,
               encoded: str | None) -> domish.Element:
    """A copy of ``vcard`` (or a new one) whose PHOTO is this image, or has none when
    ``encoded`` is None."""
    result = empty_vcard()
    for child in (vcard.children if vcard is not None else ()):
        if not (isinstance(child, domish.Element) and child.name == "PHOTO"):
            result.addChild(child)
    if encoded is not None:
        photo = result.addElement("PHOTO")
        if image_type:
            photo.addElement("TYPE", content=image_type)
        photo.addElement("BINVAL", content=encoded)
    return result


def photo_of(vcard: domish.Element) -> tuple[str, str | None, bytes] | None:
    """(hash, type, image bytes) of the vCard's BINVAL PHOTO, or None without one."""
    digest = photo_hash(vcard)
    if digest is None:
        return None
    photo = next(vcard.elements(ns.VCARD, "PHOTO"))
    binval = next(photo.elements(ns.VCARD, "BINVAL"))
    image_type = next((text_of(t).strip() for t in photo.elements(ns.VCARD, "TYPE")), None)
    return digest, image_type or None, base64.b64decode("".join(text_of(binval).split()))


def avatar_items(digest: str, image_type: str | None,
                 image: bytes) -> tuple[domish.Element, domish.Element]:
    """The XEP-0084 data and metadata payloads of one image."""
    data = domish.Element((ns.AVATAR_DATA, "data"))
    data.addContent(base64.b64encode(image).decode("ascii"))
    metadata = domish.Element((ns.AVATAR_METADATA, "metadata"))
    info = metadata.addElement("info")
    info["bytes"] = str(len(image))
    info["id"] = digest
    info["type"] = image_type or "image/png"
    return data, metadata


class AvatarConversion:
    """``stores()`` gives (IPep, IVCards) at the time of use, either None when its plugin is
    not loaded (then nothing is converted)."""

    def __init__(self, stores) -> None:
        self._stores = stores

    async def from_metadata(self, account: JID, metadata: domish.Element) -> None:
        pep, vcards = self._stores()
        if pep is None or vcards is None:
            return
        if not has_info(metadata):
            await vcards.set(account, with_photo(await vcards.get(account), None, None))
            return
        info = embedded_info(metadata)
        if info is None:
            return  # only images elsewhere: nothing to copy into a vCard
        item_id = info["id"]
        data = dict(await pep.items(account, ns.AVATAR_DATA)).get(item_id)
        encoded = checked_image(data, item_id)
        if encoded is None:
            log.info("{account}: avatar {id} has no matching data item; vCard left alone",
                     account=account.userhost(), id=item_id)
            return
        vcard = with_photo(await vcards.get(account), info.getAttribute("type"), encoded)
        await vcards.set(account, vcard)

    async def from_vcard(self, account: JID, vcard: domish.Element) -> None:
        pep, _ = self._stores()
        if pep is None:
            return
        photo = photo_of(vcard)
        if photo is None:
            return
        digest, image_type, image = photo
        for _, current in await pep.items(account, ns.AVATAR_METADATA):
            if current is not None and any(info.getAttribute("id") == digest
                                           for info in current.elements()):
                return  # already the published avatar
        data, metadata = avatar_items(digest, image_type, image)
        await pep.publish(account, ns.AVATAR_DATA, digest, data)
        await pep.publish(account, ns.AVATAR_METADATA, digest, metadata)
