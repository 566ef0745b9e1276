# -*- test-case-name: tests.unit.test_fast -*-
"""HT-* mechanisms (draft-schmaus-kitten-sasl-ht), the token mechanisms of XEP-0484 FAST.

One message each way: the client sends ``authcid NUL HMAC(token, "Initiator" || cb-data)``;
the server checks it and answers, in <success/>'s additional data,
``HMAC(token, "Responder" || cb-data)``, which proves to the client that the server knew the
token. ``cb-data`` is the channel binding the mechanism names (ENDP: tls-server-end-point,
EXPR: tls-exporter, UNIQ: tls-unique) or nothing (NONE); a -ENDP/-EXPR/-UNIQ mechanism is only
offered on a stream that has that binding (``offered_ht_mechanisms``).

Which tokens exist is not this module's business: ``lookup`` (the FAST plugin's) finds the
key of the account's token that matches, or None. Every failure is not-authorized, whatever
its cause (unknown user, no token, wrong token, expired, revoked, other mechanism): a client
learns nothing but "use your password".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from twisted.internet import defer
from zope.interface import implementer

from xmppd.errors import SASLFailure
from xmppd.interfaces import ISASLMechanism
from xmppd.sasl import ClientFirstMechanism, Success, ask_backend, prepare_localpart

# mechanism suffix -> channel-binding type (None: no binding)
HT_BINDINGS = {"EXPR": "tls-exporter", "ENDP": "tls-server-end-point", "UNIQ": "tls-unique",
               "NONE": None}
HT_HASHES = {"SHA-256": "sha256"}
HT_PREFERENCE = tuple(f"HT-{h}-{cb}" for h in HT_HASHES for cb in HT_BINDINGS)


def offered_ht_mechanisms(channel_binding_types: Sequence[str]) -> list[str]:
    """The HT mechanisms this stream can run, best first: a channel-bound one only when the
    stream has its binding."""
    offered = []
    for name in HT_PREFERENCE:
        binding = HT_BINDINGS[name.rsplit("-", 1)[1]]
        if binding is None or binding in channel_binding_types:
            offered.append(name)
    return offered


def ht_proof(key: bytes, label: bytes, cb_data: bytes, hash_name: str = "SHA-256") -> bytes:
    """HMAC(token, label || cb-data). ``key`` is the token's bytes, or their digest when the
    token is longer than the hash's block: HMAC hashes such keys first (RFC 2104 §2), so the
    two give the same proof, which lets the server keep only the digest."""
    return hmac.new(key, label + cb_data, HT_HASHES[hash_name]).digest()


# lookup(localpart, mechanism, proof, cb_data) -> key bytes of the matching token, or None
TokenLookup = Callable[[str, str, bytes, bytes], object]


@implementer(ISASLMechanism)
class HtServer(ClientFirstMechanism):
    """One HT exchange: the initial response, then Success(responder proof) or not-authorized.

    ``channel_binding(type)`` gives the stream's binding data (None when it has none).
    """

    def __init__(self, name: str, domain: str, channel_binding: Callable[[str], bytes | None],
                 lookup: TokenLookup,
                 prepare_username: Callable[[str], str] = prepare_localpart) -> None:
        _, hash_a, hash_b, cb = name.split("-")
        hash_name = f"{hash_a}-{hash_b}"
        if hash_name not in HT_HASHES or cb not in HT_BINDINGS:
            raise ValueError(f"not an HT mechanism: {name!r}")
        super().__init__()
        self.name = name
        self.hash_name = hash_name
        self._binding = HT_BINDINGS[cb]
        self._domain = domain
        self._channel_binding = channel_binding
        self._lookup = lookup
        self._prepare_username = prepare_username

    def _first_message(self, data: bytes) -> defer.Deferred:
        authcid, sep, proof = data.partition(b"\0")
        if not sep or not authcid or len(proof) != hashlib.new(HT_HASHES[self.hash_name]
                                                                ).digest_size:
            raise SASLFailure("malformed-request", "expected authcid NUL token proof")
        try:
            localpart = self._prepare_username(authcid.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SASLFailure("not-authorized") from None
        self.authcid = localpart
        cb_data = b""
        if self._binding is not None:
            binding = self._channel_binding(self._binding)
            if binding is None:  # offered only with the binding: the stream lost it?
                raise SASLFailure("not-authorized", "channel binding unavailable")
            cb_data = binding
        d = ask_backend(self._lookup, localpart, self.name, proof, cb_data)
        d.addCallback(self._checked, localpart, cb_data)
        return d

    def _checked(self, key: bytes | None, localpart: str, cb_data: bytes) -> Success:
        if not key:
            raise SASLFailure("not-authorized")
        return Success(localpart, None, ht_proof(key, b"Responder", cb_data, self.hash_name))
