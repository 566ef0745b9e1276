# -*- test-case-name: tests.unit.test_sasl_scram -*-
"""SCRAM server (RFC 5802) for SHA-1 and SHA-256 (RFC 7677), and -PLUS with channel binding.

Channel-binding types: tls-exporter (RFC 9266) and tls-server-end-point (RFC 5929). The stream
hands us a callable that returns a type's binding data, or None when this stream has none.

Failure conditions (RFC 6120 §6.5), chosen so they never reveal whether an account exists:

- malformed-request: anything that breaks the RFC 5802 grammar (bad UTF-8, missing or misplaced
  attributes, the reserved ``m=`` extension, bad saslname or base64, a proof of the wrong size),
  a gs2 flag that does not fit the mechanism ('p=' on plain SCRAM, 'n'/'y' on -PLUS) and a
  channel-binding name that is not a name;
- malformed-request "unsupported channel binding type" (``ChannelBindingUnavailable``): a
  well-formed -PLUS request for a binding type this stream cannot give, once the proof checked
  out (see below);
- not-authorized: wrong password, unknown or invalid user (after a normal-looking exchange with a
  decoy salt), channel-binding data or nonce that do not match, and the 'y' flag while we offer
  the -PLUS variant (a downgrade: someone removed -PLUS from the features the client saw), with
  the one exception below;
- invalid-authzid: a correct login asking to act as someone else.

Clients that asked for a binding we cannot give, and their 'y' flag
-------------------------------------------------------------------
Clients written before RFC 9266 (Debian's slixmpp 1.8.x, poezio) ask for ``p=tls-unique``,
which TLS 1.3 does not define, then retry plain SCRAM with 'y' ("I can bind, you cannot"), which
RFC 5802 §6 tells a server that offers -PLUS to refuse as a downgrade. Refusing both, such a
client ran into the three-failure limit before it reached PLAIN. The rule:

1. A -PLUS request for a type the stream cannot give is not refused at once: the exchange goes
   on with the salt and iterations, and the proof is checked as usual (the channel-binding part
   of ``c=`` must start with the client's own gs2 header; the binding data after it cannot be
   checked and never authenticates anyone). A wrong proof is an ordinary not-authorized, a
   credential failure. A right proof still fails, as ``ChannelBindingUnavailable``: no login
   without a binding the server verified, so a relay cannot turn a -PLUS attempt into a
   session. That failure is not a credential failure: the stream does not count it.
2. 'y' from an account whose own client, proven by that SCRAM proof on this stream, asked for
   -PLUS is accepted: that client saw -PLUS, so its 'y' means "none of my bindings worked", not
   "someone removed -PLUS". The proof is what makes this safe. A man in the middle can send any
   ``<auth/>`` it likes, so an unproven attempt (a bare ``p=tls-unique`` first message) proves
   nothing and unlocks nothing; only the password's holder can produce the proof, and a client
   that reads XEP-0440 only asks for the types we advertise, which succeed. So 'y' without such
   an attempt is refused as before, whoever sends it.
3. What is left needs a man in the middle whose certificate the client accepts, relaying the
   client's own proven -PLUS attempt and then its own 'y' into one server stream: a legacy
   client (which would otherwise have fallen back to PLAIN and handed over its password), or a
   client that asks for tls-unique when offered over TLS 1.2 and says 'y' on a later
   connection without -PLUS. Such a relay gets a session without channel binding, never the
   password; a client that keeps to -PLUS once it has seen it is not affected.

Downgrade protection (XEP-0474, SSDP)
-------------------------------------
When the stream tells us what it advertised (``advertised``), the server-first-message ends
with ``h=``: the base64 hash, by this mechanism's own hash function, of the advertised
mechanisms and channel-binding types (``downgrade_protection_hash``). The server-first-message
is part of the AuthMessage both proofs sign, so a client that reads ``h`` and finds a list
different from the one it saw knows someone edited the features; a man in the middle cannot
change ``h`` without the proof failing. RFC 5802 §5.1 has clients ignore attributes they do not
know, so older clients (slixmpp 1.8.x) read past it: the attribute is added after ``i=``, the
last one they expect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Sequence

from twisted.internet import defer
from zope.interface import implementer

from xmppd.errors import SASLFailure
from xmppd.interfaces import IAuthBackend, ISASLMechanism
from xmppd.sasl import (
    Challenge,
    ChannelBindingUnavailable,
    ClientFirstMechanism,
    Success,
    ask_backend,
    check_authzid,
    prepare_localpart,
)
from xmppd.sasl.credentials import DEFAULT_ITERATIONS, HASHES, ScramCredentials

CHANNEL_BINDING_TYPES = ("tls-exporter", "tls-server-end-point")

_SERVER_NONCE_BYTES = 24  # RFC 5802 wants an unpredictable nonce; ≥ 18 bytes of entropy
_DECOY_SALT_BYTES = 16  # as long as derive_credentials' salts, so decoys look real
_DECOY_SECRET = os.urandom(32)  # per process: decoy salts are stable, yet unguessable

_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # RFC 5802 'printable': no ','
_CB_NAME = re.compile(r"[A-Za-z0-9.-]+")
_SASLNAME = re.compile(r"(?:[^,=\x00]|=2C|=3D)+")
_SASLNAME_ESCAPE = re.compile(r"=2C|=3D")
_ATTRIBUTE = re.compile(r"([A-Za-z])=([^\x00]*)", re.DOTALL)


def downgrade_protection_hash(
    hash_name: str, mechanisms: Sequence[str], channel_binding_types: Sequence[str] | None
) -> str:
    """XEP-0474 §4.1: the base64 ``hash_name`` digest of the advertised mechanisms, sorted
    (i;octet) and joined by %x1E, then, if XEP-0440 channel bindings were advertised, %x1F and
    their types sorted and joined the same way. ``channel_binding_types`` None (or empty)
    means the stream advertised no ``<sasl-channel-binding/>`` element."""
    text = b"\x1e".join(sorted(name.encode("ascii") for name in mechanisms))
    if channel_binding_types:
        text += b"\x1f" + b"\x1e".join(sorted(kind.encode("ascii")
                                               for kind in channel_binding_types))
    digest = hashlib.new(HASHES[hash_name], text).digest()
    return base64.b64encode(digest).decode("ascii")


def random_nonce() -> str:
    """The server's part of the nonce: printable, without ','."""
    return base64.b64encode(os.urandom(_SERVER_NONCE_BYTES)).decode("ascii")


