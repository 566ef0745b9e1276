"""A real OMEMO (XEP-0384) client for the integration tests, built on slixmpp-omemo.

slixmpp-omemo (with python-omemo, Twomemo and Oldmemo) does the cryptography and the pubsub
traffic: on login the client publishes its device list and bundle under both OMEMO versions
(``urn:xmpp:omemo:2`` and ``eu.siacs.conversations.axolotl``) in its account's PEP service,
and before encrypting it fetches the peer's device list and bundles, subscribing to the peer's
device list node by hand when there is no mutual presence subscription.

What the plugin leaves to its user is supplied here: a storage (a dict the test keeps, so a
client that logs in again is the same OMEMO device), blind trust before verification (BTBV),
and, for ``urn:xmpp:omemo:2``, the Stanza Content Encryption envelope (XEP-0420) that
slixmpp-omemo 2.2 does not build or open yet: its ``encrypt_message`` only produces oldmemo
and its ``decrypt_message`` raises ``NotImplementedError`` on an omemo:2 payload. For omemo:2
this client calls the library's session manager directly with a minimal SCE envelope
(``<content><body/></content>``, ``<rpad/>``, ``<to/>``, ``<from/>``) and checks the
envelope's ``from`` and ``to`` on receipt.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import ssl
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

import oldmemo
import oldmemo.etree
import twomemo
import twomemo.etree
from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import JSONType
from slixmpp import ClientXMPP
from slixmpp.jid import JID
from slixmpp.plugins import register_plugin
from slixmpp.xmlstream.handler import CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp_omemo import XEP_0384

log = logging.getLogger(__name__)

TWOMEMO = twomemo.twomemo.NAMESPACE  # urn:xmpp:omemo:2
OLDMEMO = oldmemo.oldmemo.NAMESPACE  # eu.siacs.conversations.axolotl
SCE = "urn:xmpp:sce:1"
FALLBACK = "This message is OMEMO encrypted."


class MemoryStorage(Storage):
    """python-omemo's key/value storage over a dict the caller keeps (JSON values)."""

    def __init__(self, data: dict[str, JSONType] | None = None) -> None:
        super().__init__()
        self.data: dict[str, JSONType] = {} if data is None else data

    async def _load(self, key: str) -> Maybe[JSONType]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: JSONType) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class XEP_0384Test(XEP_0384):  # noqa: N801 - slixmpp's plugin naming
    """slixmpp-omemo with its storage from the plugin config and blind trust (BTBV)."""

    default_config = {"fallback_message": FALLBACK, "omemo_data": None}

    @property
    def storage(self) -> Storage:
        if not hasattr(self, "_test_storage"):
            self._test_storage = MemoryStorage(self.omemo_data)
        return self._test_storage

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _prompt_manual_trust(self, manually_trusted, identifier) -> None:
        # BTBV trusts every new device of a peer while none is verified, so this never runs
        raise AssertionError(f"manual trust asked for {manually_trusted}")


register_plugin(XEP_0384Test)


@dataclass
class Decrypted:
    """An OMEMO message as its recipient read it."""

    namespace: str
    body: str
    sender: JID  # the stanza's from
    sender_device: int
    stanza: Any  # the encrypted stanza as received


class OmemoError(Exception):
    """An encrypted message this client could not read."""


