"""One stream's SASL negotiation (xmppd.c2s.sasl_exchange): what counts as a failed
authentication, the 'y' flag after a proven -PLUS attempt, and the failure log lines.

The stream is a stand-in recording what would be sent; the TLS connection's channel bindings are
replaced by a fixed list, as on a TLS 1.3 stream (tls-exporter, tls-server-end-point).
"""

from __future__ import annotations

import base64

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from tests.scramclient import ScramClient
from tests.unit import test_sasl_scram as scram_tests
from xmppd import events, ns
from xmppd.c2s import sasl_exchange
from xmppd.c2s.hooks import ClientHooks
from xmppd.c2s.sasl_exchange import MAX_BINDING_REFUSALS, MAX_FAILURES, SaslExchange
from xmppd.sasl import MECHANISMS_PREFERENCE

PASSWORD = "pencil"
BINDINGS = {"tls-exporter": b"\x05" * 32, "tls-server-end-point": b"\x06" * 32}


class FakeStream:
    """What SaslExchange uses of a ClientStream."""

    def __init__(self) -> None:
        self.secure = True
        self.transport = None
        self.domain = scram_tests.DOMAIN
        self.disconnected = False
        self.peer_address = "192.0.2.7:5555"
        self.sent: list[domish.Element] = []
        self.stream_error = None
        self.authenticated_as: tuple[str, str] | None = None
        self.events: list[tuple] = []  # what it emitted through the hooks
        self.hooks = ClientHooks(None, lambda *event: self.events.append(event), None)

    def send(self, element: domish.Element) -> None:
        self.sent.append(element)

    def fail(self, error) -> None:
        self.stream_error = error
        self.disconnected = True

    def authenticated(self, localpart: str, mechanism: str) -> None:
        self.authenticated_as = (localpart, mechanism)


class ExchangeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(sasl_exchange, "channel_binding_types", lambda connection: list(BINDINGS))
        self.patch(sasl_exchange, "channel_binding_data",
                   lambda connection, kind: BINDINGS.get(kind))
        self.auth = scram_tests.MemoryAuth()
        self.auth.add_user("user", PASSWORD)
        self.stream = FakeStream()
        self.sasl = SaslExchange(self.stream, self.auth, list(MECHANISMS_PREFERENCE), True)
        self.lines: list[str] = []
        observer = lambda event: self.lines.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def element(self, name: str, data: bytes | None = None, **attributes) -> domish.Element:
        element = domish.Element((ns.SASL, name))
        for key, value in attributes.items():
            element[key] = value
        if data is not None:
            element.addContent(base64.b64encode(data).decode("ascii") or "=")
        return element

    def last(self) -> domish.Element:
        return self.stream.sent[-1]

    def scram(self, mechanism: str, client: ScramClient) -> domish.Element:
        """A whole exchange as a client drives it; returns the server's last element."""
        self.sasl.handle(self.element("auth", client.first(), mechanism=mechanism))
        if self.last().name != "challenge":
            return self.last()
        server_first = base64.b64decode(str(self.last()))
        self.sasl.handle(self.element("response", client.final(server_first)))
        return self.last()

    def legacy_plus_attempt(self, mechanism: str, password: str = PASSWORD) -> domish.Element:
        """What slixmpp 1.8 sends on TLS 1.3: p=tls-unique with the client's Finished message."""
        hash_name = "sha-1" if mechanism.startswith("SCRAM-SHA-1") else "sha-256"
        client = ScramClient(hash_name, "user", password, gs2_header="p=tls-unique,,",
                             cb_data=b"client finished")
        return self.scram(mechanism, client)

    def failure_lines(self) -> list[str]:
        return [line for line in self.lines if line.startswith("SASL failure")]


class LoginGateTests(ExchangeTestCase):
    def test_a_gate_refuses_a_proven_account_with_account_disabled(self) -> None:
        asked = []
        self.stream.hooks.add_login_gate(
            lambda localpart, domain: asked.append((localpart, domain)) or "disabled")
        answer = self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", PASSWORD))
        self.assertEqual((answer.name, answer.firstChildElement().name),
                         ("failure", "account-disabled"))
        self.assertEqual(asked, [("user", scram_tests.DOMAIN)])
        self.assertIsNone(self.stream.authenticated_as)
        self.assertIn("account-disabled", self.failure_lines()[-1])

    def test_a_gate_that_lets_the_account_in(self) -> None:
        self.stream.hooks.add_login_gate(lambda localpart, domain: None)
        answer = self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", PASSWORD))
        self.assertEqual(answer.name, "success")
        self.assertEqual(self.stream.authenticated_as, ("user", "SCRAM-SHA-256"))


class LegacyClientTests(ExchangeTestCase):
    def test_slixmpp_18_sequence_logs_in_with_scram_on_the_first_stream(self) -> None:
        """-PLUS twice with tls-unique (refused, not counted), then plain SCRAM with 'y'."""
        for mechanism in ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"):
            answer = self.legacy_plus_attempt(mechanism)
            self.assertEqual(answer.name, "failure")
            self.assertEqual(answer.firstChildElement().name, "malformed-request")
        self.assertEqual(self.sasl.failures, 0)
        self.assertEqual(self.sasl.binding_refused_for, "user")
        answer = self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", PASSWORD,
                                                         gs2_header="y,,"))
        self.assertEqual(answer.name, "success")
        self.assertEqual(self.stream.authenticated_as, ("user", "SCRAM-SHA-256"))
        self.assertIsNone(self.stream.stream_error)

    def test_refusals_are_bounded_on_their_own(self) -> None:
        for _ in range(MAX_BINDING_REFUSALS):
            self.legacy_plus_attempt("SCRAM-SHA-256-PLUS")
        self.assertEqual(self.sasl.failures, 0)
        for _ in range(MAX_FAILURES):
            self.legacy_plus_attempt("SCRAM-SHA-256-PLUS")
        self.assertEqual(self.sasl.failures, MAX_FAILURES)
        self.assertEqual(self.stream.stream_error.condition, "policy-violation")

    def test_a_wrong_password_in_a_legacy_attempt_counts_and_unlocks_nothing(self) -> None:
        answer = self.legacy_plus_attempt("SCRAM-SHA-256-PLUS", password="guess")
        self.assertEqual(answer.firstChildElement().name, "not-authorized")
        self.assertEqual(self.sasl.failures, 1)
        self.assertIsNone(self.sasl.binding_refused_for)


