"""XEP-0215 on a real server (a Clock reactor): the services list with coturn REST API
credentials on the restricted ones, the <credentials/> request, forbidden to a stranger,
the errors of a bad request, and the options checked before start-up."""

from __future__ import annotations

import base64
import hashlib
import hmac

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from tests.devices_case import DevicesCase, error_condition
from tests.sample_examples import sample_section
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.options import PluginOptions
from xmppd.plugins.extdisco import NS_EXTDISCO, ExternalServiceDiscovery, turn_credentials
from xmppd.stanza import Stanza

SECRET = "the shared secret"
SERVICES = [
    {"type": "stun", "host": "stun.example.org", "restricted": False},
    {"type": "turn", "host": "turn.example.org", "port": 3478, "transport": "udp"},
    {"type": "turns", "host": "turn.example.org", "name": "TURN over TLS"},
]


def services_of(answer) -> list[dict]:
    (payload,) = answer.elements()
    return [dict(service.attributes) for service in payload.elements()]


class ExtdiscoServerTests(DevicesCase):
    enabled = ("extdisco",)
    users = ("alice",)
    sections = {"extdisco": {"services": SERVICES, "secret": SECRET,
                             "credentials_ttl": 3600}}

    async def test_services_with_credentials(self):
        alice = await self.online("alice", "phone")
        self.clock.advance(1_000_000)
        answer = await self.ask(alice, "get", f"<services xmlns='{NS_EXTDISCO}'/>",
                                to="localhost")
        self.assertEqual(answer["type"], "result")
        stun, turn, turns = services_of(answer)
        self.assertEqual(stun, {"type": "stun", "host": "stun.example.org", "port": "3478",
                                "transport": "udp"})
        username = "1003600:alice@localhost"
        password = base64.b64encode(hmac.new(SECRET.encode(), username.encode(),
                                             hashlib.sha1).digest()).decode()
        self.assertEqual(turn, {"type": "turn", "host": "turn.example.org", "port": "3478",
                                "transport": "udp", "restricted": "true",
                                "username": username, "password": password,
                                "expires": "1970-01-12T14:46:40Z"})
        self.assertEqual((turns["port"], turns["transport"], turns["name"]),
                         ("5349", "tcp", "TURN over TLS"))

    async def test_services_of_one_type(self):
        alice = await self.online("alice", "phone")
        answer = await self.ask(alice, "get", f"<services xmlns='{NS_EXTDISCO}' type='stun'/>",
                                to="localhost")
        self.assertEqual([s["host"] for s in services_of(answer)], ["stun.example.org"])
        self.assertEqual(next(answer.elements())["type"], "stun")

    async def test_credentials_request(self):
        alice = await self.online("alice", "phone")
        answer = await self.ask(alice, "get", f"<credentials xmlns='{NS_EXTDISCO}'><service "
                                "host='turn.example.org' type='turn'/></credentials>",
                                to="localhost")
        self.assertEqual(answer["type"], "result")
        (service,) = services_of(answer)
        self.assertEqual(service["username"], "3600:alice@localhost")
        for payload, condition in (
                "<service host='stun.example.org' type='stun'/>", "item-not-found"), (
                "<service host='turn.example.org' type='turn' port='1'/>", "item-not-found"), (
                "<service type='turn'/>", "bad-request"), ("", "bad-request"):
            refused = await self.ask(alice, "get", f"<credentials xmlns='{NS_EXTDISCO}'>"
                                     f"{payload}</credentials>", to="localhost")
            self.assertEqual(error_condition(refused), condition, payload)

    async def test_feature(self):
        self.assertIn(NS_EXTDISCO, self.server.features.features())

    async def test_not_for_remote_users(self):
        plugin = ExternalServiceDiscovery()
        plugin.ctx = self.server  # only its domains are read
        for sender in ("mallory@elsewhere.example/x", "elsewhere.example", "localhost"):
            stanza = Stanza(domish.Element((None, "iq")), parse_jid(sender),
                            parse_jid("localhost"))
            with self.assertRaises(StanzaError) as caught:
                plugin._local(stanza)
            self.assertEqual(caught.exception.condition, "forbidden")


class CredentialTests(SynchronousTestCase):
    def test_coturn_rest_api(self):
        # The expected password computed apart: openssl dgst -sha1 -hmac north -binary | base64
        username, password = turn_credentials("north", "alice@localhost", 1_800_000_000)
        self.assertEqual(username, "1800000000:alice@localhost")
        self.assertEqual(password, "WKLDBKY8atIhYwBPRlkDUe9FA/U=")


class ExtdiscoOptionTests(SynchronousTestCase):
    def configure(self, **section):
        return ExternalServiceDiscovery().configure(PluginOptions("extdisco", section))

    def test_the_sample_config_example(self):
        self.configure(**sample_section("extdisco"))

    def test_good(self):
        settings = self.configure(services=SERVICES, secret=SECRET)
        self.assertEqual([s.restricted for s in settings.services], [False, True, True])
        self.assertEqual(settings.credentials_ttl, 86400)

    def test_bad_values_name_the_key(self):
        for section, key in (
                ({}, "services"),
                ({"services": []}, "services"),
                ({"services": [{"type": "ftp", "host": "a"}]}, "type"),
                ({"services": [{"type": "stun"}]}, "host"),
                ({"services": [{"type": "stun", "host": "a", "port": 0}]}, "port"),
                ({"services": [{"type": "stun", "host": "a", "transport": "sctp"}]}, "transport"),
                ({"services": [{"type": "stun", "host": "a", "restricted": "yes"}]}, "restricted"),
                ({"services": [{"type": "stun", "host": "a", "colour": 1}]}, "colour"),
                ({"services": [{"type": "turn", "host": "a"}]}, "secret"),
                ({"services": SERVICES, "secret": SECRET, "credentials_ttl": 5}, "credentials_ttl"),
                ({"services": SERVICES, "secret": SECRET, "other": 1}, "other")):
            with self.assertRaises(ValueError) as caught:
                self.configure(**section)
            self.assertIn(key, str(caught.exception))
            self.assertNotIn(SECRET, str(caught.exception))
