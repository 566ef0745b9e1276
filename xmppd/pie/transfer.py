# -*- test-case-name: tests.unit.test_xep0227 -*-
"""``Account`` values into our stores and out of them, through each feature's own store API.

Where each feature keeps an account's data (the plugins open the same stores):

- accounts and SCRAM keys: ``storage.users``; rosters and pending requests:
  ``storage.roster``; offline messages: ``storage.offline``;
- vCards: keyval ``vcard`` (xmppd.personal.vcards.VCards); private XML: map ``private``
  (xmppd.personal.private_xml.PrivateXML);
- PEP nodes and items: xmppd.pubsub.store.NodeStore owned by the account's bare JID;
- the MAM archive: ``mam`` in the message archive's own table (SQLArchiveLog), owner the
  account, with = the other party's bare JID. Its ids are made in time order by
  xmppd.mam.ids; an imported archive keeps the old server's ids (clients may hold them), so
  it goes in the way an archive from before that table does: into the generic archive
  ``mam``, then ``adopt`` moves it over with its ids and order.

A password in a file is turned into SCRAM keys at once and never stored or logged. Sizes
are not held to the plugins' limits for what clients send: an import keeps what the old
server kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import Form, FormError, parse_form
from xmppd.jid import JID, InvalidJID, parse_jid, prepare_password
from xmppd.personal.elements import from_text
from xmppd.personal.private_xml import PrivateXML
from xmppd.personal.vcards import VCards
from xmppd.pie.model import Account, ArchivedMessage, PepNode
from xmppd.pubsub.config import PEP_DEFAULTS, Limits, NodeConfig, apply_form, config_form
from xmppd.pubsub.model import AFFILIATIONS, Item, Node
from xmppd.pubsub.store import NodeStore
from xmppd.sasl.credentials import HASHES, derive_all
from xmppd.storage.records import ArchiveEntry, ArchiveQuery
from xmppd.storage.stores.archive_log import SQLArchiveLog
from xmppd.xml.stored import stanza_from_text, stanza_to_text

IMPORT_MAX_SIZE = 16 * 1024 * 1024  # bytes of one vCard or one account's private XML
IMPORT_MAX_OFFLINE = 1_000_000  # offline messages of one account
PEP_LIMITS = Limits()
VCARD_STORE, PRIVATE_STORE, MAM_STORE = "vcard", "private", "mam"

Say = Callable[[str], None]  # one line for the operator


class Importer:
    """Writes accounts read from XEP-0227 files into ``storage``, for ``domains`` only."""

    def __init__(self, storage, domains: Iterable[str], replace: bool = False,
                 say: Say = print, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.domains = frozenset(domains)
        self.replace = replace
        self.say = say
        self.clock = clock
        self.vcards = VCards(storage.open_store(VCARD_STORE, "keyval"), IMPORT_MAX_SIZE)
        self.private = PrivateXML(storage.open_store(PRIVATE_STORE, "map"), IMPORT_MAX_SIZE)
        self.archive = storage.open_store(MAM_STORE, "archive")
        self.archive_log = SQLArchiveLog(storage, MAM_STORE)

    async def import_account(self, account: Account) -> bool:
        """Create ``account`` with all its data; False (and why, said) when it is skipped."""
        jid = account.jid
        if account.host not in self.domains:
            self.say(f"skipped {jid}: {account.host} is not a domain of this server")
            return False
        users = self.storage.users
        if await users.user_exists(account.name, account.host):
            if not self.replace:
                self.say(f"skipped {jid}: the account exists (--replace replaces it and all "
                         "its data)")
                return False
            await users.delete_user(account.name, account.host)
        credentials = self._credentials(account)
        await users.create_user(account.name, account.host, credentials)
        try:
            await self._data(account)
        except Exception as error:  # nothing half-imported stays: the account goes again
            await users.delete_user(account.name, account.host)
            self.say(f"skipped {jid}: its data could not be stored ({error}); nothing of it "
                     "was kept")
            return False
        for note in account.notes:
            self.say(f"{jid}: {note}")
        self.say(f"imported {jid}: {summary(account)}")
        return True

    async def _data(self, account: Account) -> None:
        jid = account.jid
        owner = parse_jid(jid)
        await self._roster(account)
        if account.vcard is not None:
            await self._personal(account, "vCard", lambda: self.vcards.set(owner, account.vcard))
        if account.private:
            query = domish.Element((ns.PRIVATE, "query"))
            for element in account.private:
                query.addChild(element)
            await self._personal(account, "private XML", lambda: self.private.set(owner, query))
        for message, stamp in account.offline:
            await self.storage.offline.store(account.name, account.host, stanza_to_text(message),
                                             self.clock() if stamp is None else stamp,
                                             IMPORT_MAX_OFFLINE)
        for node in account.pep:
            await self._pep_node(account, node)
        if account.archive:
            await self.archive.append_many(
                [(jid, archive_entry(jid, entry)) for entry in account.archive])
            await self.archive_log.adopt()

    def _credentials(self, account: Account) -> list:
        if account.password is not None:
            try:
                return derive_all(prepare_password(account.password))
            except (InvalidJID, ValueError):
                account.notes.append("the password in the file is not a valid password "
                                     "(RFC 8265): kept its SCRAM keys only")
        if not account.credentials:
            account.notes.append("no password or SCRAM keys we can use: nobody can log in "
                                 "until `xmppdctl passwd` sets one")
        elif "sha-256" not in {c.hash_name for c in account.credentials}:
            account.notes.append("SCRAM-SHA-1 keys only: SCRAM-SHA-256 comes with the next "
                                 "login with PLAIN or the next password change")
        return list(account.credentials)

    async def _roster(self, account: Account) -> None:
        roster = self.storage.roster
        for item in account.roster:
            await roster.put_item(account.name, account.host, item)
        for request in account.requests:
            await roster.add_request(account.name, account.host, request["from"],
                                     stanza_to_text(request))

    async def _personal(self, account: Account, what: str, store: Callable) -> None:
        try:
            await store()
        except StanzaError as error:
            account.notes.append(f"skipped the {what}: {error.text or error.condition}")

    async def _pep_node(self, account: Account, node: PepNode) -> None:
        store = NodeStore(self.storage, account.jid, PEP_DEFAULTS)
        config = node_config(node.config, account.notes, node.name)
        affiliations = {}
        for jid, affiliation in node.affiliations.items():
            try:
                bare = parse_jid(jid).bare().full()
            except InvalidJID:
                continue
            if affiliation in AFFILIATIONS and affiliation != "none" and bare != account.jid:
                affiliations[bare] = affiliation
        await store.create_node(Node(node.name, config, affiliations))
        keep = config.kept_items(PEP_LIMITS)
        start = self.clock()
        for index, (item_id, payload) in enumerate(node.items):  # oldest first
            text = "" if payload is None else stanza_to_text(payload)
            await store.add_item(node.name, Item(item_id, account.jid, text,
                                                 start + index / 1000), keep)


def node_config(form: domish.Element | None, notes: list[str], node: str) -> NodeConfig:
    """A PEP node's configuration from an exported form: each option we have is taken, one
    we lack or a value we cannot take is noted and left at our PEP default."""
    config = PEP_DEFAULTS
    if form is None:
        return config
    try:
        fields = parse_form(form).field_list
    except FormError as error:
        notes.append(f"PEP node {node}: configuration not read ({error.text}); defaults kept")
        return config
    for field in fields:
        if field.var in (None, "FORM_TYPE"):
            continue
        single = Form.build("submit", [field], form_type=ns.PUBSUB_NODE_CONFIG)
        try:
            config = apply_form(config, single, PEP_LIMITS)
        except StanzaError:
            notes.append(f"PEP node {node}: option {field.var} = {', '.join(field.values)!r} "
                         "not taken")
    return config


def archive_entry(owner: str, entry: ArchivedMessage) -> ArchiveEntry:
    """The archive row for one message: 'with' is the other party's bare JID."""
    message = entry.message
    sender, recipient = _bare(message.getAttribute("from")), _bare(message.getAttribute("to"))
    with_jid = recipient if sender == owner else (sender or recipient or owner)
    return ArchiveEntry(entry.stamp, with_jid or owner, stanza_to_text(message), entry.id)


