"""The <auth/>, <response/> and <abort/> exchange of RFC 6120 §6 on one stream.

Retries (RFC 6120 §6.4.5): the stream ends after ``[limits] sasl_failures_per_stream`` failed
authentications (MAX_FAILURES without limits), each failure answered after the back-off of
xmppd.limits.auth (per IP, account and pair; a success never waits). A
``ChannelBindingUnavailable`` is not one of them: the client proved its password and only the
channel-binding type it knows was missing here (xmppd.sasl.scram explains the rule). Those get
their own, separate bound, MAX_BINDING_REFUSALS, beyond which they count like any other failure.
The stream also remembers whose proven -PLUS attempt failed that way, so that account's next
SCRAM exchange may use the 'y' flag.

SCRAM's server-first-message carries XEP-0474's hash of what ``features`` advertised: both read
the mechanisms from ``offered`` and the channel-binding types from ``advertised_bindings``, so
the hash covers exactly the lists this stream's client was shown.

Each failure is logged once, with the mechanism, the account when the client named one, the
condition and the reason; never a password, proof or any other SASL payload.

SASL2 (XEP-0388, ``urn:xmpp:sasl:2``) runs here too, on encrypted streams only, with the same
mechanism objects, retry limit, downgrade protection (XEP-0474: SASL2 advertises the same
mechanism list, so the same ``h=``) and log lines; only the elements differ
(xmppd.sasl2.elements), mechanisms that plugins add (FAST's HT-*), and what follows success
(xmppd.sasl2.completion: no restart, the session bound or resumed inline).
"""

from __future__ import annotations

import base64
import binascii

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import events, ns
from xmppd.errors import SASLFailure, StreamError
from xmppd.limits.auth import answer_failure
from xmppd.logs import get_logger
from xmppd.sasl import Challenge, ChannelBindingUnavailable, Success
from xmppd.sasl.ht import HT_PREFERENCE
from xmppd.sasl.mechanisms import (
    MECHANISMS_PREFERENCE,
    create_mechanism,
    offered_mechanisms,
)
from xmppd.sasl2 import SASL2, Sasl2Registry
from xmppd.sasl2 import elements as sasl2_elements
from xmppd.sasl2.completion import complete
from xmppd.stream.tls import channel_binding_data, channel_binding_types, tls_connection

log = get_logger(__name__)

MAX_FAILURES = 3  # RFC 6120 §6.4.5: allow retries, but not forever
MAX_BINDING_REFUSALS = 4  # a legacy client tries each -PLUS we offer (two) once