class OmemoClient:
    """One logged-in OMEMO device: ``await OmemoClient.login(...)``, ``send``, ``receive``."""

    def __init__(self, xmpp: ClientXMPP) -> None:
        self.xmpp = xmpp
        self.inbox: asyncio.Queue[Decrypted | OmemoError] = asyncio.Queue()
        self.plain: list = []  # messages that were not OMEMO-encrypted
        # device lists pushed to us by PEP notifications: (namespace, bare JID, device ids)
        self.device_list_updates: list[tuple[str, str, frozenset[int]]] = []
        self._updated = asyncio.Event()
        xmpp.register_handler(CoroutineCallback(
            "omemo-test-messages", MatchXPath(f"{{{xmpp.default_ns}}}message"), self._on_message))
        xmpp.add_event_handler("twomemo_device_list_publish", self._on_device_list)
        xmpp.add_event_handler("oldmemo_device_list_publish", self._on_device_list)

    @classmethod
    async def login(cls, proc, jid: str, password: str, omemo_data: dict,
                    *, timeout: float = 30.0) -> OmemoClient:
        """Log in over STARTTLS (the server's certificate trusted, nothing else), send initial
        presence, and wait until the OMEMO data is generated or loaded and published."""
        xmpp = ClientXMPP(jid, password, sasl_mech="SCRAM-SHA-256")
        xmpp.enable_starttls = True
        xmpp.enable_direct_tls = False
        xmpp.enable_plaintext = False
        xmpp.use_message_ids = True  # encrypt_message insists on it
        xmpp.ssl_context = ssl.create_default_context(cafile=str(proc.cert))
        for plugin in ("xep_0030", "xep_0060", "xep_0163", "xep_0199", "xep_0203",
                       "xep_0334", "xep_0380"):
            xmpp.register_plugin(plugin)
        xmpp.register_plugin("xep_0384", {"omemo_data": omemo_data})
        client = cls(xmpp)
        started = asyncio.get_running_loop().create_future()

        def on_start(_event) -> None:
            if not started.done():
                started.set_result(None)

        def on_failed_auth(stanza) -> None:
            if not started.done():
                started.set_exception(RuntimeError(f"{jid}: login failed: {stanza['condition']}"))

        def on_no_login(_event) -> None:
            if not started.done():
                started.set_exception(RuntimeError(f"{jid}: no SASL mechanism we accept"))

        def on_connection_failed(error) -> None:
            if not started.done():
                started.set_exception(RuntimeError(f"{jid}: could not connect: {error}"))

        xmpp.add_event_handler("session_start", on_start)
        xmpp.add_event_handler("failed_auth", on_failed_auth)
        xmpp.add_event_handler("failed_all_auth", on_no_login)
        xmpp.add_event_handler("connection_failed", on_connection_failed)
        xmpp.connect("127.0.0.1", proc.c2s_port)
        try:
            await asyncio.wait_for(started, timeout)
            # session_bind already started building the session manager: this waits for the
            # same task, so a failed publication of device list or bundle raises here
            await asyncio.wait_for(xmpp.plugin["xep_0384"].get_session_manager(), timeout)
        except BaseException:
            xmpp.disconnect()
            raise
        xmpp.send_presence()
        return client

    @property
    def plugin(self) -> XEP_0384Test:
        return self.xmpp.plugin["xep_0384"]

    @property
    def jid(self) -> JID:
        return self.xmpp.boundjid

    async def device_id(self) -> int:
        manager = await self.plugin.get_session_manager()
        own, _others = await manager.get_own_device_information()
        return own.device_id

    async def devices_of(self, bare_jid: str) -> dict[str, set[int]]:
        """The devices of bare_jid this client knows, per OMEMO version, fetched fresh."""
        await self.plugin.refresh_device_lists({JID(bare_jid)}, force_download=True)
        manager = await self.plugin.get_session_manager()
        known: dict[str, set[int]] = {}
        for device in await manager.get_device_information(bare_jid):
            for namespace in device.namespaces:
                known.setdefault(namespace, set()).add(device.device_id)
        return known

    async def send(self, to: str, body: str, namespace: str, *, timeout: float = 30.0) -> None:
        """Encrypt body for every device of ``to`` under one OMEMO version and send it."""
        await asyncio.wait_for(self._send(JID(to), body, namespace), timeout)

    async def _send(self, to: JID, body: str, namespace: str) -> None:
        if namespace == OLDMEMO:
            # slixmpp-omemo's own path: it encrypts the body (only oldmemo, for now)
            stanza = self.xmpp.make_message(mto=to, mtype="chat", mbody=body)
            encrypted, errors = await self.plugin.encrypt_message(stanza, to)
            assert not errors, errors
            assert encrypted is not None
            assert self.plugin.is_encrypted(encrypted) == {OLDMEMO}
            encrypted["eme"]["namespace"] = OLDMEMO
            encrypted["eme"]["name"] = "OMEMO"
            encrypted.send()
            return
        if namespace != TWOMEMO:
            raise ValueError(namespace)
        await self.plugin.refresh_device_lists({to})
        manager = await self.plugin.get_session_manager()
        envelope = sce_envelope(body, to=JID(to.bare), sender=self.jid)
        messages, errors = await manager.encrypt(
            frozenset({to.bare}), {TWOMEMO: envelope}, backend_priority_order=[TWOMEMO])
        assert not errors, errors
        (message,) = messages
        assert message.namespace == TWOMEMO
        stanza = self.xmpp.make_message(mto=to, mtype="chat", mbody=FALLBACK)
        stanza.append(twomemo.etree.serialize_message(message))
        stanza["eme"]["namespace"] = TWOMEMO
        stanza["eme"]["name"] = "OMEMO"
        stanza.enable("store")
        stanza.send()

    def _on_device_list(self, message) -> None:
        # slixmpp fires this event while it iterates over these very items, and iterating a
        # stanza resets its one shared index: reading the XML leaves its loop alone
        items = message["pubsub_event"]["items"].xml
        for item in items.findall("{http://jabber.org/protocol/pubsub#event}item"):
            for namespace, name, parse in ((TWOMEMO, "devices", twomemo.etree.parse_device_list),
                                           (OLDMEMO, "list", oldmemo.etree.parse_device_list)):
                element = item.find(f"{{{namespace}}}{name}")
                if element is not None:
                    devices = frozenset(parse(element))
                    self.device_list_updates.append((namespace, message["from"].bare, devices))
        self._updated.set()

    async def device_list_pushed(self, namespace: str, bare_jid: str, device_id: int,
                                 timeout: float = 10.0) -> None:
        """Wait for a PEP notification of bare_jid's device list that lists device_id."""
        async def loop() -> None:
            while not any(pushed_ns == namespace and jid == bare_jid and device_id in devices
                          for pushed_ns, jid, devices in self.device_list_updates):
                self._updated.clear()
                await self._updated.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.jid}: no {namespace} device list of {bare_jid} with "
                                 f"{device_id} pushed in {timeout}s; pushed: "
                                 f"{self.device_list_updates}") from None

    async def receive(self, timeout: float = 20.0) -> Decrypted:
        """The next OMEMO message with content (key-exchange and heartbeat messages skipped)."""
        item = await asyncio.wait_for(self.inbox.get(), timeout)
        if isinstance(item, OmemoError):
            raise item
        return item

    async def _on_message(self, stanza) -> None:
        if stanza["type"] not in ("chat", "normal"):
            return
        namespaces = self.plugin.is_encrypted(stanza)
        if not namespaces:
            self.plain.append(stanza)
            return
        try:
            decrypted = await self._decrypt(stanza, namespaces)
        except Exception as error:  # reported to the waiting test, not swallowed
            log.exception("could not decrypt %s", stanza)
            self.inbox.put_nowait(OmemoError(f"{type(error).__name__}: {error} in {stanza}"))
            return
        if decrypted is not None:
            self.inbox.put_nowait(decrypted)

    async def _decrypt(self, stanza, namespaces: set[str]) -> Decrypted | None:
        sender = stanza["from"]
        if TWOMEMO in namespaces:
            manager = await self.plugin.get_session_manager()
            element = stanza.xml.find(f"{{{TWOMEMO}}}encrypted")
            message = twomemo.etree.parse_message(element, sender.bare)
            plaintext, device, _key = await manager.decrypt(message)
            if plaintext is None:
                return None  # an empty OMEMO message: it only moves the ratchet forward
            body = open_sce_envelope(plaintext, to=self.jid, sender=sender)
            return Decrypted(TWOMEMO, body, sender, device.device_id, stanza)
        decrypted, device = await self.plugin.decrypt_message(stanza)
        if not decrypted["body"]:
            return None
        return Decrypted(OLDMEMO, decrypted["body"], sender, device.device_id, stanza)

    async def logout(self, timeout: float = 10.0) -> None:
        self.xmpp.disconnect()
        await asyncio.wait_for(self.xmpp.disconnected, timeout)
        manager = await self.plugin.get_session_manager()
        await manager.shutdown()