class DowngradeTests(ExchangeTestCase):
    def test_y_without_an_attempt_is_a_counted_downgrade(self) -> None:
        answer = self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", PASSWORD,
                                                         gs2_header="y,,"))
        self.assertEqual(answer.firstChildElement().name, "not-authorized")
        self.assertEqual(self.sasl.failures, 1)
        self.assertIsNone(self.stream.authenticated_as)

    def test_an_unproven_plus_attempt_does_not_excuse_y(self) -> None:
        """A man in the middle can send a p=tls-unique first message of its own before relaying
        the client's 'y': without the account's proof it changes nothing."""
        self.sasl.handle(self.element("auth", b"p=tls-unique,,n=user,r=mitm",
                                      mechanism="SCRAM-SHA-256-PLUS"))
        self.assertEqual(self.last().name, "challenge")
        self.sasl.handle(self.element("abort"))
        answer = self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", PASSWORD,
                                                         gs2_header="y,,"))
        self.assertEqual(answer.firstChildElement().name, "not-authorized")
        self.assertIsNone(self.stream.authenticated_as)

    def test_another_accounts_proven_attempt_does_not_excuse_y(self) -> None:
        self.auth.add_user("mallory", "secret")
        client = ScramClient("sha-256", "mallory", "secret", gs2_header="p=tls-unique,,",
                             cb_data=b"x")
        self.scram("SCRAM-SHA-256-PLUS", client)
        self.assertEqual(self.sasl.binding_refused_for, "mallory")
        answer = self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", PASSWORD,
                                                         gs2_header="y,,"))
        self.assertEqual(answer.firstChildElement().name, "not-authorized")

    def test_supported_bindings_still_work(self) -> None:
        for binding, data in BINDINGS.items():
            self.setUp()
            client = ScramClient("sha-256", "user", PASSWORD, gs2_header=f"p={binding},,",
                                 cb_data=data)
            self.assertEqual(self.scram("SCRAM-SHA-256-PLUS", client).name, "success", binding)


class LogTests(ExchangeTestCase):
    def test_one_line_per_failure_with_mechanism_account_and_reason(self) -> None:
        self.legacy_plus_attempt("SCRAM-SHA-256-PLUS")
        self.scram("SCRAM-SHA-256", ScramClient("sha-256", "User", "wrong"))
        self.sasl.handle(self.element("auth", b"\0user\0x", mechanism="X-OTHER\tNAME"))
        self.assertEqual(self.failure_lines(), [
            "SASL failure with SCRAM-SHA-256-PLUS for user@example.com from 192.0.2.7:5555: "
            "malformed-request (unsupported channel binding type); "
            "not counted as a failed authentication",
            "SASL failure with SCRAM-SHA-256 for user@example.com from 192.0.2.7:5555: "
            "not-authorized",
            "SASL failure with 'X-OTHER\\tNAME' for no account named from 192.0.2.7:5555: "
            "invalid-mechanism",
        ])

    def test_one_auth_failed_event_per_counted_failure_with_a_name_we_chose(self) -> None:
        """For metrics: the client's own mechanism name never becomes a label."""
        self.legacy_plus_attempt("SCRAM-SHA-256-PLUS")  # not counted: no event
        self.scram("SCRAM-SHA-256", ScramClient("sha-256", "User", "wrong"))
        self.sasl.handle(self.element("auth", b"\0user\0x", mechanism="X-OTHER\tNAME"))
        self.assertEqual(self.stream.events, [
            (events.AUTH_FAILED, "SCRAM-SHA-256", "not-authorized"),
            (events.AUTH_FAILED, "other", "invalid-mechanism"),
        ])

    def test_downgrade_and_plain_lines(self) -> None:
        self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", PASSWORD, gs2_header="y,,"))
        self.sasl.handle(self.element("auth", b"\0user\0wrong password", mechanism="PLAIN"))
        self.assertEqual(self.failure_lines(), [
            "SASL failure with SCRAM-SHA-256 for user@example.com from 192.0.2.7:5555: "
            "not-authorized (channel binding downgrade detected)",
            "SASL failure with PLAIN for user@example.com from 192.0.2.7:5555: not-authorized",
        ])

    def test_no_password_or_payload_in_any_line(self) -> None:
        self.legacy_plus_attempt("SCRAM-SHA-256-PLUS")
        self.scram("SCRAM-SHA-256", ScramClient("sha-256", "user", "wrong"))
        self.sasl.handle(self.element("auth", b"\0user\0hunter2 secret", mechanism="PLAIN"))
        text = "\n".join(self.lines)
        for secret in (PASSWORD, "hunter2", "wrong", "client finished", "p=", "r=", "cD10"):
            self.assertNotIn(secret, text)
