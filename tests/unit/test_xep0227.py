"""XEP-0227 import and export against real SQLite: files as Prosody and ejabberd write them,
every kind of data into the stores the plugins read, our export back into our import, and
the rules (existing accounts, foreign domains, passwords never stored, PLAIN upgrading
SCRAM-SHA-1-only accounts)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os

from twisted.internet import defer
from twisted.trial import unittest

from xmppd.jid import parse_jid
from xmppd.pie.model import PieError
from xmppd.pie.reader import read_bytes, read_paths
from xmppd.pie.transfer import Exporter, Importer
from xmppd.pie.writer import user_xml, write_document
from xmppd.pubsub.config import PEP_DEFAULTS
from xmppd.pubsub.store import NodeStore
from xmppd.sasl.credentials import derive_credentials
from xmppd.storage.auth import StorageAuthBackend
from xmppd.storage.records import ArchiveQuery, RosterItem
from xmppd.storage.sqlite import SQLiteStorage
from xmppd.storage.stores.archive_log import SQLArchiveLog
from xmppd.xml.stored import stanza_from_text

DOMAIN = "example.org"
PASSWORD = "s3cret pass phrase"
SALT = b"0123456789abcdef"
SHA1 = derive_credentials(PASSWORD, "sha-1", salt=SALT, iterations=4096)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# As Prosody 0.12's mod_storage_xep0227 writes one account (prosody-migrator output): SCRAM
# keys for SHA-1, a roster with a version, pending requests as <presence/> without a
# namespace of their own, vCard, private XML, PEP configuration and items, a MAM archive.
PROSODY_FILE = f"""<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'><host jid='{DOMAIN}'><user name='Juliet'>
<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>
<server-key>{b64(SHA1.server_key)}</server-key><stored-key>{b64(SHA1.stored_key)}</stored-key>
<iter-count>4096</iter-count><salt>{b64(SALT)}</salt></scram-credentials>
<query xmlns='jabber:iq:roster' version='3'>
<item jid='romeo@montague.net' subscription='both' name='Romeo'><group>Friends</group>
<group>Lovers</group></item>
<item jid='nurse@{DOMAIN}' subscription='none' ask='subscribe'/>
<item jid='juliet@{DOMAIN}' subscription='both'/>
</query>
<presence from='tybalt@capulet.lit' type='subscribe'/>
<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><NICKNAME>jul</NICKNAME></vCard>
<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference
 jid='room@conference.{DOMAIN}' autojoin='true'/></storage></query>
<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:xmpp:bookmarks:1'>
<x xmlns='jabber:x:data' type='submit'>
<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value>
</field><field var='pubsub#access_model'><value>whitelist</value></field>
<field var='pubsub#max_items'><value>max</value></field>
<field var='pubsub#persist_items'><value>1</value></field>
<field var='pubsub#prosody_only_option'><value>x</value></field>
</x></configure></pubsub>
<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'>
<item id='room@conference.{DOMAIN}'><conference xmlns='urn:xmpp:bookmarks:1' name='Room'
 autojoin='true'/></item>
<item id='other@conference.{DOMAIN}'><conference xmlns='urn:xmpp:bookmarks:1' name='Other'/>
</item></items></pubsub>
<archive xmlns='urn:xmpp:pie:0#mam'>
<result xmlns='urn:xmpp:mam:2' id='28482-98726-73623'><forwarded xmlns='urn:xmpp:forward:0'>
<delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>
<message xmlns='jabber:client' to='juliet@{DOMAIN}/balcony' from='romeo@montague.net/orchard'
 type='chat'><body>Call me but love</body></message></forwarded></result>
<result xmlns='urn:xmpp:mam:2' id='5d398-28273-f7382'><forwarded xmlns='urn:xmpp:forward:0'>
<delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:09:32Z'/>
<message xmlns='jabber:client' to='romeo@montague.net/orchard' from='juliet@{DOMAIN}/balcony'
 type='chat' id='8a54s'><body>What man art thou</body></message></forwarded></result>