def decode_saslname(value: str) -> str:
    """Undo RFC 5802's '=2C' / '=3D' escaping; any other '=' is malformed."""
    if not _SASLNAME.fullmatch(value):
        raise SASLFailure("malformed-request", "bad saslname")
    return _SASLNAME_ESCAPE.sub(lambda m: "," if m.group() == "=2C" else "=", value)


@implementer(ISASLMechanism)
class ScramServer(ClientFirstMechanism):
    """One SCRAM exchange: client-first → server-first → client-final → Success(v=...)."""

    def __init__(
        self,
        hash_name: str,
        plus: bool,
        auth: IAuthBackend,
        domain: str,
        channel_binding: Callable[[str], bytes | None],
        server_supports_plus: bool,
        nonce_factory: Callable[[], str] | None = None,
        prepare_username: Callable[[str], str] = prepare_localpart,
        binding_refused_for: str | None = None,
        advertised: tuple[Sequence[str], Sequence[str]] | None = None,
    ) -> None:
        """``advertised``: (mechanisms, channel-binding types) as this stream's features listed
        them, for XEP-0474's ``h=`` (see the module docstring); None adds no ``h=``.
        ``server_supports_plus``: we offer this hash's -PLUS variant on this stream, so a
        client saying 'y' (it would bind but thinks we cannot) has been downgraded, unless it
        is ``binding_refused_for``: the localpart whose proven -PLUS attempt on this stream
        asked for a binding the stream cannot give (the module docstring says why)."""
        if hash_name not in HASHES:
            raise ValueError(f"unsupported SCRAM hash {hash_name!r}")
        super().__init__()
        self.name = "SCRAM-" + hash_name.upper() + ("-PLUS" if plus else "")
        self.hash_name = hash_name
        self.plus = plus
        self.server_supports_plus = server_supports_plus
        self._digest = HASHES[hash_name]
        self._auth = auth
        self._domain = domain
        self._channel_binding = channel_binding
        self._nonce_factory = nonce_factory or random_nonce
        self._prepare_username = prepare_username
        self._binding_refused_for = binding_refused_for
        self._protection = (
            None if advertised is None else downgrade_protection_hash(hash_name, *advertised)
        )

    # ------------------------------------------------------------------ client-first-message

    def _first_message(self, data: bytes) -> defer.Deferred:
        text = _decode_utf8(data)
        flag, authzid_field, bare = _split_gs2_header(text)
        self._gs2_header = f"{flag},{authzid_field},"
        self._cb_data = self._binding_data_for(flag)
        if authzid_field and not authzid_field.startswith("a="):
            raise SASLFailure("malformed-request", "bad gs2 header")
        self._authzid = decode_saslname(authzid_field[2:]) if authzid_field else None

        attributes = _split_attributes(bare)
        if len(attributes) < 2 or attributes[0][0] != "n" or attributes[1][0] != "r":
            raise SASLFailure("malformed-request", "expected n= and r=")
        username = decode_saslname(attributes[0][1])
        client_nonce = attributes[1][1]
        if not _PRINTABLE.fullmatch(client_nonce):
            raise SASLFailure("malformed-request", "bad nonce")
        server_nonce = self._nonce_factory()
        if not _PRINTABLE.fullmatch(server_nonce):
            raise ValueError("nonce_factory must return printable characters without ','")
        self._client_first_bare = bare
        self._nonce = client_nonce + server_nonce

        try:
            self._localpart = self._prepare_username(username)
        except ValueError:
            self._localpart = None
        self.authcid = self._localpart
        if flag == "y" and self.server_supports_plus and (
            self._localpart is None or self._localpart != self._binding_refused_for
        ):
            raise SASLFailure("not-authorized", "channel binding downgrade detected")
        if self._localpart is None:
            d = defer.succeed(None)
            decoy_key = username
        else:
            d = ask_backend(
                self._auth.scram_credentials, self._localpart, self._domain, self.hash_name
            )
            decoy_key = self._localpart  # 'User' and 'user' must get the same decoy salt
        d.addCallback(self._server_first, decoy_key)
        return d

    def _binding_data_for(self, flag: str) -> bytes | None:
        """What c= must carry after the gs2 header (RFC 5802 §6), checking the flag on the way;
        None for a well-formed binding type this stream cannot give (the 'y' flag waits for the
        username: see ``_first_message``)."""
        if flag in ("n", "y"):
            if self.plus:
                raise SASLFailure("malformed-request", f"{self.name} requires channel binding")
            return b""
        if not flag.startswith("p="):
            raise SASLFailure("malformed-request", "bad gs2 channel-binding flag")
        if not self.plus:
            raise SASLFailure("malformed-request", "channel binding requires the -PLUS mechanism")
        cb_name = flag[2:]
        if not _CB_NAME.fullmatch(cb_name):
            raise SASLFailure("malformed-request", "bad channel binding name")
        if cb_name not in CHANNEL_BINDING_TYPES:
            return None
        return self._channel_binding(cb_name)

    # ------------------------------------------------------------------ server-first-message

    def _server_first(self, credentials: ScramCredentials | None, decoy_key: str) -> Challenge:
        self._known_user = credentials is not None and credentials.hash_name == self.hash_name
        if not self._known_user:
            credentials = self._decoy_credentials(decoy_key)
        self._credentials = credentials
        self._server_first_message = (
            f"r={self._nonce},s={base64.b64encode(credentials.salt).decode('ascii')},"
            f"i={credentials.iterations}"
        )
        if self._protection is not None:
            self._server_first_message += f",h={self._protection}"
        self._expect = self._final_message
        return Challenge(self._server_first_message.encode("ascii"))

    def _decoy_credentials(self, username: str) -> ScramCredentials:
        """Credentials nobody can match, with a salt that is the same on every try for a name.

        An unknown user then gets the exchange a real one gets, so SCRAM cannot be used to
        learn which accounts exist.
        """
        seed = "\0".join((self.hash_name, self._domain, username)).encode("utf-8")
        salt = hmac.new(_DECOY_SECRET, seed, "sha256").digest()[:_DECOY_SALT_BYTES]
        size = hashlib.new(self._digest).digest_size
        return ScramCredentials(
            self.hash_name, salt, DEFAULT_ITERATIONS, os.urandom(size), os.urandom(size)
        )

    # ------------------------------------------------------------------ client-final-message

    def _final_message(self, data: bytes) -> Success:
        text = _decode_utf8(data)
        attributes = _split_attributes(text)
        if (
            len(attributes) < 3
            or attributes[0][0] != "c"
            or attributes[1][0] != "r"
            or attributes[-1][0] != "p"
        ):
            raise SASLFailure("malformed-request", "expected c=, r= and p= last")
        binding = _decode_base64(attributes[0][1])
        proof = _decode_base64(attributes[-1][1])
        if len(proof) != hashlib.new(self._digest).digest_size:
            raise SASLFailure("malformed-request", "bad proof length")
        header = self._gs2_header.encode("utf-8")
        if self._cb_data is None:  # a binding we cannot give: only the header can be checked
            binding_ok = hmac.compare_digest(binding[: len(header)], header)
        else:
            binding_ok = hmac.compare_digest(binding, header + self._cb_data)
        if not binding_ok:
            raise SASLFailure("not-authorized", "channel binding mismatch")
        if attributes[1][1] != self._nonce:
            raise SASLFailure("not-authorized", "nonce mismatch")

        without_proof = text.rsplit(",", 1)[0]
        auth_message = ",".join(
            (self._client_first_bare, self._server_first_message, without_proof)
        ).encode("utf-8")
        credentials = self._credentials
        client_signature = hmac.new(credentials.stored_key, auth_message, self._digest).digest()
        client_key = _xor(proof, client_signature)
        proof_ok = hmac.compare_digest(
            hashlib.new(self._digest, client_key).digest(), credentials.stored_key
        )
        if not (proof_ok and self._known_user):
            raise SASLFailure("not-authorized")
        if self._cb_data is None:
            raise ChannelBindingUnavailable(self._localpart)

        authzid = check_authzid(
            self._authzid, self._localpart, self._domain, self._prepare_username
        )
        server_signature = hmac.new(credentials.server_key, auth_message, self._digest).digest()
        return Success(self._localpart, authzid, b"v=" + base64.b64encode(server_signature))


