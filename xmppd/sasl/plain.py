# -*- test-case-name: tests.unit.test_sasl_plain -*-
"""PLAIN server (RFC 4616): ``authzid NUL authcid NUL passwd`` checked by the auth backend.

The password crosses the wire as it is, so PLAIN must only be offered on a TLS-protected stream.
That is the stream layer's decision (``mechanisms.offered_mechanisms``), not this module's.

Conditions: malformed-request for a message that is not three UTF-8 fields with a non-empty
authcid and password; not-authorized for a bad username, password or unknown user (the backend
is expected to take as long for an unknown user as for a wrong password); invalid-authzid for a
correct login that asks to act as someone else.
"""

from __future__ import annotations

from collections.abc import Callable

from zope.interface import implementer

from xmppd.errors import SASLFailure
from xmppd.interfaces import IAuthBackend, ISASLMechanism
from xmppd.sasl import ClientFirstMechanism, Success, ask_backend, check_authzid, prepare_localpart


def prepare_password(password: str) -> str:
    """PRECIS OpaqueString (RFC 8265 §4.2), the preparation passwords get before their SCRAM
    keys are derived; raises ValueError for one that cannot be valid.

    It is xmppd.jid's, imported on call, so PLAIN and the stored keys can never disagree.
    """
    from xmppd.jid import prepare_password as prepare

    return prepare(password)


@implementer(ISASLMechanism)
class PlainServer(ClientFirstMechanism):
    """One PLAIN exchange: a single message, then Success or failure."""

    name = "PLAIN"

    def __init__(
        self,
        auth: IAuthBackend,
        domain: str,
        prepare_username: Callable[[str], str] = prepare_localpart,
        prepare_password: Callable[[str], str] = prepare_password,
    ) -> None:
        super().__init__()
        self._auth = auth
        self._domain = domain
        self._prepare_username = prepare_username
        self._prepare_password = prepare_password

    def _first_message(self, data: bytes):
        fields = data.split(b"\0")
        if len(fields) != 3:
            raise SASLFailure("malformed-request", "expected authzid NUL authcid NUL password")
        try:
            authzid, authcid, password = (field.decode("utf-8") for field in fields)
        except UnicodeDecodeError:
            raise SASLFailure("malformed-request", "not UTF-8")
        if not authcid or not password:
            raise SASLFailure("malformed-request", "empty authcid or password")
        try:
            localpart = self._prepare_username(authcid)
        except ValueError:
            raise SASLFailure("not-authorized")
        self.authcid = localpart
        try:
            password = self._prepare_password(password)
        except ValueError:
            raise SASLFailure("not-authorized")
        d = ask_backend(self._auth.check_password, localpart, self._domain, password)
        d.addCallback(self._checked, localpart, authzid)
        return d

    def _checked(self, password_ok: bool, localpart: str, authzid: str) -> Success:
        if password_ok is not True:
            raise SASLFailure("not-authorized")
        bare_jid = check_authzid(authzid, localpart, self._domain, self._prepare_username)
        return Success(localpart, bare_jid, None)
