"""SCRAM server (xmppd.sasl.scram) and the mechanism catalogue (xmppd.sasl.mechanisms).

The RFC 5802 §5 and RFC 7677 §3 examples are replayed byte for byte; everything else runs
against a small SCRAM client written here from the RFC, checked first against those examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

from precis_i18n import get_profile
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.scramclient import ScramClient
from xmppd.errors import SASLFailure
from xmppd.interfaces import IAuthBackend, ISASLMechanism
from xmppd.sasl import Challenge, ChannelBindingUnavailable, Success
from xmppd.sasl.credentials import HASHES, ScramCredentials, derive_credentials
from xmppd.sasl.mechanisms import MECHANISMS_PREFERENCE, create_mechanism, offered_mechanisms
from xmppd.sasl.scram import ScramServer, decode_saslname

DOMAIN = "example.com"

# RFC 5802 §5
RFC5802 = {
    "hash": "sha-1",
    "salt": "QSXCR+Q6sek8bf92",
    "server_nonce": "3rfcNHYJY1ZVvWVs7j",
    "client_first": b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "server_first": b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "client_final": b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
    b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "server_final": b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
}

# RFC 7677 §3
RFC7677 = {
    "hash": "sha-256",
    "salt": "W22ZaJ0SNY7soEsUEjb6gQ==",
    "server_nonce": "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "client_first": b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_first": b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}

_USERNAME_PROFILE = get_profile("UsernameCaseMapped")


def prepare_username(username: str) -> str:
    """Stands in for xmppd.jid.prepare_localpart (RFC 7622 uses this PRECIS profile)."""
    return _USERNAME_PROFILE.enforce(username)


@implementer(IAuthBackend)
class MemoryAuth:
    """An in-memory IAuthBackend holding SCRAM credentials; it records what it was asked."""

    def __init__(self) -> None:
        self.credentials: dict[tuple[str, str, str], ScramCredentials] = {}
        self.asked: list[tuple[str, str, str]] = []
        self.error: Exception | None = None

    def add_user(self, localpart: str, password: str, iterations: int = 4096) -> None:
        for hash_name in HASHES:
            self.add_credentials(
                localpart, derive_credentials(password, hash_name, iterations=iterations)
            )

    def add_credentials(self, localpart: str, credentials: ScramCredentials) -> None:
        self.credentials[(localpart, DOMAIN, credentials.hash_name)] = credentials

    def scram_credentials(self, localpart, domain, hash_name):
        self.asked.append((localpart, domain, hash_name))
        if self.error is not None:
            return defer.fail(self.error)
        return defer.succeed(self.credentials.get((localpart, domain, hash_name)))

    def check_password(self, localpart, domain, password):
        return defer.succeed(False)  # SCRAM never asks; PLAIN has its own tests


def no_channel_binding(cb_name: str) -> bytes | None:
    return None


class ScramTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.auth = MemoryAuth()
        self.auth.add_user("user", "pencil")

    def server(self, hash_name="sha-256", plus=False, **kwargs) -> ScramServer:
        kwargs.setdefault("channel_binding", no_channel_binding)
        kwargs.setdefault("server_supports_plus", False)
        kwargs.setdefault("prepare_username", prepare_username)
        return ScramServer(hash_name, plus, self.auth, DOMAIN, **kwargs)

    def condition(self, d: defer.Deferred) -> str:
        return self.failureResultOf(d, SASLFailure).value.condition

    def exchange(self, server: ScramServer, client: ScramClient) -> defer.Deferred:
        """Run the whole exchange; returns the Deferred of the last step."""
        first = self.successResultOf(server.start(client.first()))
        self.assertIsInstance(first, Challenge)
        return server.step(client.final(first.data))

    def assert_success(self, server: ScramServer, client: ScramClient) -> Success:
        success = self.successResultOf(self.exchange(server, client))
        self.assertIsInstance(success, Success)
        self.assertEqual(success.additional_data, client.expected_success_data())
        return success


class RFCVectorTests(ScramTestCase):
    def replay(self, vector: dict) -> None:
        self.auth.add_credentials(
            "user",
            derive_credentials(
                "pencil", vector["hash"], salt=base64.b64decode(vector["salt"]), iterations=4096
            ),
        )
        server = self.server(vector["hash"], nonce_factory=lambda: vector["server_nonce"])
        challenge = self.successResultOf(server.start(vector["client_first"]))
        self.assertEqual(challenge, Challenge(vector["server_first"]))
        success = self.successResultOf(server.step(vector["client_final"]))
        self.assertEqual(success, Success("user", None, vector["server_final"]))

    def test_rfc5802_sha1_example(self) -> None:
        self.replay(RFC5802)

    def test_rfc7677_sha256_example(self) -> None:
        self.replay(RFC7677)

    def test_derived_keys_match_the_rfc_exchanges(self) -> None:
        """StoredKey must turn the RFC's proof into a ClientKey hashing back to it, and ServerKey
        must sign the RFC's AuthMessage into the RFC's v=."""
        for vector in (RFC5802, RFC7677):
            digest = HASHES[vector["hash"]]
            keys = derive_credentials(
                "pencil", vector["hash"], salt=base64.b64decode(vector["salt"]), iterations=4096
            )
            final = vector["client_final"]
            without_proof, proof = final.rsplit(b",p=", 1)
            auth_message = b",".join(
                (vector["client_first"][3:], vector["server_first"], without_proof)
            )
            signature = hmac.new(keys.stored_key, auth_message, digest).digest()
            client_key = bytes(
                a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True)
            )
            self.assertEqual(hashlib.new(digest, client_key).digest(), keys.stored_key)
            server_signature = hmac.new(keys.server_key, auth_message, digest).digest()
            self.assertEqual(b"v=" + base64.b64encode(server_signature), vector["server_final"])

    def test_test_client_reproduces_the_rfc_messages(self) -> None:
        for vector in (RFC5802, RFC7677):
            client_nonce = vector["client_first"].split(b"r=")[1].decode()
            client = ScramClient(vector["hash"], "user", "pencil", client_nonce=client_nonce)
            self.assertEqual(client.first(), vector["client_first"])
            self.assertEqual(client.final(vector["server_first"]), vector["client_final"])
            self.assertEqual(client.expected_success_data(), vector["server_final"])


class ExchangeTests(ScramTestCase):
    def test_interfaces(self) -> None:
        verifyObject(IAuthBackend, self.auth)
        verifyObject(ISASLMechanism, self.server())

    def test_names(self) -> None:
        self.assertEqual(self.server("sha-1").name, "SCRAM-SHA-1")
        self.assertEqual(self.server("sha-256", plus=True).name, "SCRAM-SHA-256-PLUS")
        self.assertRaises(ValueError, self.server, "md5")

    def test_success_both_hashes(self) -> None:
        for hash_name in HASHES:
            success = self.assert_success(
                self.server(hash_name), ScramClient(hash_name, "user", "pencil")
            )
            self.assertEqual((success.authcid, success.authzid), ("user", None))

    def test_username_is_prepared(self) -> None:
        success = self.assert_success(self.server(), ScramClient("sha-256", "USER", "pencil"))
        self.assertEqual(success.authcid, "user")
        self.assertIn(("user", DOMAIN, "sha-256"), self.auth.asked)

    def test_iterations_come_from_the_stored_credentials(self) -> None:
        self.auth.add_user("slow", "pw", iterations=4321)
        server = self.server()
        challenge = self.successResultOf(server.start(ScramClient("sha-256", "slow", "pw").first()))
        self.assertTrue(challenge.data.endswith(b",i=4321"))

    def test_saslname_escapes(self) -> None:
        self.assertEqual(decode_saslname("a=2Cb=3Dc"), "a,b=c")
        self.assertEqual(decode_saslname("=3D2C"), "=2C")
        for bad in ("", "a=41", "a=", "a=2", "a,b"):
            with self.assertRaises(SASLFailure):
                decode_saslname(bad)
        self.auth.add_user("a,b=c", "pw")
        success = self.assert_success(self.server(), ScramClient("sha-256", "a,b=c", "pw"))
        self.assertEqual(success.authcid, "a,b=c")

    def test_unknown_extensions_are_ignored(self) -> None:
        client = ScramClient("sha-256", "user", "pencil", extensions=",x=future")
        server = self.server()
        challenge = self.successResultOf(server.start(client.first() + b",y=ext"))
        client.first_bare += ",y=ext"
        self.assertIsInstance(
            self.successResultOf(server.step(client.final(challenge.data))), Success
        )

    def test_no_initial_response(self) -> None:
        server = self.server()
        client = ScramClient("sha-256", "user", "pencil")
        self.assertEqual(self.successResultOf(server.start(None)), Challenge(b""))
        challenge = self.successResultOf(server.step(client.first()))
        self.assertIsInstance(
            self.successResultOf(server.step(client.final(challenge.data))), Success
        )

    def test_server_nonce(self) -> None:
        """client nonce + at least 18 random bytes, different on every exchange."""
        suffixes = set()
        for _ in range(2):
            server = self.server()
            challenge = self.successResultOf(server.start(b"n,,n=user,r=abc"))
            nonce = challenge.data.decode().split(",")[0][2:]
            self.assertTrue(nonce.startswith("abc"))
            suffix = nonce[3:]
            self.assertNotIn(",", suffix)
            self.assertGreaterEqual(len(base64.b64decode(suffix)), 18)
            suffixes.add(suffix)
        self.assertEqual(len(suffixes), 2)


class FailureTests(ScramTestCase):
    def test_wrong_password(self) -> None:
        for hash_name in HASHES:
            server = self.server(hash_name)
            d = self.exchange(server, ScramClient(hash_name, "user", "pencil2"))
            self.assertEqual(self.condition(d), "not-authorized")

    def test_unknown_user_gets_a_normal_looking_exchange(self) -> None:
        def server_first(username: str) -> dict[str, str]:
            challenge = self.successResultOf(self.server().start(f"n,,n={username},r=abc".encode()))
            return dict(item.split("=", 1) for item in challenge.data.decode().split(","))

        real, ghost = server_first("user"), server_first("ghost")
        self.assertEqual(list(real), list(ghost))  # r, s, i: nothing else
        self.assertEqual(len(real["r"]), len(ghost["r"]))
        self.assertEqual(len(base64.b64decode(real["s"])), len(base64.b64decode(ghost["s"])))
        self.assertGreaterEqual(int(ghost["i"]), 4096)
        self.assertIn(("ghost", DOMAIN, "sha-256"), self.auth.asked)
        # The decoy salt is stable per (prepared) name, as a real one would be.
        self.assertEqual(server_first("ghost")["s"], ghost["s"])
        self.assertEqual(server_first("GHOST")["s"], ghost["s"])
        self.assertNotEqual(server_first("ghost2")["s"], ghost["s"])

        for password in ("pencil", "", "x"):
            d = self.exchange(self.server(), ScramClient("sha-256", "ghost", password))
            self.assertEqual(self.condition(d), "not-authorized")

    def test_invalid_username_is_an_unknown_user(self) -> None:
        """An unpreparable name must not be told apart from an unknown one."""
        server = self.server()
        d = self.exchange(server, ScramClient("sha-256", "bad name\u0007", "pencil"))
        self.assertEqual(self.condition(d), "not-authorized")
        self.assertEqual(self.auth.asked, [])

    def test_credentials_only_for_another_hash(self) -> None:
        self.auth.credentials.pop(("user", DOMAIN, "sha-1"))
        d = self.exchange(self.server("sha-1"), ScramClient("sha-1", "user", "pencil"))
        self.assertEqual(self.condition(d), "not-authorized")

    def test_nonce_mismatch(self) -> None:
        server = self.server()
        client = ScramClient("sha-256", "user", "pencil")
        challenge = self.successResultOf(server.start(client.first()))
        tampered = challenge.data.replace(b"r=clientnonce42", b"r=clientnonce42X")
        d = server.step(client.final(tampered))
        self.assertEqual(self.condition(d), "not-authorized")

    def test_channel_binding_header_mismatch(self) -> None:
        """c= must repeat the gs2 header of the first message."""
        server = self.server()
        client = ScramClient("sha-256", "user", "pencil")
        challenge = self.successResultOf(server.start(client.first()))
        client.gs2_header = "y,,"
        self.assertEqual(
            self.condition(server.step(client.final(challenge.data))), "not-authorized"
        )

    def test_backend_failure_is_temporary(self) -> None:
        self.auth.error = RuntimeError("database is down")
        d = self.server().start(ScramClient("sha-256", "user", "pencil").first())
        self.assertEqual(self.condition(d), "temporary-auth-failure")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_backend_sasl_failure_passes_through(self) -> None:
        self.auth.error = SASLFailure("account-disabled")
        d = self.server().start(ScramClient("sha-256", "user", "pencil").first())
        self.assertEqual(self.condition(d), "account-disabled")


class AuthzidTests(ScramTestCase):
    def attempt(self, authzid: str, password: str = "pencil") -> defer.Deferred:
        gs2_header = f"n,a={authzid.replace('=', '=3D').replace(',', '=2C')},"
        client = ScramClient("sha-256", "user", password, gs2_header=gs2_header)
        self._client = client
        return self.exchange(self.server(), client)

    def test_own_bare_jid(self) -> None:
        for authzid in ("user@example.com", "USER@Example.COM"):
            success = self.successResultOf(self.attempt(authzid))
            self.assertEqual(success.authzid, "user@example.com")
            self.assertEqual(success.additional_data, self._client.expected_success_data())

    def test_someone_else(self) -> None:
        self.auth.add_user("admin", "secret")
        for authzid in (
            "admin@example.com",
            "user@example.org",
            "user@example.com/resource",
            "example.com",
            "user@",
            "bad name\u0007@example.com",
        ):
            self.assertEqual(self.condition(self.attempt(authzid)), "invalid-authzid", authzid)

    def test_wrong_password_wins_over_authzid(self) -> None:
        d = self.attempt("admin@example.com", password="wrong")
        self.assertEqual(self.condition(d), "not-authorized")


class ChannelBindingTests(ScramTestCase):
    EXPORTER = bytes(range(32))

    def binding(self, cb_name: str) -> bytes | None:
        return {"tls-exporter": self.EXPORTER, "tls-server-end-point": b"\x01" * 32}.get(cb_name)

    def plus_server(self) -> ScramServer:
        return self.server(plus=True, channel_binding=self.binding, server_supports_plus=True)

    def test_tls_exporter_success(self) -> None:
        for hash_name in HASHES:
            server = self.server(hash_name, plus=True, channel_binding=self.binding)
            client = ScramClient(
                hash_name, "user", "pencil", gs2_header="p=tls-exporter,,", cb_data=self.EXPORTER
            )
            self.assert_success(server, client)

    def test_tls_server_end_point_success(self) -> None:
        client = ScramClient(
            "sha-256", "user", "pencil", gs2_header="p=tls-server-end-point,,", cb_data=b"\x01" * 32
        )
        self.assert_success(self.plus_server(), client)

    def test_channel_binding_with_authzid(self) -> None:
        client = ScramClient(
            "sha-256",
            "user",
            "pencil",
            gs2_header="p=tls-exporter,a=user@example.com,",
            cb_data=self.EXPORTER,
        )
        success = self.assert_success(self.plus_server(), client)
        self.assertEqual(success.authzid, "user@example.com")

    def test_mismatching_binding_data(self) -> None:
        """What a man in the middle would have: the right password, another TLS session."""
        other_session = bytes(reversed(self.EXPORTER))
        client = ScramClient(
            "sha-256", "user", "pencil", gs2_header="p=tls-exporter,,", cb_data=other_session
        )
        d = self.exchange(self.plus_server(), client)
        self.assertEqual(self.condition(d), "not-authorized")

    def test_binding_type_switched_between_messages(self) -> None:
        server = self.plus_server()
        client = ScramClient(
            "sha-256", "user", "pencil", gs2_header="p=tls-exporter,,", cb_data=self.EXPORTER
        )
        challenge = self.successResultOf(server.start(client.first()))
        client.gs2_header = "p=tls-server-end-point,,"
        client.cb_data = b"\x01" * 32
        self.assertEqual(
            self.condition(server.step(client.final(challenge.data))), "not-authorized"
        )

    def test_channel_binding_names_that_are_not_names(self) -> None:
        for flag in ("p=", "p=bad name", "p=tls-exporter=x", "p=tls_unique"):
            d = self.plus_server().start(f"{flag},,n=user,r=abc".encode())
            self.assertEqual(self.condition(d), "malformed-request", flag)

    def test_unavailable_type_with_the_right_proof_is_unavailable_not_unauthorized(self) -> None:
        """What Debian's slixmpp 1.8 sends on TLS 1.3: p=tls-unique with the Finished message.

        The exchange runs to the proof, which proves the account; the login still fails, as
        ChannelBindingUnavailable (no session without a binding we checked)."""

        def only_end_point(cb_name: str) -> bytes | None:
            return b"\x01" * 32 if cb_name == "tls-server-end-point" else None

        cases = [
            (self.plus_server(), "p=tls-unique,,"),  # a type we do not know
            (self.server(plus=True, channel_binding=only_end_point), "p=tls-exporter,,"),
        ]
        for server, header in cases:
            client = ScramClient("sha-256", "User", "pencil", gs2_header=header,
                                 cb_data=b"finished message")
            failure = self.failureResultOf(self.exchange(server, client),
                                           ChannelBindingUnavailable).value
            self.assertEqual((failure.condition, failure.text, failure.localpart),
                             ("malformed-request", "unsupported channel binding type", "user"))
            self.assertEqual(server.authcid, "user")

    def test_unavailable_type_with_a_wrong_proof_is_a_credential_failure(self) -> None:
        for username, password in (("user", "wrong"), ("nobody", "pencil")):
            client = ScramClient("sha-256", username, password, gs2_header="p=tls-unique,,",
                                 cb_data=b"finished message")
            failure = self.failureResultOf(self.exchange(self.plus_server(), client),
                                           SASLFailure).value
            self.assertNotIsInstance(failure, ChannelBindingUnavailable)
            self.assertEqual(failure.condition, "not-authorized")

    def test_unavailable_type_still_checks_the_gs2_header_in_c(self) -> None:
        server = self.plus_server()
        client = ScramClient("sha-256", "user", "pencil", gs2_header="p=tls-unique,,")
        challenge = self.successResultOf(server.start(client.first()))
        client.gs2_header = "n,,"
        d = server.step(client.final(challenge.data))
        self.assertEqual(self.failureResultOf(d, SASLFailure).value.text,
                         "channel binding mismatch")

    def test_plus_requires_binding(self) -> None:
        for flag in ("n", "y"):
            d = self.plus_server().start(f"{flag},,n=user,r=abc".encode())
            self.assertEqual(self.condition(d), "malformed-request", flag)

    def test_binding_requires_plus(self) -> None:
        server = self.server(channel_binding=self.binding, server_supports_plus=True)
        d = server.start(b"p=tls-exporter,,n=user,r=abc")
        self.assertEqual(self.condition(d), "malformed-request")

    def test_y_flag_is_a_downgrade_when_we_offer_plus(self) -> None:
        server = self.server(channel_binding=self.binding, server_supports_plus=True)
        d = server.start(ScramClient("sha-256", "user", "pencil", gs2_header="y,,").first())
        self.assertEqual(self.condition(d), "not-authorized")

    def test_y_flag_after_a_proven_refused_binding_of_the_same_account(self) -> None:
        """The client on this stream proved it saw -PLUS: its 'y' is no stripped-list
        downgrade. Accepted for that account only."""
        server = self.server(channel_binding=self.binding, server_supports_plus=True,
                             binding_refused_for="user")
        self.assert_success(server, ScramClient("sha-256", "User", "pencil", gs2_header="y,,"))
        self.auth.add_user("mallory", "secret")
        for other in ("mallory", "nobody", "not a localpart"):
            server = self.server(channel_binding=self.binding, server_supports_plus=True,
                                 binding_refused_for="user")
            d = server.start(ScramClient("sha-256", other, "x", gs2_header="y,,").first())
            self.assertEqual(self.failureResultOf(d, SASLFailure).value.text,
                             "channel binding downgrade detected", other)

    def test_y_flag_downgrade_is_refused_before_the_backend_is_asked(self) -> None:
        server = self.server(channel_binding=self.binding, server_supports_plus=True)
        d = server.start(ScramClient("sha-256", "user", "pencil", gs2_header="y,,").first())
        self.assertEqual(self.condition(d), "not-authorized")
        self.assertEqual(self.auth.asked, [])
        self.assertEqual(server.authcid, "user")

    def test_y_flag_is_fine_when_we_do_not_offer_plus(self) -> None:
        client = ScramClient("sha-256", "user", "pencil", gs2_header="y,,")
        self.assert_success(self.server(server_supports_plus=False), client)


class MalformedTests(ScramTestCase):
    def test_malformed_client_first(self) -> None:
        for message in (
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=user,r=abc",
            b"F,n,,n=user,r=abc",
            b"n,b=x,n=user,r=abc",
            b"n,a=,n=user,r=abc",
            b"n,a=us=er,n=user,r=abc",
            b"n,,r=abc,n=user",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=user,r=abc,m=ext",
            b"n,,n=user,r=abc,",
            b"n,,n=user,r=abc,xyz",
            b"n,,n=user,r=ab cd",
            b"n,,n=user,r=ab\xc3\xa9",
            b"n,,n=us\x00er,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=user\xff,r=abc",
            b"\x00\x00\x00",
        ):
            self.assertEqual(
                self.condition(self.server().start(message)), "malformed-request", message
            )

    def final_for(self, server: ScramServer) -> tuple[bytes, ScramClient]:
        client = ScramClient("sha-256", "user", "pencil")
        challenge = self.successResultOf(server.start(client.first()))
        return client.final(challenge.data), client

    def test_malformed_client_final(self) -> None:
        def mutations(final: bytes) -> dict[str, bytes]:
            c, r, p = final.split(b",")
            return {
                "empty": b"",
                "no proof": c + b"," + r,
                "proof not last": c + b"," + p + b"," + r,
                "no channel binding": r + b"," + p,
                "no nonce": c + b"," + p,
                "mandatory extension": c + b"," + r + b",m=x," + p,
                "bad proof base64": c + b"," + r + b",p=!!!!",
                "proof padding": c + b"," + r + b"," + p.rstrip(b"="),
                "short proof": c + b"," + r + b",p=" + base64.b64encode(b"short"),
                "bad binding base64": b"c=bi*s," + r + b"," + p,
                "non-ascii base64": "c=biw\u00e9,".encode() + r + b"," + p,
                "not UTF-8": final + b"\xff",
                "empty attribute": c + b",," + r + b"," + p,
            }

        for label, message in mutations(self.final_for(self.server())[0]).items():
            server = self.server()
            self.final_for(server)
            self.assertEqual(self.condition(server.step(message)), "malformed-request", label)


class OneShotTests(ScramTestCase):
    def test_step_after_success(self) -> None:
        server = self.server()
        self.assert_success(server, ScramClient("sha-256", "user", "pencil"))
        self.assertEqual(self.condition(server.step(b"c=biws")), "malformed-request")
        self.assertEqual(self.condition(server.start(b"n,,n=user,r=abc")), "malformed-request")

    def test_step_after_failure(self) -> None:
        server = self.server()
        client = ScramClient("sha-256", "user", "pencil")
        self.condition(server.start(b"garbage"))
        self.assertEqual(self.condition(server.step(client.first())), "malformed-request")

    def test_step_before_start_and_start_twice(self) -> None:
        server = self.server()
        client = ScramClient("sha-256", "user", "pencil")
        self.assertEqual(self.condition(server.step(client.first())), "malformed-request")
        self.successResultOf(server.start(client.first()))
        self.assertEqual(self.condition(server.start(client.first())), "malformed-request")

    def test_step_while_the_backend_is_thinking(self) -> None:
        pending = defer.Deferred()
        self.auth.scram_credentials = lambda *args: pending
        server = self.server()
        first = server.start(ScramClient("sha-256", "user", "pencil").first())
        self.assertNoResult(first)
        self.assertEqual(self.condition(server.step(b"c=biws")), "malformed-request")
        pending.callback(self.auth.credentials[("user", DOMAIN, "sha-256")])
        self.assertIsInstance(self.successResultOf(first), Challenge)


class FuzzTests(ScramTestCase):
    """Whatever the bytes, the answer is a Challenge, a Success or a SASLFailure."""

    def outcome(self, d: defer.Deferred) -> object:
        results: list[object] = []
        d.addBoth(results.append)
        self.assertEqual(len(results), 1, "the Deferred did not fire")
        result = results[0]
        if isinstance(result, Failure) and not result.check(SASLFailure):
            self.fail(f"not a SASLFailure: {result.getTraceback()}")
        if not isinstance(result, Failure):
            self.assertIsInstance(result, (Challenge, Success))
        return result

    def test_random_client_first(self) -> None:
        rng = random.Random(5802)
        alphabet = b"nyp=a,r\x00\xff\xc3mc" + bytes(range(32, 127))
        for _ in range(500):
            length = rng.randrange(0, 40)
            if rng.random() < 0.5:
                message = bytes(rng.choice(alphabet) for _ in range(length))
            else:
                message = rng.randbytes(length)
            self.outcome(self.server(plus=rng.random() < 0.5).start(message))

    def test_mutated_client_final(self) -> None:
        def meaning(final: bytes) -> list[bytes]:
            """Base64 may be spelled differently (unused trailing bits) and mean the same."""
            return [
                base64.b64decode(item[2:]) if item[:2] in (b"c=", b"p=") else item
                for item in final.split(b",")
            ]

        rng = random.Random(7677)
        for _ in range(300):
            server = self.server(nonce_factory=lambda: "fixed-server-nonce")
            client = ScramClient("sha-256", "user", "pencil")
            challenge = self.successResultOf(server.start(client.first()))
            original = client.final(challenge.data)
            message = bytearray(original)
            for _ in range(rng.randrange(1, 4)):
                position = rng.randrange(len(message))
                action = rng.randrange(3)
                if action == 0:
                    message[position] = rng.randrange(256)
                elif action == 1:
                    message.insert(position, rng.choice(b",=\x00\xff"))
                else:
                    del message[position:]
                    if not message:
                        break
            result = self.outcome(server.step(bytes(message)))
            if isinstance(result, Success):
                self.assertEqual(meaning(bytes(message)), meaning(original))


class CatalogueTests(SynchronousTestCase):
    ALL = MECHANISMS_PREFERENCE

    def test_offered_with_tls_and_binding(self) -> None:
        self.assertEqual(
            offered_mechanisms(self.ALL, tls=True, channel_binding_types=["tls-exporter"]),
            list(MECHANISMS_PREFERENCE),
        )

    def test_no_plus_without_binding_types(self) -> None:
        self.assertEqual(
            offered_mechanisms(self.ALL, tls=True, channel_binding_types=[]),
            ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"],
        )
        self.assertEqual(
            offered_mechanisms(self.ALL, tls=True, channel_binding_types=["tls-unique"]),
            ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"],
        )

    def test_without_tls(self) -> None:
        self.assertEqual(
            offered_mechanisms(self.ALL, tls=False, channel_binding_types=["tls-exporter"]),
            ["SCRAM-SHA-256", "SCRAM-SHA-1"],
        )
        self.assertEqual(
            offered_mechanisms(
                self.ALL, tls=False, channel_binding_types=[], allow_plain_without_tls=True
            ),
            ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"],
        )

    def test_enabled_filters_but_does_not_reorder(self) -> None:
        self.assertEqual(
            offered_mechanisms(
                ["PLAIN", "SCRAM-SHA-1", "DIGEST-MD5"],
                tls=True,
                channel_binding_types=["tls-server-end-point"],
            ),
            ["SCRAM-SHA-1", "PLAIN"],
        )

    def create(self, name: str, **kwargs):
        kwargs.setdefault("channel_binding", lambda cb_name: b"data")
        kwargs.setdefault("channel_binding_types", ["tls-server-end-point"])
        kwargs.setdefault("tls", True)
        kwargs.setdefault("auth", MemoryAuth())
        return create_mechanism(name, domain=DOMAIN, **kwargs)

    def test_create_each_offered_mechanism(self) -> None:
        for name in MECHANISMS_PREFERENCE:
            mechanism = self.create(name)
            verifyObject(ISASLMechanism, mechanism)
            self.assertEqual(mechanism.name, name)

    def test_not_offered_is_invalid_mechanism(self) -> None:
        attempts = [
            ("DIGEST-MD5", {}),
            ("scram-sha-1", {}),
            ("SCRAM-SHA-1-PLUS", {"channel_binding_types": []}),
            ("SCRAM-SHA-256-PLUS", {"tls": False}),
            ("PLAIN", {"tls": False}),
            ("SCRAM-SHA-1", {"enabled": ["SCRAM-SHA-256"]}),
        ]
        for name, kwargs in attempts:
            with self.assertRaises(SASLFailure) as caught:
                self.create(name, **kwargs)
            self.assertEqual(caught.exception.condition, "invalid-mechanism", name)
        verifyObject(ISASLMechanism, self.create("PLAIN", tls=False, allow_plain_without_tls=True))

    def test_server_supports_plus_follows_the_offer(self) -> None:
        self.assertTrue(self.create("SCRAM-SHA-256").server_supports_plus)
        self.assertFalse(
            self.create("SCRAM-SHA-256", channel_binding_types=[]).server_supports_plus
        )
        only_sha1_plus = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "SCRAM-SHA-256"]
        self.assertFalse(self.create("SCRAM-SHA-256", enabled=only_sha1_plus).server_supports_plus)
        self.assertTrue(self.create("SCRAM-SHA-1", enabled=only_sha1_plus).server_supports_plus)

    def test_y_flag_through_the_catalogue(self) -> None:
        d = self.create("SCRAM-SHA-1").start(b"y,,n=user,r=abc")
        self.assertEqual(self.failureResultOf(d, SASLFailure).value.condition, "not-authorized")

    def test_only_listed_binding_types_are_usable(self) -> None:
        """tls-exporter is not on this stream's list, so even a callable that would answer it
        must not be consulted: the exchange ends in ChannelBindingUnavailable."""
        auth = MemoryAuth()
        auth.add_user("user", "pencil")
        mechanism = self.create("SCRAM-SHA-256-PLUS", auth=auth)
        client = ScramClient("sha-256", "user", "pencil", gs2_header="p=tls-exporter,,",
                             cb_data=b"\x07" * 32)
        challenge = self.successResultOf(mechanism.start(client.first()))
        d = mechanism.step(client.final(challenge.data))
        self.failureResultOf(d, ChannelBindingUnavailable)

    def test_binding_refused_for_reaches_scram(self) -> None:
        self.assertIsNone(self.create("SCRAM-SHA-256")._binding_refused_for)
        mechanism = self.create("SCRAM-SHA-256", binding_refused_for="user")
        self.assertEqual(mechanism._binding_refused_for, "user")

    def test_full_exchange_with_the_real_localpart_preparation(self) -> None:
        try:
            import xmppd.jid  # noqa: F401
        except ImportError:
            raise SkipTest("xmppd.jid is not written yet")
        auth = MemoryAuth()
        auth.add_user("user", "pencil")
        data = b"\x07" * 32
        mechanism = create_mechanism(
            "SCRAM-SHA-256-PLUS",
            auth=auth,
            domain=DOMAIN,
            channel_binding=lambda cb_name: data,
            channel_binding_types=["tls-exporter"],
            tls=True,
        )
        client = ScramClient(
            "sha-256", "User", "pencil", gs2_header="p=tls-exporter,,", cb_data=data
        )
        challenge = self.successResultOf(mechanism.start(client.first()))
        success = self.successResultOf(mechanism.step(client.final(challenge.data)))
        self.assertEqual(success, Success("user", None, client.expected_success_data()))


class XorTests(SynchronousTestCase):
    def test_bytewise_xor_keeps_leading_zero_bytes_and_refuses_unequal_lengths(self):
        from xmppd.sasl.scram import _xor

        rng = random.Random(5802)
        for size in (0, 1, 20, 32, 64):
            left, right = rng.randbytes(size), rng.randbytes(size)
            expected = bytes(a ^ b for a, b in zip(left, right, strict=True))
            self.assertEqual(_xor(left, right), expected)
        self.assertEqual(_xor(b"\x00\x00\x07", b"\x00\x00\x01"), b"\x00\x00\x06")
        self.assertEqual(_xor(b"\x01" * 32, b"\x01" * 32), b"\x00" * 32)
        self.assertRaises(ValueError, _xor, b"\x00", b"")
