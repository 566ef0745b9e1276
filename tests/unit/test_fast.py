"""XEP-0484 FAST tokens and the HT-* mechanisms, on the real client stream in memory."""

from __future__ import annotations

import base64
import hashlib
import hmac

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.unit.test_sasl2 import AGENT, Sasl2Case, b64, child
from xmppd.errors import SASLFailure
from xmppd.sasl.ht import HtServer, ht_proof, offered_ht_mechanisms
from xmppd.sasl.scram import ScramServer  # noqa: F401  (the mechanisms FAST sits beside)
from xmppd.sasl2 import BIND2, FAST, SASL2
from xmppd.sasl2.fast import STORE, device_key, token_hash

DAY = 86400


def initiator(token: str, localpart: str = "alice", cb_data: bytes = b"") -> bytes:
    """The client's HT message, from draft-schmaus-kitten-sasl-ht: HMAC keyed by the token."""
    proof = hmac.new(token.encode(), b"Initiator" + cb_data, "sha256").digest()
    return localpart.encode() + b"\0" + proof


class HtMechanismTests(TestCase):
    def test_offered_only_with_their_binding(self):
        self.assertEqual(offered_ht_mechanisms([]), ["HT-SHA-256-NONE"])
        self.assertEqual(offered_ht_mechanisms(["tls-exporter", "tls-server-end-point"]),
                         ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"])
        self.assertIn("HT-SHA-256-UNIQ", offered_ht_mechanisms(["tls-unique"]))

    def test_long_token_proof_from_its_hash(self):
        token = "x" * 128
        digest = hashlib.sha256(token.encode()).digest()
        self.assertEqual(ht_proof(digest, b"Initiator", b"cb"),
                         hmac.new(token.encode(), b"Initiatorcb", "sha256").digest())

    def run_ht(self, message: bytes, key: bytes | None, name="HT-SHA-256-NONE",
               binding=lambda kind: None):
        seen = []

        def lookup(localpart, mechanism, proof, cb_data):
            seen.append((localpart, mechanism, proof, cb_data))
            return key

        server = HtServer(name, "localhost", binding, lookup)
        results = []
        server.start(message).addBoth(results.append)
        return results[0], seen

    def test_success_carries_the_responder_proof(self):
        key = b"k" * 32
        result, seen = self.run_ht(b"alice\0" + b"p" * 32, key)
        self.assertEqual(result.authcid, "alice")
        self.assertEqual(result.additional_data, ht_proof(key, b"Responder", b""))
        self.assertEqual(seen[0][:2], ("alice", "HT-SHA-256-NONE"))

    def test_unknown_token_is_not_authorized(self):
        result, _ = self.run_ht(b"alice\0" + b"p" * 32, None)
        self.assertEqual(result.value.condition, "not-authorized")

    def test_malformed_messages(self):
        for message in (b"alice", b"\0" + b"p" * 32, b"alice\0short"):
            result, _ = self.run_ht(message, b"k")
            self.assertIsInstance(result.value, SASLFailure)
            self.assertEqual(result.value.condition, "malformed-request")

    def test_bound_mechanism_uses_the_binding(self):
        result, seen = self.run_ht(b"alice\0" + b"p" * 32, b"k" * 32, "HT-SHA-256-ENDP",
                                   lambda kind: b"CB" if kind == "tls-server-end-point"
                                   else None)
        self.assertEqual(seen[0][3], b"CB")
        result, _ = self.run_ht(b"alice\0" + b"p" * 32, b"k" * 32, "HT-SHA-256-EXPR")
        self.assertEqual(result.value.condition, "not-authorized")  # no binding: no login


class FastFlowTests(Sasl2Case):
    async def get_token(self, h=None, mechanism="HT-SHA-256-NONE"):
        h = h or self.harness()
        success = await self.scram(h, f"<request-token xmlns='{FAST}' mechanism='{mechanism}'/>"
                                      f"<bind xmlns='{BIND2}'><tag>Phone</tag></bind>")
        token = child(success, FAST, "token")
        self.assertIsNotNone(token, success.toXml())
        return token["token"], token["expiry"]

    async def fast_login(self, token: str, fast_attrs: str = "", extra: str = "",
                         agent: str = AGENT, mechanism: str = "HT-SHA-256-NONE"):
        h = self.harness()
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='{mechanism}'>"
               f"<initial-response>{b64(initiator(token))}</initial-response>"
               f"<user-agent id='{agent}'/><fast xmlns='{FAST}' {fast_attrs}/>{extra}"
               "</authenticate>")
        return h, await self.next_element(h)

    def condition(self, failure) -> str:
        self.assertEqual((failure.uri, failure.name), (SASL2, "failure"), failure.toXml())
        return next(failure.elements()).name

    async def test_token_then_login_without_scram(self):
        token, expiry = await self.get_token()
        self.assertEqual(len(token), 128)
        self.assertTrue(expiry.endswith("Z"))
        h, success = await self.fast_login(token, "count='1'",
                                           f"<bind xmlns='{BIND2}'><tag>Phone</tag></bind>")
        self.assertEqual(success.name, "success", success.toXml())
        data = base64.b64decode(str(child(success, SASL2, "additional-data")))
        self.assertEqual(data, hmac.new(token.encode(), b"Responder", "sha256").digest())
        self.assertTrue(str(child(success, SASL2, "authorization-identifier"))
                        .startswith("alice@localhost/Phone/"))
        self.assertEqual(h.stream.mechanism, "HT-SHA-256-NONE")
        self.assertIsNone(child(success, FAST, "token"))  # young token: no rotation

    async def test_stored_hashed_only(self):
        token, _ = await self.get_token()
        store = self.fixture.storage.open_store(STORE, "map")
        record = await store.get("alice@localhost", device_key(AGENT))
        text = repr(record)
        self.assertNotIn(token, text)
        self.assertNotIn(AGENT, text)
        self.assertEqual(record["new"]["hash"], token_hash(token))
        self.assertEqual(record["software"], "Test")

    async def test_wrong_token_device_or_mechanism_fail(self):
        token, _ = await self.get_token()
        _, failure = await self.fast_login("y" * 128)
        self.assertEqual(self.condition(failure), "not-authorized")
        _, failure = await self.fast_login(token, agent="other-device")
        self.assertEqual(self.condition(failure), "not-authorized")
        # HT without <fast/> is not a FAST login: the mechanism is unknown there
        h = self.harness()
        h.feed(f"<authenticate xmlns='{SASL2}' mechanism='HT-SHA-256-NONE'>"
               f"<initial-response>{b64(initiator(token))}</initial-response>"
               f"<user-agent id='{AGENT}'/></authenticate>")
        self.assertEqual(self.condition(await self.next_element(h)), "invalid-mechanism")
        # not offered here (no binding on this stream): invalid-mechanism
        _, failure = await self.fast_login(token, mechanism="HT-SHA-256-ENDP")
        self.assertEqual(self.condition(failure), "invalid-mechanism")

    async def test_no_ht_in_legacy_sasl(self):
        token, _ = await self.get_token()
        h = self.harness()
        mechanisms = [str(m) for m in child(self.features, "urn:ietf:params:xml:ns:xmpp-sasl",
                                            "mechanisms").elements()]
        self.assertFalse([m for m in mechanisms if m.startswith("HT-")])
        h.feed("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='HT-SHA-256-NONE'>"
               f"{b64(initiator(token))}</auth>")
        failure = await self.next_element(h)
        self.assertEqual((failure.name, next(failure.elements()).name),
                         ("failure", "invalid-mechanism"))

    async def test_token_bound_to_its_mechanism(self):
        token, _ = await self.get_token()
        store = self.fixture.storage.open_store(STORE, "map")
        record = await store.get("alice@localhost", device_key(AGENT))
        record["new"]["mechanism"] = "HT-SHA-256-ENDP"
        await store.set("alice@localhost", device_key(AGENT), record)
        _, failure = await self.fast_login(token)
        self.assertEqual(self.condition(failure), "not-authorized")

    async def test_expired_token_fails(self):
        token, _ = await self.get_token()
        self.fixture.clock.advance(31 * DAY)
        _, failure = await self.fast_login(token)
        self.assertEqual(self.condition(failure), "not-authorized")

    async def test_password_change_ends_tokens(self):
        from xmppd.sasl.credentials import derive_all

        token, _ = await self.get_token()
        await self.fixture.storage.users.set_credentials("alice", "localhost",
                                                         derive_all("a new password", 4096))
        _, failure = await self.fast_login(token)
        self.assertEqual(self.condition(failure), "credentials-expired")
        _, failure = await self.fast_login("y" * 128)  # a wrong token stays not-authorized
        self.assertEqual(self.condition(failure), "not-authorized")

    async def test_replayed_count_fails(self):
        token, _ = await self.get_token()
        _, success = await self.fast_login(token, "count='5'")
        self.assertEqual(success.name, "success")
        _, failure = await self.fast_login(token, "count='5'")
        self.assertEqual(self.condition(failure), "not-authorized")
        _, success = await self.fast_login(token, "count='6'")
        self.assertEqual(success.name, "success")
        _, failure = await self.fast_login(token, "count='x'")
        self.assertEqual(self.condition(failure), "malformed-request")

    async def test_rotation_keeps_the_old_token_until_the_new_is_used(self):
        old, _ = await self.get_token()
        self.fixture.clock.advance(8 * DAY)  # older than rotate_after_days (7)
        _, success = await self.fast_login(old)
        self.assertEqual(success.name, "success")
        new = child(success, FAST, "token")["token"]
        self.assertNotEqual(new, old)
        _, success = await self.fast_login(old)  # the new one may never have arrived
        self.assertEqual(success.name, "success")
        new = child(success, FAST, "token")["token"]  # rotated again: one 'new' slot
        _, success = await self.fast_login(new)
        self.assertEqual(success.name, "success")
        self.assertIsNone(child(success, FAST, "token"))
        _, failure = await self.fast_login(old)  # using the new one ended the old
        self.assertEqual(self.condition(failure), "not-authorized")

    async def test_request_token_with_fast_login_replaces_it(self):
        old, _ = await self.get_token()
        _, success = await self.fast_login(
            old, extra=f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>")
        new = child(success, FAST, "token")["token"]
        _, success = await self.fast_login(new)
        self.assertEqual(success.name, "success")

    async def test_invalidate(self):
        token, _ = await self.get_token()
        _, success = await self.fast_login(token, "invalidate='true'")
        self.assertEqual(success.name, "success")
        self.assertIsNone(child(success, FAST, "token"))
        _, failure = await self.fast_login(token)
        self.assertEqual(self.condition(failure), "not-authorized")

    async def test_no_token_without_device_id_or_for_unoffered_mechanism(self):
        h = self.harness()
        success = await self.scram(
            h, f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>", agent=None)
        self.assertIsNone(child(success, FAST, "token"))
        h = self.harness()
        success = await self.scram(
            h, f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-ENDP'/>")
        self.assertIsNone(child(success, FAST, "token"))

    async def test_admin_list_and_revoke(self):
        token, _ = await self.get_token()
        commands = self.fixture.server.admin_commands
        rows = await defer.maybeDeferred(commands.get("fast list").handler, "alice@localhost")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["device"], device_key(AGENT))
        self.assertEqual(rows[0]["tokens"][0]["mechanism"], "HT-SHA-256-NONE")
        self.assertNotIn(token_hash(token), repr(rows))
        revoke = commands.get("fast revoke").handler
        with self.assertRaises(ValueError):
            await defer.maybeDeferred(revoke, "alice@localhost", "nope")
        with self.assertRaises(ValueError):
            await defer.maybeDeferred(revoke, "alice@elsewhere")
        result = await defer.maybeDeferred(revoke, "alice@localhost", device_key(AGENT))
        self.assertEqual(result["revoked_devices"], 1)
        _, failure = await self.fast_login(token)
        self.assertEqual(self.condition(failure), "not-authorized")

    async def test_revoke_all(self):
        token, _ = await self.get_token()
        revoke = self.fixture.server.admin_commands.get("fast revoke").handler
        result = await defer.maybeDeferred(revoke, "alice@localhost")
        self.assertEqual(result["revoked_devices"], 1)
        _, failure = await self.fast_login(token)
        self.assertEqual(self.condition(failure), "not-authorized")


class FastConfigTests(TestCase):
    def test_options_are_checked(self):
        from xmppd.options import PluginOptions
        from xmppd.plugins.fast import Fast

        plugin = Fast()
        settings = plugin.configure(PluginOptions("fast", {"token_lifetime_days": 10,
                                                           "rotate_after_days": 2}))
        self.assertEqual((settings.lifetime, settings.rotate_after), (10 * DAY, 2 * DAY))
        for bad in ({"token_lifetime_days": 0}, {"rotate_after_days": "x"},
                    {"token_lifetime_days": 5, "rotate_after_days": 5}, {"nope": 1}):
            with self.assertRaises(ValueError) as raised:
                plugin.configure(PluginOptions("fast", bad))
            self.assertIn(next(iter(bad)) if "nope" in bad else "days", str(raised.exception))
