# -*- test-case-name: tests.unit.test_extdisco -*-
"""XEP-0215 external service discovery: the STUN and TURN servers that clients need for
audio and video calls (Jingle), with time-limited TURN credentials.

The services come from ``[[plugins.extdisco.services]]`` (``type``, ``host``, ``port``,
``transport``, ``restricted``, optional ``name``). A restricted service takes credentials
made from ``secret``, the TURN server's shared secret, as coturn's REST API
(``use-auth-secret`` / ``static-auth-secret``) checks them: the username is
"EXPIRY:USER" (POSIX seconds, the user's bare JID), the password
base64(HMAC-SHA1(secret, username)); they expire after ``credentials_ttl`` seconds. The
TURN server checks them with the same secret and no call to us.

Only our own accounts are answered (``forbidden`` otherwise): the credentials are a
licence to relay media through the operator's TURN server. They come with each restricted
service of a ``<services/>`` answer, as Prosody sends them and clients expect, and on a
``<credentials/>`` request (§3.3). Off by default: it announces servers only the operator
can name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd.errors import StanzaError
from xmppd.interfaces import IXmppdPlugin
from xmppd.jid import JID
from xmppd.plugins.time import xep0082_utc
from xmppd.stanza import Stanza

NS_EXTDISCO = "urn:xmpp:extdisco:2"
SERVICE_TYPES = ("stun", "stuns", "turn", "turns")
TRANSPORTS = ("udp", "tcp")
SERVICE_KEYS = ("type", "host", "port", "transport", "restricted", "name")
DEFAULT_TTL = 86400


@dataclass(frozen=True)
class ExternalService:
    type: str
    host: str
    port: int
    transport: str
    restricted: bool
    name: str | None = None

    def element(self) -> domish.Element:
        element = domish.Element((NS_EXTDISCO, "service"))
        element["type"] = self.type
        element["host"] = self.host
        element["port"] = str(self.port)
        element["transport"] = self.transport
        if self.restricted:
            element["restricted"] = "true"
        if self.name:
            element["name"] = self.name
        return element


@dataclass(frozen=True)
class ExtdiscoSettings:
    services: tuple[ExternalService, ...]
    secret: str
    credentials_ttl: int = DEFAULT_TTL


def turn_credentials(secret: str, user: str, expiry: int) -> tuple[str, str]:
    """coturn's REST API credentials ("TURN REST API" draft, §2.2): (username, password)."""
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def parse_service(index: int, table: object) -> ExternalService:
    """One ``[[plugins.extdisco.services]]`` table; ValueError names the key."""
    where = f"[plugins.extdisco] services[{index}]"
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table, got {table!r}")
    unknown = sorted(set(table) - set(SERVICE_KEYS))
    if unknown:
        raise ValueError(f"{where} {unknown[0]}: unknown key")
    kind = table.get("type")
    if kind not in SERVICE_TYPES:
        raise ValueError(f"{where} type: expected one of {', '.join(SERVICE_TYPES)}, "
                         f"got {kind!r}")
    host = table.get("host")
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        raise ValueError(f"{where} host: expected a host name or address, got {host!r}")
    default_port = 5349 if kind.endswith("s") else 3478
    port = table.get("port", default_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{where} port: expected 1..65535, got {port!r}")
    transport = table.get("transport", "tcp" if kind.endswith("s") else "udp")
    if transport not in TRANSPORTS:
        raise ValueError(f"{where} transport: expected udp or tcp, got {transport!r}")
    restricted = table.get("restricted", kind.startswith("turn"))
    if not isinstance(restricted, bool):
        raise ValueError(f"{where} restricted: expected true or false, got {restricted!r}")
    name = table.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{where} name: expected a string, got {name!r}")
    return ExternalService(kind, host, port, transport, restricted, name)


@implementer(IXmppdPlugin)
class ExternalServiceDiscovery:
    name = "extdisco"
    requires = ()

    def configure(self, options) -> ExtdiscoSettings:
        """Checked before the database opens: every service and key, and a secret for the
        restricted ones."""
        options.known("services", "secret", "credentials_ttl")
        tables = options.config.get("services", [])
        if not isinstance(tables, list) or not tables:
            raise ValueError("[plugins.extdisco] services: expected at least one "
                             "[[plugins.extdisco.services]] table")
        services = tuple(parse_service(i, table) for i, table in enumerate(tables))
        secret = options.option_str("secret", "")
        if not secret and any(service.restricted for service in services):
            raise ValueError("[plugins.extdisco] secret: required by the restricted services "
                             "(the TURN server's static-auth-secret)")
        ttl = options.option_int("credentials_ttl", DEFAULT_TTL, minimum=60)
        return ExtdiscoSettings(services, secret, ttl)

    def setup(self, ctx) -> None:
        self.settings = ctx.settings if isinstance(ctx.settings, ExtdiscoSettings) \
            else self.configure(ctx)
        self.ctx = ctx
        ctx.feature(NS_EXTDISCO)
        ctx.iq("get", NS_EXTDISCO, "services", self.on_services)
        ctx.iq("get", NS_EXTDISCO, "credentials", self.on_credentials)

    def _local(self, stanza: Stanza) -> JID:
        sender = stanza.sender
        if sender is None or sender.user is None or sender.host not in self.ctx.domains:
            raise StanzaError("forbidden", "external services are for this server's accounts")
        return sender.bare()

    def _element(self, service: ExternalService, user: JID) -> domish.Element:
        element = service.element()
        if service.restricted:
            expiry = int(self.ctx.reactor.seconds()) + self.settings.credentials_ttl
            element["username"], element["password"] = turn_credentials(
                self.settings.secret, user.userhost(), expiry)
            element["expires"] = xep0082_utc(expiry)
        return element

    def on_services(self, stanza: Stanza, origin) -> domish.Element:
        user = self._local(stanza)
        wanted = stanza.payload().getAttribute("type")
        answer = domish.Element((NS_EXTDISCO, "services"))
        if wanted:
            answer["type"] = wanted
        for service in self.settings.services:
            if wanted in (None, "", service.type):
                answer.addChild(self._element(service, user))
        return answer

    def on_credentials(self, stanza: Stanza, origin) -> domish.Element:
        """§3.3: the service named by host and type (and port, if several share those)."""
        user = self._local(stanza)
        asked = next((child for child in stanza.payload().elements()
                      if child.uri == NS_EXTDISCO and child.name == "service"), None)
        if asked is None or not asked.getAttribute("host") or not asked.getAttribute("type"):
            raise StanzaError("bad-request", "name the service with its host and type")
        port = asked.getAttribute("port")
        found = [service for service in self.settings.services
                 if service.restricted and service.host == asked["host"]
                 and service.type == asked["type"]
                 and (port is None or str(service.port) == port)]
        if not found:
            raise StanzaError("item-not-found", "no service here takes credentials by that name")
        answer = domish.Element((NS_EXTDISCO, "credentials"))
        answer.addChild(self._element(found[0], user))
        return answer


extdisco = ExternalServiceDiscovery()
