# -*- test-case-name: tests.unit.test_sasl_scram,tests.unit.test_sasl_plain -*-
"""The server side of SASL (RFC 4422, RFC 6120 §6): what mechanisms answer, and shared rules.

A mechanism object runs exactly one exchange: ``start`` then ``step`` until it fires a ``Success``
or fails with ``xmppd.errors.SASLFailure``. The stream layer turns a ``Challenge`` into
<challenge/>, a ``Success`` into <success/> and a SASLFailure into <failure/>; it also owns the
outer base64 (incorrect-encoding) and which mechanisms a stream offers (see ``mechanisms``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from xmppd.errors import SASLFailure
from xmppd.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Challenge:
    """Data for a <challenge/>; the exchange waits for the client's next response."""

    data: bytes


@dataclass(frozen=True)
class Success:
    """The exchange authenticated ``authcid`` (a prepared localpart of the stream's domain).

    ``authzid`` is the bare JID the client asked to act as (always its own), or None.
    ``additional_data`` goes into <success/> (SCRAM's ``v=`` server signature), or None.
    """

    authcid: str
    authzid: str | None
    additional_data: bytes | None


class ChannelBindingUnavailable(SASLFailure):
    """The account's own client asked for a channel-binding type this stream cannot give.

    Raised only after its SCRAM proof checked out, so ``localpart`` is proven: this is an
    interoperability failure, not a credential failure, and the stream layer neither counts it
    against the retry limit nor treats the same account's later 'y' flag as a downgrade (see
    ``xmppd.sasl.scram`` for why that is safe).
    """

    def __init__(self, localpart: str) -> None:
        super().__init__("malformed-request", "unsupported channel binding type")
        self.localpart = localpart


def prepare_localpart(username: str) -> str:
    """Prepare a SASL username as a JID localpart (RFC 7622 §3.3); raises ValueError if invalid.

    xmppd.jid is imported on call so that this package does not depend on it at import time.
    """
    from xmppd.jid import prepare_localpart as prepare

    return prepare(username)


def check_authzid(
    authzid: str | None,
    localpart: str,
    domain: str,
    prepare_username: Callable[[str], str],
) -> str | None:
    """The bare JID ``authzid`` names, which must be the user's own; None when it is absent.

    We do not let one account act for another, so any other identity (another user, another
    domain, a full JID) is SASLFailure("invalid-authzid"). Call this only after the credentials
    checked out, so that a stranger learns nothing from it.
    """
    if not authzid:
        return None
    local, _, domainpart = authzid.partition("@")
    try:
        same_user = prepare_username(local) == localpart
    except ValueError:
        same_user = False
    if not same_user or domainpart.lower() != domain.lower():
        raise SASLFailure("invalid-authzid")
    return f"{localpart}@{domain}"


def ask_backend(call: Callable[..., Any], *args: Any) -> defer.Deferred:
    """Call an IAuthBackend method; its crash becomes temporary-auth-failure (and is logged).

    A SASLFailure the backend raises itself (say, account-disabled) goes through untouched.
    """
    d = defer.maybeDeferred(call, *args)
    d.addErrback(_backend_failed)
    return d


def _backend_failed(failure: Failure) -> Failure:
    if failure.check(SASLFailure):
        return failure
    log.failure("SASL authentication backend failed", failure)
    raise SASLFailure("temporary-auth-failure")


class ClientFirstMechanism:
    """One-shot driver for mechanisms where the client speaks first (SCRAM, PLAIN).

    Subclasses set ``name`` and implement ``_first_message(data)``, returning a Challenge or a
    Success (or a Deferred of one); when they return a Challenge they set ``self._expect`` to the
    handler of the next message. Anything out of order (start twice, step before start, step
    after the exchange ended or while the previous step is still pending) fails with
    malformed-request: the client sent data the exchange was not waiting for. After a failure
    the object is spent; the stream layer makes a new one for the next attempt.
    """

    name = ""

    def __init__(self) -> None:
        self._started = False
        self._expect: Callable[[bytes], Any] | None = self._first_message
        # The prepared localpart the client named, once known: for log lines, never a secret.
        self.authcid: str | None = None

    def _first_message(self, data: bytes) -> Any:
        raise NotImplementedError

    def start(self, initial_response: bytes | None) -> defer.Deferred:
        if self._started:
            return defer.fail(SASLFailure("malformed-request", "exchange already started"))
        self._started = True
        if initial_response is None:
            # No initial response: an empty challenge asks for the client's first message.
            return defer.succeed(Challenge(b""))
        return self.step(initial_response)

    def step(self, response: bytes) -> defer.Deferred:
        if not self._started or self._expect is None:
            return defer.fail(SASLFailure("malformed-request", "no SASL exchange in progress"))
        handler, self._expect = self._expect, None
        if not isinstance(response, bytes):
            return defer.fail(SASLFailure("malformed-request"))
        return defer.maybeDeferred(handler, response)


# The mechanisms import the names above, so they are re-exported last.
from xmppd.sasl.mechanisms import (  # noqa: E402
    MECHANISMS_PREFERENCE,
    create_mechanism,
    offered_mechanisms,
)
from xmppd.sasl.plain import PlainServer  # noqa: E402
from xmppd.sasl.scram import CHANNEL_BINDING_TYPES, ScramServer  # noqa: E402

__all__ = [
    "CHANNEL_BINDING_TYPES",
    "ChannelBindingUnavailable",
    "MECHANISMS_PREFERENCE",
    "Challenge",
    "PlainServer",
    "ScramServer",
    "Success",
    "check_authzid",
    "create_mechanism",
    "offered_mechanisms",
    "prepare_localpart",
]