</archive>
<offline-messages><message xmlns='jabber:client' from='romeo@montague.net/orchard'
 to='juliet@{DOMAIN}' type='chat'><body>Neither, fair saint</body>
<delay xmlns='urn:xmpp:delay' from='{DOMAIN}' stamp='1999-07-21T00:32:29Z'>Offline Storage</delay>
</message></offline-messages>
<unknown xmlns='urn:example:whatever'/>
</user></host></server-data>
"""


def ejabberd_host_file(password: str) -> str:
    return (f"<?xml version='1.0' encoding='UTF-8'?>"
            f"<host xmlns='urn:xmpp:pie:0' jid='{DOMAIN}'>"
            f"<user name='bob' password='{password}'>"
            f"<query xmlns='jabber:iq:roster'><item jid='alice@{DOMAIN}' subscription='to'/>"
            f"</query></user></host>")


def run(coroutine) -> defer.Deferred:
    return defer.ensureDeferred(coroutine)


class ReaderTests(unittest.TestCase):
    def test_prosody_file(self):
        (account,) = read_bytes(PROSODY_FILE.encode())
        self.assertEqual(account.jid, f"juliet@{DOMAIN}")  # the name is prepared
        (credentials,) = account.credentials
        self.assertEqual(credentials, SHA1)
        self.assertIsNone(account.password)
        self.assertEqual(account.roster, [
            RosterItem("romeo@montague.net", "Romeo", ("Friends", "Lovers"), "both"),
            RosterItem(f"nurse@{DOMAIN}", None, (), "none", pending_out=True),
        ])  # the self-contact is dropped
        (request,) = account.requests
        self.assertEqual((request.uri, request["from"], request["to"]),
                         ("jabber:client", "tybalt@capulet.lit", f"juliet@{DOMAIN}"))
        self.assertEqual(account.vcard.name, "vCard")
        self.assertEqual([e.name for e in account.private], ["storage"])
        (node,) = account.pep
        self.assertEqual((node.name, [i for i, _ in node.items]),
                         ("urn:xmpp:bookmarks:1",
                          [f"room@conference.{DOMAIN}", f"other@conference.{DOMAIN}"]))
        self.assertEqual([m.id for m in account.archive], ["28482-98726-73623",
                                                           "5d398-28273-f7382"])
        self.assertEqual(account.archive[0].stamp, 1278803305.0)
        ((message, stamp),) = account.offline
        self.assertEqual((message.uri, stamp), ("jabber:client", 932517149.0))
        self.assertEqual(account.notes, ["skipped <unknown xmlns='urn:example:whatever'/>: "
                                         "not supported"])

    def test_ejabberd_plain_password(self):
        (account,) = read_bytes(ejabberd_host_file("pl&amp;ain").encode())
        self.assertEqual((account.password, account.credentials), ("pl&ain", []))
        self.assertEqual([i.contact for i in account.roster], [f"alice@{DOMAIN}"])

    def test_ejabberd_scram_password_attributes(self):
        sha256 = derive_credentials(PASSWORD, "sha-256", salt=SALT, iterations=4096)
        for prefix, expected in (("", SHA1), ("sha256,", sha256)):
            attribute = (f"scram:{prefix}{b64(expected.stored_key)},{b64(expected.server_key)},"
                         f"{b64(SALT)},4096")
            (account,) = read_bytes(ejabberd_host_file(attribute).encode())
            self.assertEqual((account.password, account.credentials), (None, [expected]))

    def test_ejabberd_scram_credentials_encoded_twice(self):
        """ejabberd 23.01's export_piefxis: <scram-credentials/> whose salt and keys are
        base64 of the base64 text it keeps; the salt SCRAM uses is the decoded one."""
        salt = base64.b64encode(SALT)  # what ejabberd keeps and sends as s=
        raw_salt = SALT
        keys = derive_credentials(PASSWORD, "sha-1", salt=raw_salt, iterations=4096)
        twice = {name: b64(base64.b64encode(value)) for name, value in (
            ("salt", raw_salt), ("server-key", keys.server_key),
            ("stored-key", keys.stored_key))}
        self.assertEqual(base64.b64decode(twice["salt"]), salt)
        user = (f"<host xmlns='urn:xmpp:pie:0' jid='{DOMAIN}'><user name='alice'>"
                "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
                f"<iter-count>4096</iter-count><salt>{twice['salt']}</salt>"
                f"<server-key>{twice['server-key']}</server-key>"
                f"<stored-key>{twice['stored-key']}</stored-key></scram-credentials>"
                "</user></host>")
        (account,) = read_bytes(user.encode())
        self.assertEqual((account.credentials, account.notes), ([keys], []))

    def test_unusable_credentials_are_noted_not_kept(self):
        bad = ejabberd_host_file("scram:c2hvcnQ=,c2hvcnQ=,c2FsdA==,4096")
        (account,) = read_bytes(bad.encode())
        self.assertEqual(account.credentials, [])
        self.assertIn("wrong key sizes", account.notes[0])
        sha512 = PROSODY_FILE.replace("SCRAM-SHA-1", "SCRAM-SHA-512")
        (account,) = read_bytes(sha512.encode())
        self.assertEqual(account.credentials, [])
        self.assertIn("SCRAM-SHA-512", account.notes[0])

    def test_broken_files_fail_with_their_name(self):
        with self.assertRaisesRegex(PieError, "x.xml: not well-formed"):
            read_bytes(b"<server-data xmlns='urn:xmpp:pie:0'><host>", "x.xml")
        with self.assertRaisesRegex(PieError, "not a XEP-0227 file"):
            read_bytes(b"<foo/>")
        with self.assertRaisesRegex(PieError, "not a valid JID"):
            read_bytes(f"<host xmlns='urn:xmpp:pie:0' jid='{DOMAIN}'><user name='a@b'/></host>"
                       .encode())

    def test_xinclude_and_directories(self):
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, f"{DOMAIN}.xml"), "w") as host:
            host.write(ejabberd_host_file("pw"))
        with open(os.path.join(directory, "main.xml"), "w") as main:
            main.write("<server-data xmlns='urn:xmpp:pie:0' "
                       "xmlns:xi='http://www.w3.org/2001/XInclude'>"
                       f"<xi:include href='{DOMAIN}.xml'/></server-data>")
        with open(os.path.join(directory, "juliet.xml"), "w") as other:
            other.write(PROSODY_FILE)
        found = sorted(a.jid for a in read_paths([directory]))  # the included file once
        self.assertEqual(found, [f"bob@{DOMAIN}", f"juliet@{DOMAIN}"])
        self.assertEqual([a.jid for a in read_paths([os.path.join(directory, "main.xml")])],
                         [f"bob@{DOMAIN}"])


class TransferTests(unittest.TestCase):
    def setUp(self):
        self.storage = SQLiteStorage(os.path.join(self.mktemp(), "xmppd.sqlite"))
        self.lines: list[str] = []
        return self.storage.open()

    def tearDown(self):
        return self.storage.close()

    def importer(self, storage=None, replace=False) -> Importer:
        return Importer(storage or self.storage, [DOMAIN], replace, say=self.lines.append,
                        clock=lambda: 1700000000.0)

    async def _import(self, text: str, storage=None, replace=False) -> list[bool]:
        importer = self.importer(storage, replace)
        return [await importer.import_account(a) for a in read_bytes(text.encode())]

    def test_every_kind_of_data_lands_in_the_plugins_stores(self):
        return run(self._every_kind())

    async def _every_kind(self):
        self.assertEqual(await self._import(PROSODY_FILE), [True])
        storage, user = self.storage, ("juliet", DOMAIN)
        owner = f"juliet@{DOMAIN}"
        self.assertEqual(await storage.users.get_credentials(*user, "sha-1"), SHA1)
        self.assertIsNone(await storage.users.get_credentials(*user, "sha-256"))
        roster = await storage.roster.get_roster(*user)
        self.assertEqual([i.contact for i in roster.items],
                         [f"nurse@{DOMAIN}", "romeo@montague.net"])
        ((contact, request),) = await storage.roster.get_requests(*user)
        self.assertEqual(contact, "tybalt@capulet.lit")
        self.assertEqual(stanza_from_text(request)["type"], "subscribe")
        vcard = stanza_from_text(await storage.open_store("vcard", "keyval").get(owner))
        self.assertEqual(str(next(vcard.elements("vcard-temp", "FN"))), "Juliet Capulet")
        private = await storage.open_store("private", "map").items(owner)
        self.assertEqual(list(private), ["{storage:bookmarks}storage"])
        ((_id, text, stamp),) = await storage.offline.fetch(*user)
        self.assertEqual((stamp, "Neither" in text), (932517149.0, True))
        nodes = NodeStore(storage, owner, PEP_DEFAULTS)
        (node,) = await nodes.nodes()
        self.assertEqual((node.config.access_model, node.config.max_items),
                         ("whitelist", None))  # 'max' taken; the unknown option noted
        items, _page = await nodes.query_items(node.name, ArchiveQuery())
        self.assertEqual([i.id for i in items], [f"room@conference.{DOMAIN}",
                                                 f"other@conference.{DOMAIN}"])
        self.assertEqual(await storage.open_store("mam", "archive").count(owner), 0)
        page = await SQLArchiveLog(storage, "mam").query(owner, ArchiveQuery())  # MAM's table
        self.assertEqual([(e.id, e.with_jid, e.stamp) for e in page.entries], [
            ("28482-98726-73623", "romeo@montague.net", 1278803305.0),
            ("5d398-28273-f7382", "romeo@montague.net", 1278803372.0)])
        joined = "\n".join(self.lines)
        self.assertIn("pubsub#prosody_only_option", joined)
        self.assertIn("SCRAM-SHA-1 keys only", joined)
        self.assertIn(f"imported juliet@{DOMAIN}: 2 contacts, 1 requests, a vCard", joined)

    def test_export_round_trips_into_import(self):
        return run(self._round_trip())

    async def _round_trip(self):
        await self._import(PROSODY_FILE)
        await self._import(ejabberd_host_file("bobs-password"))
        first = await self._export(self.storage)
        other = SQLiteStorage(os.path.join(self.mktemp(), "other.sqlite"))
        await other.open()
        try:
            self.assertEqual(await self._import(first.decode(), other), [True, True])
            second = await self._export(other)
        finally:
            await other.close()
        self.assertEqual(second, first)
        self.assertIn(b"mechanism='SCRAM-SHA-256'", first)  # bob's derived keys
        self.assertNotIn(b"bobs-password", first)

    async def _export(self, storage) -> bytes:
        exporter = Exporter(storage)
        accounts = [await exporter.export_account(j) for j in await exporter.accounts()]
        out = io.BytesIO()
        self.assertEqual(write_document(out, [(DOMAIN, accounts)]), len(accounts))
        return out.getvalue()

    def test_existing_accounts_are_skipped_unless_replaced(self):
        return run(self._existing())

    async def _existing(self):
        await self._import(ejabberd_host_file("first"))
        self.assertEqual(await self._import(ejabberd_host_file("second")), [False])
        self.assertIn("the account exists", self.lines[-1])
        auth = StorageAuthBackend(self.storage.users)
        self.assertTrue(await auth.check_password("bob", DOMAIN, "first"))
        self.assertEqual(await self._import(ejabberd_host_file("second"), replace=True), [True])
        self.assertTrue(await auth.check_password("bob", DOMAIN, "second"))
        self.assertFalse(await auth.check_password("bob", DOMAIN, "first"))

    def test_an_account_whose_data_fails_is_not_kept_half(self):
        return run(self._half())

    async def _half(self):
        broken = PROSODY_FILE.replace("<body>Neither, fair saint</body>", "<body>x</body>")
        (account,) = read_bytes(broken.encode())
        account.offline.append(("not an element", None))  # the offline store refuses it
        importer = self.importer()
        self.assertFalse(await importer.import_account(account))
        self.assertIn("its data could not be stored", self.lines[-1])
        self.assertEqual(await self.storage.users.list_users(), [])
        owner = f"juliet@{DOMAIN}"
        self.assertEqual(await self.storage.open_store("vcard", "keyval").get(owner), None)
        self.assertEqual((await self.storage.roster.get_roster("juliet", DOMAIN)).items, ())

    def test_foreign_domains_are_skipped(self):
        return run(self._foreign())

    async def _foreign(self):
        other = ejabberd_host_file("pw").replace(f"jid='{DOMAIN}'", "jid='elsewhere.net'")
        self.assertEqual(await self._import(other), [False])
        self.assertIn("elsewhere.net is not a domain of this server", self.lines[-1])
        self.assertEqual(await self.storage.users.list_users(), [])

    def test_plain_password_becomes_keys_and_is_never_stored(self):
        return run(self._plain())

    async def _plain(self):
        password = "unmistakable-Password-4711"
        await self._import(ejabberd_host_file(password))
        await self.storage.close()
        for name in os.listdir(os.path.dirname(self.storage.path)):
            with open(os.path.join(os.path.dirname(self.storage.path), name), "rb") as f:
                self.assertNotIn(password.encode(), f.read())
        self.assertNotIn(password, "\n".join(self.lines))
        self.storage = SQLiteStorage(self.storage.path)
        await self.storage.open()
        sha256 = await self.storage.users.get_credentials("bob", DOMAIN, "sha-256")
        derived = derive_credentials(password, "sha-256", sha256.salt, sha256.iterations)
        self.assertEqual(derived, sha256)

    def test_plain_login_upgrades_an_account_with_sha1_keys_only(self):
        return run(self._upgrade())

    async def _upgrade(self):
        await self._import(PROSODY_FILE)
        auth = StorageAuthBackend(self.storage.users)
        self.assertFalse(await auth.check_password("juliet", DOMAIN, "wrong"))
        self.assertIsNone(await self.storage.users.get_credentials("juliet", DOMAIN, "sha-256"))
        self.assertTrue(await auth.check_password("juliet", DOMAIN, PASSWORD))
        sha256 = await self.storage.users.get_credentials("juliet", DOMAIN, "sha-256")
        self.assertIsNotNone(sha256)
        self.assertTrue(await auth.check_password("juliet", DOMAIN, PASSWORD))

    def test_scram_sha1_keys_from_the_file_verify_a_scram_proof(self):
        """The imported keys are what RFC 5802 checks a client proof against."""
        (account,) = read_bytes(PROSODY_FILE.encode())
        (keys,) = account.credentials
        salted = hashlib.pbkdf2_hmac("sha1", PASSWORD.encode(), keys.salt, keys.iterations)
        client_key = hmac.new(salted, b"Client Key", "sha1").digest()
        self.assertEqual(hashlib.sha1(client_key).digest(), keys.stored_key)


class WriterTests(unittest.TestCase):
    def test_user_xml_is_read_back(self):
        (account,) = read_bytes(PROSODY_FILE.encode())
        account.notes.clear()
        text = b"<host xmlns='urn:xmpp:pie:0' jid='example.org'>" + user_xml(account) + b"</host>"
        (again,) = read_bytes(text)
        self.assertEqual((again.credentials, again.roster, again.notes),
                         (account.credentials, account.roster, []))
        self.assertEqual(parse_jid(again.jid).user, "juliet")