def _xor(left: bytes, right: bytes) -> bytes:
    """Byte-wise XOR of two strings of the same length (one integer operation, not a
    Python step per byte: this runs at every SCRAM login)."""
    if len(left) != len(right):
        raise ValueError("XOR of strings of different lengths")
    size = len(left)
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(size, "big")


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLFailure("malformed-request", "not UTF-8")


def _split_gs2_header(text: str) -> tuple[str, str, str]:
    """(cbind flag, authzid field or '', client-first-message-bare)."""
    parts = text.split(",", 2)
    if len(parts) != 3:
        raise SASLFailure("malformed-request", "missing gs2 header")
    return parts[0], parts[1], parts[2]


def _split_attributes(text: str) -> list[tuple[str, str]]:
    """The ``k=value`` attributes of a SCRAM message, in order; unknown ones are kept for the
    caller to ignore, but the reserved mandatory extension 'm' is refused (RFC 5802 §5.1)."""
    attributes = []
    for item in text.split(","):
        match = _ATTRIBUTE.fullmatch(item)
        if match is None:
            raise SASLFailure("malformed-request", "bad attribute")
        if match.group(1) == "m":
            raise SASLFailure("malformed-request", "mandatory extension not supported")
        attributes.append((match.group(1), match.group(2)))
    return attributes


def _decode_base64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII input
        raise SASLFailure("malformed-request", "bad base64")
