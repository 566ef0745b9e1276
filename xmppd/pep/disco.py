# -*- test-case-name: tests.unit.test_pep_plugin -*-
"""disco#info and disco#items of an account's bare JID (XEP-0163 §6, XEP-0030): what the
account says of itself to itself goes through the disco plugin's account entity; this is
the answer to everyone else, built from the same parts."""

from __future__ import annotations

from collections.abc import Iterable

from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import DiscoInfo, Identity
from xmppd.disco import DiscoItem

ACCOUNT = Identity("account", "registered")


def info_query(infos: Iterable[DiscoInfo], node: str | None) -> domish.Element:
    """A disco#info ``<query/>`` of the identities, features and forms of ``infos``."""
    query = domish.Element((ns.DISCO_INFO, "query"))
    if node is not None:
        query["node"] = node
    infos = list(infos)
    for identity in sorted({i for info in infos for i in info.identities}):
        query.addChild(identity.to_element())
    for feature in sorted({f for info in infos for f in info.features}):
        query.addElement("feature")["var"] = feature
    for info in infos:
        for form in info.forms:
            query.addChild(form.to_element())
    return query


def items_query(items: Iterable[DiscoItem], node: str | None) -> domish.Element:
    query = domish.Element((ns.DISCO_ITEMS, "query"))
    if node is not None:
        query["node"] = node
    for item in items:
        query.addChild(item.to_element())
    return query