def sce_envelope(body: str, *, to: JID, sender: JID) -> bytes:
    """A XEP-0420 envelope with the XEP-0384 (0.8) affix profile: rpad and from, plus to."""
    envelope = ET.Element(f"{{{SCE}}}envelope")
    content = ET.SubElement(envelope, f"{{{SCE}}}content")
    ET.SubElement(content, "{jabber:client}body").text = body
    padding = base64.b64encode(secrets.token_bytes(secrets.randbelow(32) + 1)).decode()
    ET.SubElement(envelope, f"{{{SCE}}}rpad").text = padding
    ET.SubElement(envelope, f"{{{SCE}}}to", jid=str(to))
    ET.SubElement(envelope, f"{{{SCE}}}from", jid=str(sender))
    return ET.tostring(envelope, encoding="utf-8")


def open_sce_envelope(plaintext: bytes, *, to: JID, sender: JID) -> str:
    """The body of an envelope whose from and to match the stanza (XEP-0420 §6: an envelope
    that names other parties is a replay or a forgery and is not shown)."""
    envelope = ET.fromstring(plaintext)
    if envelope.tag != f"{{{SCE}}}envelope":
        raise OmemoError(f"not an SCE envelope: {plaintext!r}")
    claimed_from = envelope.find(f"{{{SCE}}}from")
    claimed_to = envelope.find(f"{{{SCE}}}to")
    if claimed_from is None or JID(claimed_from.get("jid")).bare != sender.bare:
        raise OmemoError(f"envelope from {claimed_from!r} in a message from {sender}")
    if claimed_to is not None and JID(claimed_to.get("jid")).bare != to.bare:
        raise OmemoError(f"envelope to {claimed_to.get('jid')} received by {to}")
    body = envelope.find(f"{{{SCE}}}content/{{jabber:client}}body")
    if body is None or body.text is None:
        raise OmemoError(f"envelope without a body: {plaintext!r}")
    return body.text
