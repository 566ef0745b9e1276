"""XEP-0474 (SSDP) downgrade protection: the 'h' attribute of SCRAM's server-first-message.

The hash is checked against the XEP's own example (§4.3) and, for other lists, against values
computed here from the XEP's definition (§4.1) with nothing of xmppd's; then on a stream,
against the features that stream actually advertised, so a stripped list would not match.
Older clients (RFC 5802 §5.1: unknown attributes are ignored) still log in, slixmpp's own SCRAM
client included.
"""

from __future__ import annotations

import base64
import hashlib

from twisted.trial.unittest import SynchronousTestCase

from tests.scramclient import ScramClient
from tests.unit import test_sasl_exchange as exchange_tests
from tests.unit import test_sasl_scram as scram_tests
from xmppd import ns
from xmppd.c2s.sasl_exchange import SaslExchange
from xmppd.sasl import MECHANISMS_PREFERENCE
from xmppd.sasl.mechanisms import create_mechanism
from xmppd.sasl.scram import ScramServer, downgrade_protection_hash

# XEP-0474 §4.3: SCRAM-SHA-1-PLUS, SASL2, both channel bindings advertised.
EXAMPLE_HASH = "G6k/rBLDqgOhRRaCuuatSDFkJ08="
EXAMPLE_SERVER_FIRST = base64.b64decode(
    "cj0xMkM0Q0Q1Qy1FMzhFLTRBOTgtOEY2RC0xNUMzOEY1MUNDQzZhMDkxMTdhNi1hYzUwLTRmMmYtOTNmMS05Mzc5"
    "OWMyYmRkZjYscz1RU1hDUitRNnNlazhiZjkyLGk9NDA5NixoPUc2ay9yQkxEcWdPaFJSYUN1dWF0U0RGa0owOD0=")


def by_definition(hash_name: str, mechanisms: list[str], bindings: list[str] | None) -> str:
    """XEP-0474 §4.1 steps 1-5, written out again for the tests."""
    text = "\x1e".join(sorted(mechanisms, key=lambda name: name.encode()))
    if bindings is not None:
        text += "\x1f" + "\x1e".join(sorted(bindings, key=lambda name: name.encode()))
    algorithm = {"sha-1": "sha1", "sha-256": "sha256"}[hash_name]
    return base64.b64encode(hashlib.new(algorithm, text.encode("ascii")).digest()).decode()


def attributes(server_first: bytes) -> dict[str, str]:
    return dict(item.split("=", 1) for item in server_first.decode().split(","))


class HashTests(SynchronousTestCase):
    def test_the_xep_example(self) -> None:
        self.assertEqual(attributes(EXAMPLE_SERVER_FIRST)["h"], EXAMPLE_HASH)
        self.assertEqual(
            downgrade_protection_hash("sha-1", ["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"],
                                      ["tls-server-end-point", "tls-exporter"]),
            EXAMPLE_HASH)

    def test_order_of_the_lists_does_not_matter(self) -> None:
        mechanisms = list(MECHANISMS_PREFERENCE)
        bindings = ["tls-exporter", "tls-server-end-point"]
        expected = by_definition("sha-256", mechanisms, bindings)
        self.assertEqual(downgrade_protection_hash("sha-256", mechanisms, bindings), expected)
        self.assertEqual(downgrade_protection_hash("sha-256", mechanisms[::-1], bindings[::-1]),
                         expected)

    def test_without_channel_bindings_there_is_no_separator(self) -> None:
        mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
        for bindings in (None, []):
            self.assertEqual(downgrade_protection_hash("sha-256", mechanisms, bindings),
                             by_definition("sha-256", mechanisms, None))
        self.assertNotEqual(by_definition("sha-256", mechanisms, None),
                            by_definition("sha-256", mechanisms, []))

    def test_octet_order_puts_upper_case_first(self) -> None:
        """i;octet collation: 'PLAIN' < 'SCRAM-…' < 'scram' by byte value, whatever the locale."""
        mechanisms = ["x-lower", "SCRAM-SHA-1", "PLAIN"]
        text = b"PLAIN\x1eSCRAM-SHA-1\x1ex-lower"
        self.assertEqual(downgrade_protection_hash("sha-1", mechanisms, None),
                         base64.b64encode(hashlib.sha1(text).digest()).decode())

    def test_a_stripped_list_changes_the_hash(self) -> None:
        full = list(MECHANISMS_PREFERENCE)
        stripped = [name for name in full if not name.endswith("-PLUS")]
        bindings = ["tls-exporter", "tls-server-end-point"]
        self.assertNotEqual(downgrade_protection_hash("sha-256", full, bindings),
                            downgrade_protection_hash("sha-256", stripped, bindings))
        self.assertNotEqual(downgrade_protection_hash("sha-256", full, bindings),
                            downgrade_protection_hash("sha-256", full, bindings[1:]))


