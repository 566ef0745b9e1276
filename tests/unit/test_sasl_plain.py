"""PLAIN server (xmppd.sasl.plain), RFC 4616."""

from __future__ import annotations

import hmac
import random

from precis_i18n import get_profile
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppd.errors import SASLFailure
from xmppd.interfaces import IAuthBackend, ISASLMechanism
from xmppd.sasl import Challenge, Success
from xmppd.sasl.plain import PlainServer

DOMAIN = "example.com"
_USERNAME = get_profile("UsernameCaseMapped")
_PASSWORD = get_profile("OpaqueString")


@implementer(IAuthBackend)
class PasswordAuth:
    """An in-memory IAuthBackend keeping prepared passwords; it records every check."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = {(localpart, DOMAIN): pw for localpart, pw in passwords.items()}
        self.checked: list[tuple[str, str, str]] = []
        self.error: Exception | None = None

    def scram_credentials(self, localpart, domain, hash_name):
        return defer.succeed(None)  # PLAIN never asks; SCRAM has its own tests

    def check_password(self, localpart, domain, password):
        self.checked.append((localpart, domain, password))
        if self.error is not None:
            return defer.fail(self.error)
        known = self.passwords.get((localpart, domain))
        return defer.succeed(
            known is not None and hmac.compare_digest(known.encode(), password.encode())
        )


class PlainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.auth = PasswordAuth({"juliet": "r0m30myr0m30", "ren\u00e9e": "p\u00e4ss w\u00f6rd"})

    def server(self, **kwargs) -> PlainServer:
        kwargs.setdefault("prepare_username", _USERNAME.enforce)
        kwargs.setdefault("prepare_password", _PASSWORD.enforce)
        return PlainServer(self.auth, DOMAIN, **kwargs)

    def login(self, message: bytes) -> defer.Deferred:
        return self.server().start(message)

    def condition(self, d: defer.Deferred) -> str:
        return self.failureResultOf(d, SASLFailure).value.condition

    def test_interfaces(self) -> None:
        verifyObject(IAuthBackend, self.auth)
        verifyObject(ISASLMechanism, self.server())
        self.assertEqual(self.server().name, "PLAIN")

    def test_success(self) -> None:
        success = self.successResultOf(self.login(b"\0juliet\0r0m30myr0m30"))
        self.assertEqual(success, Success("juliet", None, None))
        self.assertEqual(self.auth.checked, [("juliet", DOMAIN, "r0m30myr0m30")])

    def test_username_and_password_are_prepared(self) -> None:
        """Case-mapped username; NFC and ASCII spaces in the password (OpaqueString)."""
        message = "\0REN\u00c9E\0pa\u0308ss\u3000wo\u0308rd".encode()
        success = self.successResultOf(self.login(message))
        self.assertEqual(success.authcid, "ren\u00e9e")
        self.assertEqual(self.auth.checked, [("ren\u00e9e", DOMAIN, "p\u00e4ss w\u00f6rd")])

    def test_wrong_password_and_unknown_user(self) -> None:
        for message in (b"\0juliet\0wrong", b"\0juliet\0R0M30MYR0M30", b"\0romeo\0r0m30myr0m30"):
            self.assertEqual(self.condition(self.login(message)), "not-authorized", message)

    def test_unpreparable_username_or_password(self) -> None:
        for message in ("\0bad name\u0007\0pw".encode(), "\0juliet\0pw\u0007".encode()):
            self.assertEqual(self.condition(self.login(message)), "not-authorized", message)
        self.assertEqual(self.auth.checked, [])

    def test_malformed(self) -> None:
        for message in (
            b"",
            b"juliet",
            b"\0juliet",
            b"juliet\0r0m30myr0m30",
            b"\0juliet\0r0m30myr0m30\0",
            b"\0\0r0m30myr0m30",
            b"\0juliet\0",
            b"\0\0",
            b"\0jul\xffiet\0r0m30myr0m30",
            b"\xff\0juliet\0r0m30myr0m30",
        ):
            self.assertEqual(self.condition(self.login(message)), "malformed-request", message)
        self.assertEqual(self.auth.checked, [])

    def test_authzid(self) -> None:
        for authzid in ("juliet@example.com", "Juliet@Example.COM"):
            message = f"{authzid}\0juliet\0r0m30myr0m30".encode()
            success = self.successResultOf(self.login(message))
            self.assertEqual(success, Success("juliet", "juliet@example.com", None))
        for authzid in ("romeo@example.com", "juliet@example.org", "juliet@example.com/balcony"):
            message = f"{authzid}\0juliet\0r0m30myr0m30".encode()
            self.assertEqual(self.condition(self.login(message)), "invalid-authzid", authzid)

    def test_authzid_is_not_checked_before_the_password(self) -> None:
        d = self.login(b"romeo@example.com\0juliet\0wrong")
        self.assertEqual(self.condition(d), "not-authorized")

    def test_no_initial_response(self) -> None:
        server = self.server()
        self.assertEqual(self.successResultOf(server.start(None)), Challenge(b""))
        success = self.successResultOf(server.step(b"\0juliet\0r0m30myr0m30"))
        self.assertEqual(success.authcid, "juliet")

    def test_one_shot(self) -> None:
        good = b"\0juliet\0r0m30myr0m30"
        server = self.server()
        self.assertEqual(self.condition(server.step(good)), "malformed-request")
        self.successResultOf(server.start(good))
        self.assertEqual(self.condition(server.step(good)), "malformed-request")
        self.assertEqual(self.condition(server.start(good)), "malformed-request")
        failed = self.server()
        self.condition(failed.start(b"\0juliet\0wrong"))
        self.assertEqual(self.condition(failed.step(good)), "malformed-request")

    def test_backend_failure_is_temporary(self) -> None:
        self.auth.error = OSError("database is down")
        self.assertEqual(
            self.condition(self.login(b"\0juliet\0r0m30myr0m30")), "temporary-auth-failure"
        )
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_random_bytes(self) -> None:
        rng = random.Random(4616)
        for _ in range(300):
            length = rng.randrange(0, 30)
            message = bytes(rng.choice(b"\0\0jul\xffiet@example.com\xc3") for _ in range(length))
            results: list[object] = []
            self.login(message).addBoth(results.append)
            self.assertEqual(len(results), 1)
            if isinstance(results[0], Failure):
                self.assertTrue(results[0].check(SASLFailure), results[0].getTraceback())

    def test_default_preparation_is_xmppd_jid(self) -> None:
        """Without injection, the server prepares as the rest of xmppd does."""
        server = PlainServer(self.auth, DOMAIN)
        success = self.successResultOf(server.start(b"\0JULIET\0r0m30myr0m30"))
        self.assertEqual(success.authcid, "juliet")
