# -*- test-case-name: tests.unit.test_xep0227 -*-
"""``Account`` values into a XEP-0227 document, one <user/> at a time (an export of a large
server is never held in memory whole)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import BinaryIO

from twisted.words.xish import domish

from xmppd import ns
from xmppd.im.roster_items import item_element
from xmppd.mam.dates import format_stamp
from xmppd.pie.model import MECHANISMS, PIE, PIE_MAM, PIE_SCRAM, Account
from xmppd.xml.serializer import escape_attribute, serialize

HEADER = f"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='{PIE}'>\n"
FOOTER = "</server-data>\n"
SCRAM_MECHANISM = {hash_name: mechanism for mechanism, hash_name in MECHANISMS.items()}


def write_document(out: BinaryIO, hosts: Iterable[tuple[str, Iterable[Account]]]) -> int:
    """Write <server-data/> with one <host/> per (domain, its accounts); how many accounts."""
    written = 0
    out.write(HEADER.encode())
    for domain, accounts in hosts:
        out.write(f"<host jid='{escape_attribute(domain)}'>\n".encode())
        for account in accounts:
            out.write(user_xml(account) + b"\n")
            written += 1
        out.write(b"</host>\n")
    out.write(FOOTER.encode())
    return written


def user_xml(account: Account) -> bytes:
    """One account's <user/>, serialized in the file's urn:xmpp:pie:0."""
    return serialize(user_element(account), PIE)


def user_element(account: Account) -> domish.Element:
    user = domish.Element((PIE, "user"))
    user["name"] = account.name
    for credentials in account.credentials:
        scram = user.addElement((PIE_SCRAM, "scram-credentials"))
        scram["mechanism"] = SCRAM_MECHANISM[credentials.hash_name]
        scram.addElement("iter-count", content=str(credentials.iterations))
        scram.addElement("salt", content=_b64(credentials.salt))
        scram.addElement("server-key", content=_b64(credentials.server_key))
        scram.addElement("stored-key", content=_b64(credentials.stored_key))
    if account.roster:
        user.addChild(roster_query(account))
    for request in account.requests:
        user.addChild(request)
    if account.vcard is not None:
        user.addChild(account.vcard)
    if account.private:
        query = user.addElement((ns.PRIVATE, "query"))
        for element in account.private:
            query.addChild(element)
    if account.offline:
        offline = user.addElement((PIE, "offline-messages"))
        for message, _stamp in account.offline:
            offline.addChild(message)
    _add_pep(user, account)
    if account.archive:
        archive = user.addElement((PIE_MAM, "archive"))
        for entry in account.archive:
            result = archive.addElement((ns.MAM, "result"))
            if entry.id:
                result["id"] = entry.id
            forwarded = result.addElement((ns.FORWARD, "forwarded"))
            forwarded.addElement((ns.DELAY, "delay"))["stamp"] = format_stamp(entry.stamp)
            forwarded.addChild(entry.message)
    return user


def roster_query(account: Account) -> domish.Element:
    query = domish.Element((ns.ROSTER, "query"))
    for item in account.roster:
        query.addChild(item_element(item))
    return query


def _add_pep(user: domish.Element, account: Account) -> None:
    if not account.pep:
        return
    owner = user.addElement((ns.PUBSUB_OWNER, "pubsub"))
    for node in account.pep:
        configure = owner.addElement("configure")
        configure["node"] = node.name
        if node.config is not None:
            configure.addChild(node.config)
        if node.affiliations:
            affiliations = owner.addElement("affiliations")
            affiliations["node"] = node.name
            for jid, affiliation in sorted(node.affiliations.items()):
                element = affiliations.addElement("affiliation")
                element["jid"], element["affiliation"] = jid, affiliation
    published = user.addElement((ns.PUBSUB, "pubsub"))
    for node in account.pep:
        items = published.addElement("items")
        items["node"] = node.name
        for item_id, payload in node.items:
            item = items.addElement("item")
            item["id"] = item_id
            if payload is not None:
                item.addChild(payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