class ServerFirstTests(SynchronousTestCase):
    def server(self, hash_name: str, advertised=None) -> ScramServer:
        auth = scram_tests.MemoryAuth()
        auth.add_user("user", "pencil")
        return ScramServer(hash_name, False, auth, scram_tests.DOMAIN, lambda name: None,
                           server_supports_plus=False, advertised=advertised)

    def test_h_is_last_and_signed(self) -> None:
        """'h' follows 'i' and is part of AuthMessage: the client's proof covers it, and a
        client that ignores it still logs in."""
        advertised = (["SCRAM-SHA-256", "SCRAM-SHA-1"], [])
        for hash_name in ("sha-1", "sha-256"):
            mechanism = self.server(hash_name, advertised)
            client = ScramClient(hash_name, "user", "pencil")
            challenge = self.successResultOf(mechanism.start(client.first()))
            self.assertEqual(list(attributes(challenge.data)), ["r", "s", "i", "h"])
            self.assertEqual(attributes(challenge.data)["h"],
                             by_definition(hash_name, advertised[0], None))
            success = self.successResultOf(mechanism.step(client.final(challenge.data)))
            self.assertEqual(success.additional_data, client.expected_success_data())

    def test_without_advertised_lists_no_h(self) -> None:
        challenge = self.successResultOf(
            self.server("sha-256").start(ScramClient("sha-256", "user", "pencil").first()))
        self.assertNotIn("h", attributes(challenge.data))

    def test_unknown_users_get_an_h_too(self) -> None:
        """The decoy exchange (no such account) must look like a real one."""
        challenge = self.successResultOf(
            self.server("sha-256", (["SCRAM-SHA-256"], [])).start(b"n,,n=ghost,r=abc"))
        self.assertIn("h", attributes(challenge.data))

    def test_catalogue_hashes_what_it_offers(self) -> None:
        auth = scram_tests.MemoryAuth()
        auth.add_user("user", "pencil")
        enabled = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
        mechanism = create_mechanism(
            "SCRAM-SHA-1", auth=auth, domain=scram_tests.DOMAIN,
            channel_binding=lambda name: b"data", channel_binding_types=["tls-server-end-point"],
            tls=True, enabled=enabled)
        challenge = self.successResultOf(
            mechanism.start(ScramClient("sha-1", "user", "pencil").first()))
        self.assertEqual(attributes(challenge.data)["h"],
                         by_definition("sha-1", enabled, ["tls-server-end-point"]))


class StreamTests(exchange_tests.ExchangeTestCase):
    """On a stream: the hash is of what this stream's features listed."""

    def advertised(self) -> tuple[list[str], list[str] | None]:
        mechanisms, bindings = None, None
        for feature in self.sasl.features():
            if (feature.uri, feature.name) == (ns.SASL, "mechanisms"):
                mechanisms = [str(child) for child in feature.elements()]
            elif (feature.uri, feature.name) == (ns.SASL_CB, "sasl-channel-binding"):
                bindings = [child["type"] for child in feature.elements()]
        return mechanisms, bindings

    def challenge_for(self, mechanism: str, client: ScramClient) -> dict[str, str]:
        self.sasl.handle(self.element("auth", client.first(), mechanism=mechanism))
        self.assertEqual(self.last().name, "challenge")
        return attributes(base64.b64decode(str(self.last())))

    def test_each_scram_mechanism_hashes_the_advertised_features(self) -> None:
        mechanisms, bindings = self.advertised()
        self.assertEqual(bindings, ["tls-exporter", "tls-server-end-point"])
        for name, hash_name in (("SCRAM-SHA-256", "sha-256"), ("SCRAM-SHA-1", "sha-1")):
            self.sasl = SaslExchange(self.stream, self.auth, list(MECHANISMS_PREFERENCE), True)
            got = self.challenge_for(name, ScramClient(hash_name, "user", "pencil"))
            self.assertEqual(got["h"], by_definition(hash_name, mechanisms, bindings))

    def test_without_channel_bindings_the_stream_hashes_mechanisms_only(self) -> None:
        self.patch(exchange_tests.sasl_exchange, "channel_binding_types", lambda connection: [])
        mechanisms, bindings = self.advertised()
        self.assertIsNone(bindings)
        self.assertFalse(any(name.endswith("-PLUS") for name in mechanisms))
        got = self.challenge_for("SCRAM-SHA-256", ScramClient("sha-256", "user", "pencil"))
        self.assertEqual(got["h"], by_definition("sha-256", mechanisms, None))

    def test_configured_mechanisms_are_what_is_hashed(self) -> None:
        enabled = ["SCRAM-SHA-256", "PLAIN"]
        self.sasl = SaslExchange(self.stream, self.auth, enabled, True)
        mechanisms, bindings = self.advertised()
        self.assertEqual(mechanisms, enabled)
        got = self.challenge_for("SCRAM-SHA-256", ScramClient("sha-256", "user", "pencil"))
        self.assertEqual(got["h"], by_definition("sha-256", enabled, bindings))

    def test_slixmpp_scram_client_logs_in_past_h(self) -> None:
        """slixmpp's own SCRAM-SHA-1 client (the 1.8 series reads challenges into a dict and
        refuses only 'm') authenticates against a server-first-message carrying 'h'."""
        try:
            from slixmpp.util.sasl.mechanisms import SCRAM
        except ImportError:
            self.skipTest("slixmpp is not installed")
        client = SCRAM("SCRAM-SHA-1", {"username": b"user", "password": b"pencil",
                                       "authzid": b"", "channel_binding": b""},
                       {"binding_proposed": True, "encrypted": True, "unencrypted_scram": True,
                        "tls_version": "TLSv1.3"})
        client.use_channel_binding = False
        first = client.process(b"")
        self.assertTrue(first.startswith(b"n,,"))
        self.sasl.handle(self.element("auth", first, mechanism="SCRAM-SHA-1"))
        self.assertIn("h", attributes(base64.b64decode(str(self.last()))))
        final = client.process(base64.b64decode(str(self.last())))
        self.sasl.handle(self.element("response", final))
        self.assertEqual(self.last().name, "success")
        client.process(base64.b64decode(str(self.last())))
        self.assertEqual(self.stream.authenticated_as, ("user", "SCRAM-SHA-1"))