class SaslExchange:
    """One stream's SASL negotiation; ends in ``stream.authenticated(localpart, mechanism)``."""

    def __init__(self, stream, auth_backend, enabled: list[str], require_encryption: bool,
                 sasl2: Sasl2Registry | None = None) -> None:
        """``sasl2``: the server's SASL2 extensions, or None to offer legacy SASL only."""
        self.stream = stream
        self.sasl2 = sasl2
        self.attempt: sasl2_elements.Attempt | None = None  # the SASL2 <authenticate/> running
        self.auth = auth_backend
        self.enabled = enabled
        self.require_encryption = require_encryption
        self.mechanism = None
        self.failures = 0
        self.binding_refusals = 0
        self.binding_refused_for: str | None = None  # see the module docstring
        self.busy = False  # a mechanism step is running; the client must wait for our answer

    # -- features

    def offered(self) -> list[str]:
        if self.require_encryption and not self.stream.secure:
            return []
        connection = tls_connection(self.stream.transport)
        return offered_mechanisms(self.enabled, self.stream.secure,
                                  channel_binding_types(connection))

    def advertised_bindings(self) -> list[str]:
        """The channel-binding types ``features`` lists (XEP-0440); [] lists none."""
        return channel_binding_types(tls_connection(self.stream.transport))

    def features(self) -> list[domish.Element]:
        offered = self.offered()
        if not offered:
            return []
        mechanisms = domish.Element((ns.SASL, "mechanisms"))
        for name in offered:
            mechanisms.addElement("mechanism", content=name)
        result = [mechanisms]
        types = self.advertised_bindings()
        if types:  # XEP-0440: tell the client which channel bindings we can do
            bindings = domish.Element((ns.SASL_CB, "sasl-channel-binding"))
            for name in types:
                bindings.addElement("channel-binding")["type"] = name
            result.append(bindings)
        if self.sasl2 is not None and self.stream.secure:  # XEP-0388 §11: after TLS only
            inline = self.sasl2.inline_features(self.stream)
            result.insert(1, sasl2_elements.authentication_feature(offered, inline))
        return result

    # -- elements

    def handle(self, element: domish.Element) -> None:
        if self.busy:
            raise StreamError("policy-violation", "wait for the server's SASL answer")
        sasl2 = element.uri == SASL2
        if element.name == ("authenticate" if sasl2 else "auth"):
            if sasl2:
                self._authenticate(element)
            else:
                self._auth(element)
        elif element.name == "response":
            self._response(element, sasl2)
        elif element.name == "abort":
            mechanism, self.mechanism = self.mechanism, None
            self._fail(SASLFailure("aborted"), mechanism, sasl2=sasl2)
        else:
            raise StreamError("unsupported-stanza-type", f"unexpected SASL element {element.name}")

    def _auth(self, element: domish.Element) -> None:
        if self.mechanism is not None:
            raise StreamError("policy-violation", "an authentication is already under way")
        name = element.getAttribute("mechanism")
        offered = self.offered()
        if not offered and self.require_encryption and not self.stream.secure:
            self._fail(SASLFailure("encryption-required"), name)
            return
        if name not in offered:
            self._fail(SASLFailure("invalid-mechanism"), name)
            return
        try:
            self.mechanism = self._create(name)
            initial = _decode(element, allow_absent=True)
        except SASLFailure as failure:
            self.mechanism = None
            self._fail(failure, name)
            return
        self._run(self.mechanism.start, initial)

    def _create(self, name: str):
        """The mechanism ``name`` among those ``offered``, or SASLFailure."""
        connection = tls_connection(self.stream.transport)
        return create_mechanism(
            name, auth=self.auth, domain=self.stream.domain,
            channel_binding=lambda kind: channel_binding_data(connection, kind),
            channel_binding_types=channel_binding_types(connection),
            tls=self.stream.secure, enabled=self.enabled,
            binding_refused_for=self.binding_refused_for,
            advertised_bindings=self.advertised_bindings())

    def _authenticate(self, element: domish.Element) -> None:
        """SASL2's <authenticate/>: offered mechanisms as for <auth/>, then the extensions'."""
        if self.mechanism is not None:
            raise StreamError("policy-violation", "an authentication is already under way")
        name = element.getAttribute("mechanism")
        if self.sasl2 is None or not self.stream.secure or not self.offered():
            self._fail(SASLFailure("encryption-required" if not self.stream.secure
                                   else "invalid-mechanism"), name, sasl2=True)
            return
        try:
            attempt = sasl2_elements.parse_authenticate(element)
            if name in self.offered():
                mechanism = self._create(name)
            else:
                mechanism = self.sasl2.mechanism(name, self.stream, attempt) if name else None
            if mechanism is None:
                raise SASLFailure("invalid-mechanism")
        except SASLFailure as failure:
            self._fail(failure, name, sasl2=True)
            return
        self.attempt = attempt
        self.mechanism = attempt.mechanism = mechanism
        self._run(mechanism.start, attempt.initial_response)

    def _response(self, element: domish.Element, sasl2: bool = False) -> None:
        if self.mechanism is None or (self.attempt is not None) != sasl2:
            raise StreamError("policy-violation", "<response/> without <auth/>")
        try:
            data = (sasl2_elements.decode(element) if sasl2
                    else _decode(element, allow_absent=False))
        except SASLFailure as failure:
            mechanism, self.mechanism = self.mechanism, None
            self._fail(failure, mechanism)
            return
        self._run(self.mechanism.step, data)

    def _run(self, step, data: bytes | None) -> None:
        self.busy = True
        d = defer.maybeDeferred(step, data)
        d.addCallbacks(self._answer, self._error)
        d.addErrback(self._crash)

    def _answer(self, result) -> None:
        self.busy = False
        if self.stream.disconnected:
            return
        if isinstance(result, Challenge) and self.attempt is not None:
            self.stream.send(sasl2_elements.challenge(result.data))
        elif isinstance(result, Challenge):
            challenge = domish.Element((ns.SASL, "challenge"))
            if result.data:
                challenge.addContent(_encode(result.data))
            self.stream.send(challenge)
        elif isinstance(result, Success):
            self._admit(result)

    def _admit(self, result: Success) -> None:
        """The credentials are proved; a login gate may still refuse the account (disabled
        by an administrator), whatever the mechanism, FAST tokens included."""
        self.busy = True
        d = self.stream.hooks.login_refusal(result.authcid, self.stream.domain)
        d.addCallback(self._admitted, result)
        d.addErrback(self._error)
        d.addErrback(self._crash)

    def _admitted(self, refusal: str | None, result: Success) -> None:
        self.busy = False
        if refusal is not None:
            raise SASLFailure("account-disabled", refusal)
        if self.stream.disconnected:
            return
        if self.attempt is not None:
            self._sasl2_success(result)
        else:
            success = domish.Element((ns.SASL, "success"))
            if result.additional_data:
                success.addContent(_encode(result.additional_data))
            mechanism = self.mechanism.name
            self.mechanism = None
            self.stream.send(success)
            self.stream.authenticated(result.authcid, mechanism)

    def _sasl2_success(self, result: Success) -> None:
        """The mechanism succeeded: the extensions' work, then <success/> (completion);
        the client waits, so this stream stays busy until then."""
        attempt = self.attempt
        attempt.localpart = result.authcid
        self.busy = True
        d = complete(self.stream, self.sasl2, attempt, result)
        d.addCallbacks(self._completed, self._error)
        d.addErrback(self._crash)

    def _completed(self, ignored) -> None:
        self.busy = False
        self.mechanism = self.attempt = None

    def _error(self, failure) -> None:
        self.busy = False
        failure.trap(SASLFailure)
        mechanism, self.mechanism = self.mechanism, None
        if self.stream.disconnected:
            return
        error = failure.value
        counted = True
        if isinstance(error, ChannelBindingUnavailable):
            self.binding_refusals += 1
            counted = self.binding_refusals > MAX_BINDING_REFUSALS
            self.binding_refused_for = error.localpart
        self._fail(error, mechanism, counted)

    def _crash(self, failure) -> None:
        self.busy = False
        log.failure("SASL mechanism failed", failure)
        mechanism, self.mechanism = self.mechanism, None
        if not self.stream.disconnected:
            self._fail(SASLFailure("temporary-auth-failure"), mechanism)

    def _fail(self, failure: SASLFailure, mechanism=None, counted: bool = True,
              sasl2: bool | None = None) -> None:
        """Answer <failure/>, log it once, and end the stream at the retry limit.

        ``mechanism`` is the mechanism object, or the name the client asked for when no object
        was made; its ``authcid`` (a prepared localpart, once the client named one) gives the
        account. The reason is the failure's own text: fixed strings of ours, never client data.
        """
        if counted:
            self.failures += 1
        name = getattr(mechanism, "name", mechanism) or "no mechanism"
        known = name in MECHANISMS_PREFERENCE or name in HT_PREFERENCE
        if not known and name != "no mechanism":
            name = repr(name[:40])  # whatever the client wrote: quoted, cut short
        authcid = getattr(mechanism, "authcid", None)
        account = f"{authcid}@{self.stream.domain}" if authcid else "no account named"
        reason = f" ({failure.text})" if failure.text else ""
        log.info("SASL failure with {mechanism} for {account} from {peer}: "
                 "{condition}{reason}{note}", mechanism=name, account=account,
                 peer=self.stream.peer_address, condition=failure.condition, reason=reason,
                 note="" if counted else "; not counted as a failed authentication")
        if counted:  # for plugins (metrics): a bounded name, never the client's own text
            label = name if known else "none" if name == "no mechanism" else "other"
            self.stream.hooks.emit(events.AUTH_FAILED, label, failure.condition)
        if sasl2 is None:
            sasl2 = self.attempt is not None
        self.attempt = None
        answer = sasl2_elements.failure(failure) if sasl2 else failure.to_element()
        # after the back-off delay; the stream ends at the limit (xmppd.limits.auth)
        answer_failure(self, answer, authcid and account, counted, MAX_FAILURES)


def _decode(element: domish.Element, allow_absent: bool) -> bytes | None:
    """Base64 element text; '=' is an empty response, no text is no (initial) response."""
    text = str(element).strip()
    if not text:
        return None if allow_absent else b""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLFailure("incorrect-encoding") from None


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
