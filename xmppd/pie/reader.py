# -*- test-case-name: tests.unit.test_xep0227 -*-
"""XEP-0227 files into ``Account`` values.

What the real exporters write, besides the XEP's own examples:

- Prosody's ``prosody-migrator`` (output store ``xep0227``) writes one file per account,
  ``user@host.xml``; pending subscription requests are <presence/> children of <user/>
  without a namespace of their own (so in urn:xmpp:pie:0), its SCRAM keys are
  SCRAM-SHA-1 (``password_hash`` in its config chooses).
- ejabberd's ``export_piefxis`` writes a <server-data/> file that XIncludes one file per
  host, whose root is a <host/>; passwords are plain in the 'password' attribute, or, with
  ``auth_password_format: scram``, ``scram:[sha256,]STORED,SERVER,SALT,ITERATIONS`` in it.

Anything else in a <user/> is noted and skipped (XEP-0227 §3: ignore, notify the operator).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator
from pathlib import Path

from twisted.words.xish import domish

from xmppd import ns
from xmppd.forms import FormError
from xmppd.jid import InvalidJID, parse_jid
from xmppd.mam.dates import parse_stamp
from xmppd.pie.model import (
    DIGEST_SIZES,
    MECHANISMS,
    PIE,
    PIE_MAM,
    PIE_SCRAM,
    XINCLUDE,
    Account,
    ArchivedMessage,
    PepNode,
    PieError,
)
from xmppd.sasl.credentials import ScramCredentials
from xmppd.storage.records import SUBSCRIPTIONS, RosterItem

STANZA_NAMESPACES = (ns.CLIENT, PIE, None, "")  # what a stanza in a file may be qualified by
MAX_INCLUDE_DEPTH = 4
# ejabberd's password attribute for SCRAM keys: its hash names, ours.
EJABBERD_HASHES = {"sha": "sha-1", "sha256": "sha-256"}


def read_paths(paths: list[str | Path]) -> Iterator[Account]:
    """Every account in the files and directories ``paths``. A directory is read as
    prosody-migrator leaves one: each ``*.xml`` in it, except those another file includes."""
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".xml" and p.is_file())
            included = {target for f in files for target in _includes_of(f)}
            for file in files:
                if file.resolve() not in included:
                    yield from read_file(file)
        else:
            yield from read_file(path)


def read_file(path: str | Path, depth: int = 0) -> Iterator[Account]:
    """The accounts of one file, with the files it XIncludes."""
    path = Path(path)
    root = parse_document(_read_bytes(path), str(path))
    yield from _read_root(root, path, depth)


def read_bytes(data: bytes, name: str = "<data>") -> list[Account]:
    """The accounts of one document held in memory (no XIncludes)."""
    return list(_read_root(parse_document(data, name), None, 0))


def parse_document(data: bytes, name: str) -> domish.Element:
    """The whole document as one element tree; PieError when it is not well-formed XML."""
    stream = domish.elementStream()
    found: list[domish.Element] = []
    ended: list[bool] = []
    stream.DocumentStartEvent = found.append
    stream.ElementEvent = lambda element: found[0].addChild(element)
    stream.DocumentEndEvent = lambda: ended.append(True)
    try:
        stream.parse(data)
    except Exception as error:  # expat's ExpatError, or domish on a broken tree
        raise PieError(f"{name}: not well-formed XML ({error})") from None
    if not found or not ended:
        raise PieError(f"{name}: not well-formed XML (the document ends early)")
    return found[0]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise PieError(f"cannot read {path}: {error.strerror or error}") from None


def _read_root(root: domish.Element, path: Path | None, depth: int) -> Iterator[Account]:
    name = str(path) if path is not None else "<data>"
    if root.uri != PIE or root.name not in ("server-data", "host"):
        raise PieError(f"{name}: not a XEP-0227 file (its root is <{root.name} "
                       f"xmlns='{root.uri}'/>, expected <server-data xmlns='{PIE}'/>)")
    hosts = [root] if root.name == "host" else list(root.elements())
    for element in hosts:
        if element.uri == XINCLUDE and element.name == "include":
            yield from _read_include(element, path, depth)
        elif element.uri == PIE and element.name == "host":
            yield from _read_host(element, path, depth)
        else:
            raise PieError(f"{name}: unexpected <{element.name}/> in <server-data/>")


def _read_include(element: domish.Element, path: Path | None, depth: int) -> Iterator[Account]:
    href = element.getAttribute("href")
    if path is None or not href:
        raise PieError("an XInclude without href, or in a document read from memory")
    if depth >= MAX_INCLUDE_DEPTH:
        raise PieError(f"{path}: XIncludes nested deeper than {MAX_INCLUDE_DEPTH}")
    yield from read_file(_resolve(path, href), depth + 1)


def _resolve(path: Path, href: str) -> Path:
    href = href.removeprefix("file://")
    return Path(href) if os.path.isabs(href) else path.parent / href


def _includes_of(path: Path) -> set[Path]:
    """The files ``path`` XIncludes (resolved), or none when it cannot be read."""
    try:
        root = parse_document(_read_bytes(path), str(path))
    except PieError:
        return set()
    return {_resolve(path, e.getAttribute("href")).resolve() for e in root.elements()
            if e.uri == XINCLUDE and e.name == "include" and e.getAttribute("href")}


def _read_host(host: domish.Element, path: Path | None, depth: int) -> Iterator[Account]:
    domain = host.getAttribute("jid")
    if not domain:
        raise PieError(f"{path or '<data>'}: a <host/> without its 'jid'")
    for element in host.elements():
        if element.uri == XINCLUDE and element.name == "include":
            yield from _read_include(element, path, depth)
        elif element.uri == PIE and element.name == "user":
            yield read_user(domain, element)


def read_user(domain: str, user: domish.Element) -> Account:
    """One <user/> of host ``domain`` as an Account; PieError if its JID is not valid."""
    name = user.getAttribute("name") or ""
    try:
        jid = parse_jid(f"{name}@{domain}")
    except InvalidJID as error:
        raise PieError(f"<user name='{name}'/> of {domain}: not a valid JID ({error})") from None
    if not jid.user or jid.resource is not None:
        raise PieError(f"<user name='{name}'/> of {domain}: not a valid account name")
    account = Account(jid.host, jid.user)
    password = user.getAttribute("password")
    if password:
        _read_password(account, password)
    for child in user.elements():
        reader = READERS.get((child.uri, child.name))
        if reader is None and child.name in ("presence", "message") and (
                child.uri in STANZA_NAMESPACES):
            reader = READERS.get((ns.CLIENT, child.name))
        if reader is None:
            account.notes.append(f"skipped <{child.name} xmlns='{child.uri}'/>: not supported")
            continue
        reader(account, child)
    return account


# ------------------------------------------------------------------ credentials


def _read_password(account: Account, password: str) -> None:
    if not password.startswith("scram:"):
        account.password = password
        return
    fields = password[len("scram:"):].split(",")
    hash_name = "sha-1"
    if len(fields) == 5:
        hash_name = EJABBERD_HASHES.get(fields.pop(0), "")
    if len(fields) != 4 or not hash_name:
        account.notes.append("skipped an ejabberd SCRAM password attribute in an unknown form")
        return
    stored, server, salt, iterations = fields
    _add_credentials(account, hash_name, iterations, salt, server, stored, "ejabberd SCRAM")


def _read_scram(account: Account, element: domish.Element) -> None:
    mechanism = element.getAttribute("mechanism") or ""
    hash_name = MECHANISMS.get(mechanism.upper().removesuffix("-PLUS"))
    if hash_name is None:
        account.notes.append(f"skipped {mechanism or 'unnamed'} credentials: not a mechanism "
                             "we offer")
        return
    texts = {name: _child_text(element, PIE_SCRAM, name)
             for name in ("iter-count", "salt", "server-key", "stored-key")}
    _add_credentials(account, hash_name, texts["iter-count"], texts["salt"],
                     texts["server-key"], texts["stored-key"], mechanism)


def _add_credentials(account: Account, hash_name: str, iterations, salt, server, stored,
                     what: str) -> None:
    try:
        count = int(iterations or "")
        salt_bytes, server_key, stored_key = (_b64(salt), _b64(server), _b64(stored))
    except (ValueError, binascii.Error):
        account.notes.append(f"skipped {what} credentials: malformed")
        return
    size = DIGEST_SIZES[hash_name]
    if len(stored_key) != size and _twice_encoded(stored_key, size):
        # ejabberd 23.01 writes base64 of what it keeps, which is base64 already
        try:
            salt_bytes, server_key, stored_key = (_b64(salt_bytes.decode("ascii")),
                                                  _b64(server_key.decode("ascii")),
                                                  _b64(stored_key.decode("ascii")))
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            account.notes.append(f"skipped {what} credentials: malformed")
            return
    if count < 1 or not salt_bytes or len(server_key) != size or len(stored_key) != size:
        account.notes.append(f"skipped {what} credentials: wrong key sizes or iteration count")
        return
    account.credentials = [c for c in account.credentials if c.hash_name != hash_name]
    account.credentials.append(ScramCredentials(hash_name, salt_bytes, count, stored_key,
                                                server_key))


def _twice_encoded(data: bytes, size: int) -> bool:
    try:
        return len(_b64(data.decode("ascii"))) == size
    except ValueError:
        return False


def _b64(text: str | None) -> bytes:
    if text is None:
        raise ValueError("missing")
    return base64.b64decode("".join(text.split()), validate=True)


# ------------------------------------------------------------------ roster


def _read_roster(account: Account, query: domish.Element) -> None:
    seen = set()
    for item in query.elements(ns.ROSTER, "item"):
        raw = item.getAttribute("jid") or ""
        try:
            contact = parse_jid(raw).bare().full()
        except InvalidJID:
            account.notes.append(f"skipped roster item {raw!r}: not a valid JID")
            continue
        subscription = item.getAttribute("subscription") or "none"
        if subscription not in SUBSCRIPTIONS:
            account.notes.append(f"skipped roster item {contact}: subscription {subscription!r}")
            continue
        if contact == account.jid or contact in seen:
            continue
        seen.add(contact)
        groups = tuple(dict.fromkeys(_text(g) for g in item.elements(ns.ROSTER, "group")
                                     if _text(g)))
        account.roster.append(RosterItem(
            contact, item.getAttribute("name") or None, groups, subscription,
            pending_out=item.getAttribute("ask") == "subscribe",
            approved=item.getAttribute("approved") in ("true", "1")))


def _read_presence(account: Account, presence: domish.Element) -> None:
    if presence.getAttribute("type") != "subscribe":
        account.notes.append("skipped a <presence/> that is not a subscription request")
        return
    try:
        contact = parse_jid(presence.getAttribute("from") or "").bare()
    except InvalidJID:
        account.notes.append("skipped a subscription request without a valid 'from'")
        return
    request = _as_client(presence)
    request["from"] = contact.full()
    request["to"] = account.jid
    account.requests.append(request)


# ------------------------------------------------------------------ personal data


def _read_vcard(account: Account, vcard: domish.Element) -> None:
    account.vcard = vcard


def _read_private(account: Account, query: domish.Element) -> None:
    account.private.extend(query.elements())


def _read_offline(account: Account, container: domish.Element) -> None:
    for message in container.elements():
        if message.name != "message" or message.uri not in STANZA_NAMESPACES:
            account.notes.append(f"skipped <{message.name}/> among offline messages")
            continue
        account.offline.append((_as_client(message), _delay_stamp(message)))


def _read_message(account: Account, message: domish.Element) -> None:
    account.notes.append("skipped a <message/> outside <offline-messages/>")


def _read_pep_owner(account: Account, pubsub: domish.Element) -> None:
    nodes = {node.name: node for node in account.pep}
    for element in pubsub.elements():
        name = element.getAttribute("node")
        if not name:
            account.notes.append(f"skipped a PEP <{element.name}/> without a node")
            continue
        node = nodes.setdefault(name, PepNode(name))
        if node not in account.pep:
            account.pep.append(node)
        if element.name == "configure":
            node.config = next(element.elements(ns.DATA_FORMS, "x"), None)
        elif element.name == "affiliations":
            for affiliation in element.elements(ns.PUBSUB_OWNER, "affiliation"):
                jid, value = affiliation.getAttribute("jid"), affiliation.getAttribute(
                    "affiliation")
                if jid and value:
                    node.affiliations[jid] = value
        elif element.name == "subscriptions":
            account.notes.append(f"skipped the subscriptions of PEP node {name}: PEP "
                                 "subscribers are the contacts that ask (XEP-0163)")
        else:
            account.notes.append(f"skipped PEP <{element.name}/> of node {name}")


def _read_pep_items(account: Account, pubsub: domish.Element) -> None:
    nodes = {node.name: node for node in account.pep}
    for items in pubsub.elements(ns.PUBSUB, "items"):
        name = items.getAttribute("node")
        if not name:
            account.notes.append("skipped PEP <items/> without a node")
            continue
        node = nodes.setdefault(name, PepNode(name))
        if node not in account.pep:
            account.pep.append(node)
        for item in items.elements(ns.PUBSUB, "item"):
            item_id = item.getAttribute("id")
            if not item_id:
                account.notes.append(f"skipped an item without an id in PEP node {name}")
                continue
            node.items.append((item_id, next(item.elements(), None)))


def _read_archive(account: Account, archive: domish.Element) -> None:
    for result in archive.elements(ns.MAM, "result"):
        forwarded = next(result.elements(ns.FORWARD, "forwarded"), None)
        message = None if forwarded is None else next(
            (e for e in forwarded.elements() if e.name == "message"
             and e.uri in STANZA_NAMESPACES), None)
        stamp = None if forwarded is None else _delay_stamp(forwarded)
        if message is None or stamp is None:
            account.notes.append("skipped an archived message without a message or a stamp")
            continue
        account.archive.append(ArchivedMessage(result.getAttribute("id") or None, stamp,
                                               _as_client(message)))


READERS = {
    (PIE_SCRAM, "scram-credentials"): _read_scram,
    (ns.ROSTER, "query"): _read_roster,
    (ns.CLIENT, "presence"): _read_presence,
    (ns.CLIENT, "message"): _read_message,
    (ns.VCARD, "vCard"): _read_vcard,
    (ns.PRIVATE, "query"): _read_private,
    (PIE, "offline-messages"): _read_offline,
    (ns.PUBSUB_OWNER, "pubsub"): _read_pep_owner,
    (ns.PUBSUB, "pubsub"): _read_pep_items,
    (PIE_MAM, "archive"): _read_archive,
}


# ------------------------------------------------------------------ helpers


def _as_client(stanza: domish.Element) -> domish.Element:
    """The stanza in jabber:client, whatever namespace the file gave it (Prosody's have
    none, so they sit in the file's urn:xmpp:pie:0)."""
    stanza.uri = stanza.defaultUri = ns.CLIENT
    for child in stanza.elements():
        if child.uri in (PIE, None, ""):
            _as_client(child)
    return stanza


def _delay_stamp(element: domish.Element) -> float | None:
    delay = next(element.elements(ns.DELAY, "delay"), None)
    if delay is None or not delay.getAttribute("stamp"):
        return None
    try:
        return parse_stamp("stamp", delay["stamp"])
    except FormError:
        return None


def _child_text(element: domish.Element, uri: str, name: str) -> str | None:
    child = next(element.elements(uri, name), None)
    return None if child is None else _text(child)


def _text(element: domish.Element) -> str:
    return "".join(c for c in element.children if isinstance(c, str)).strip()