def _bare(text: str | None) -> str | None:
    try:
        return parse_jid(text).bare().full() if text else None
    except InvalidJID:
        return None


def summary(account: Account) -> str:
    parts = [f"{len(account.roster)} contacts", f"{len(account.requests)} requests",
             "a vCard" if account.vcard is not None else "no vCard",
             f"{len(account.private)} private XML", f"{len(account.offline)} offline",
             f"{len(account.pep)} PEP nodes", f"{len(account.archive)} archived"]
    return ", ".join(parts)


class Exporter:
    """Reads accounts out of ``storage`` as ``Account`` values."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.vcards = VCards(storage.open_store(VCARD_STORE, "keyval"), IMPORT_MAX_SIZE)
        self.private = storage.open_store(PRIVATE_STORE, "map")
        # Entries not adopted yet (no server start since the table came) are the older ones.
        self.archives = (storage.open_store(MAM_STORE, "archive"),
                         SQLArchiveLog(storage, MAM_STORE))

    async def accounts(self, domain: str | None = None) -> list[str]:
        return await self.storage.users.list_users(domain)

    async def export_account(self, jid: str) -> Account:
        owner = parse_jid(jid)
        account = Account(owner.host, owner.user)
        users, roster = self.storage.users, self.storage.roster
        for hash_name in HASHES:
            credentials = await users.get_credentials(owner.user, owner.host, hash_name)
            if credentials is not None:
                account.credentials.append(credentials)
        account.roster = list((await roster.get_roster(owner.user, owner.host)).items)
        for _contact, text in await roster.get_requests(owner.user, owner.host):
            _append_parsed(account.requests, text)
        account.vcard = await self.vcards.get(owner)
        for key, text in sorted((await self.private.items(jid)).items()):
            _append_parsed(account.private, from_text(text, f"private XML {key} of {jid}"))
        for _id, text, stamp in await self.storage.offline.fetch(owner.user, owner.host):
            message = stanza_from_text(text)
            if message is not None:
                account.offline.append((message, stamp))
        await self._pep(account, owner)
        for archive in self.archives:
            page = await archive.query(jid, ArchiveQuery())
            for entry in page.entries:
                message = stanza_from_text(entry.payload)
                if message is not None:
                    account.archive.append(ArchivedMessage(entry.id, entry.stamp, message))
        return account

    async def _pep(self, account: Account, owner: JID) -> None:
        store = NodeStore(self.storage, account.jid, PEP_DEFAULTS)
        for node in await store.nodes():
            exported = PepNode(node.name, config_form(node.config, "submit").to_element(),
                               dict(node.affiliations))
            items, _page = await store.query_items(node.name, ArchiveQuery())
            for item in items:
                payload = stanza_from_text(item.payload) if item.payload else None
                exported.items.append((item.id, payload))
            account.pep.append(exported)


def _append_parsed(found: list, element) -> None:
    if isinstance(element, str):
        element = stanza_from_text(element)
    if element is not None:
        found.append(element)
