# -*- test-case-name: tests.unit.test_jid -*-
"""XMPP addresses (RFC 7622): parse, prepare and compare JIDs.

Each part is prepared once, when the JID is made, so comparing two JIDs is comparing two strings.
The localpart uses the PRECIS UsernameCaseMapped profile and the resourcepart OpaqueString
(RFC 8265, via ``precis_i18n``); the domainpart follows RFC 7622 §3.2: RFC 5895 mapping (lower
case, width, NFC), IDNA2008 label checks with the ``idna`` package, and A-labels turned into
U-labels so ``xn--mller-kva.example`` and ``müller.example`` are one domain. When ``idna`` is
missing, Python's IDNA2003 codec checks non-ASCII labels instead and any label that IDNA2003
would alter (``ß``, ``ς``, joiners) is refused rather than silently changed.

``parse_jid`` is memoized in a bounded LRU cache: a hostile peer can make it work, but not grow.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from encodings import idna as stdlib_idna
from typing import final

import precis_i18n

try:
    import idna
except ImportError:  # pragma: no cover - idna comes with twisted[tls]
    idna = None

# RFC 7622 §3.1: every part is 1 to 1023 octets once prepared.
MAX_PART_OCTETS = 1023
# RFC 1034 §3.1: a DNS label (in its A-label form) holds at most 63 octets.
MAX_LABEL_OCTETS = 63
# Preparation shrinks a string to no less than a quarter of its code points (the longest canonical
# composition folds four into one), so longer input cannot prepare to 1023 octets: refuse it
# before doing the work.
MAX_INPUT_CHARS = 4 * MAX_PART_OCTETS

# How many parsed JIDs parse_jid remembers, and the longest text it will remember: together they
# bound the cache's memory whatever peers send.
JID_CACHE_SIZE = 4096
JID_CACHE_MAX_TEXT = 256

# RFC 7622 §3.3.1: characters a localpart must not contain even though PRECIS allows them.
LOCALPART_FORBIDDEN = frozenset("\"&'/:<>@")

_LOCALPART_PROFILE = precis_i18n.get_profile("UsernameCaseMapped")
_RESOURCE_PROFILE = precis_i18n.get_profile("OpaqueString")
_PASSWORD_PROFILE = _RESOURCE_PROFILE  # RFC 8265 §4: passwords are OpaqueString too

# Printable ASCII without space: the only ASCII UsernameCaseMapped accepts (RFC 8264 §9.11).
_ASCII_LOCALPART = re.compile(r"[\x21-\x7e]+")
# Printable ASCII with space: the only ASCII OpaqueString accepts (RFC 8264 §4.3).
_ASCII_RESOURCE = re.compile(r"[\x20-\x7e]+")
# A letter-digit-hyphen DNS label (RFC 5890 §2.3.1), already lower-cased.
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")


class InvalidJID(ValueError):
    """Not an XMPP address: ``part`` names the bad part and ``reason`` says what is wrong."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"invalid {part}: {reason}")
        self.part = part
        self.reason = reason


@final
class JID:
    """An XMPP address whose parts are already prepared: immutable, hashable, cheap to compare.

    Build one with ``parse_jid`` or ``jid_from_parts``; calling ``JID(user, host, resource)``
    prepares the parts the same way.
    """

    __slots__ = ("user", "host", "resource", "_full", "_userhost", "_hash", "_bare")

    user: str | None
    host: str
    resource: str | None

    def __init__(self, user: str | None, host: str, resource: str | None = None) -> None:
        _fill(self, *_prepare_parts(user, host, resource))

    @classmethod
    def _from_prepared(cls, user: str | None, host: str, resource: str | None) -> JID:
        jid = object.__new__(cls)
        _fill(jid, user, host, resource)
        return jid

    def bare(self) -> JID:
        """This address without its resource (the same object when it has none)."""
        bare = self._bare
        if bare is None:
            bare = JID._from_prepared(self.user, self.host, None)
            object.__setattr__(self, "_bare", bare)
        return bare

    def full(self) -> str:
        """The normalized string form, ``user@host/resource`` with the parts that exist."""
        return self._full

    def userhost(self) -> str:
        """``user@host``, or ``host`` when there is no localpart."""
        return self._userhost

    def is_bare(self) -> bool:
        return self.resource is None

    __str__ = full

    def __repr__(self) -> str:
        return f"<JID {self._full}>"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not JID:
            return NotImplemented
        # Neither localpart nor domainpart may hold '@' or '/', so the string is the triple.
        return self._full == other._full  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("JID is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("JID is immutable")

    def __reduce__(self):
        return _unpickle, (self.user, self.host, self.resource)

    def __copy__(self) -> JID:
        return self

    def __deepcopy__(self, memo: dict) -> JID:
        return self


def _unpickle(user: str | None, host: str, resource: str | None) -> JID:
    # A plain function: Twisted's styles module changes how bound methods pickle.
    return JID._from_prepared(user, host, resource)


def _fill(jid: JID, user: str | None, host: str, resource: str | None) -> None:
    userhost = host if user is None else f"{user}@{host}"
    full = userhost if resource is None else f"{userhost}/{resource}"
    set_slot = object.__setattr__
    set_slot(jid, "user", user)
    set_slot(jid, "host", host)
    set_slot(jid, "resource", resource)
    set_slot(jid, "_userhost", userhost)
    set_slot(jid, "_full", full)
    set_slot(jid, "_hash", hash(full))
    set_slot(jid, "_bare", jid if resource is None else None)


# --------------------------------------------------------------------------- whole addresses


def parse_jid(text: str) -> JID:
    """The JID that ``text`` spells, prepared; raises InvalidJID naming the bad part."""
    if len(text) <= JID_CACHE_MAX_TEXT:
        return _parse_jid_cached(text)
    return _parse_jid(text)


def _parse_jid(text: str) -> JID:
    if not isinstance(text, str):
        raise TypeError(f"a JID is parsed from a str, not {type(text).__name__}")
    # RFC 7622 §3.1: the first '/' starts the resourcepart, which may hold '@' and '/';
    # the first '@' before it ends the localpart.
    address, slash, resource = text.partition("/")
    user, at, host = address.partition("@")
    if not at:
        user, host = None, address
    # An empty string after '/' is prepared, and refused, as an empty resourcepart.
    return JID._from_prepared(*_prepare_parts(user, host, resource if slash else None))


_parse_jid_cached = functools.lru_cache(maxsize=JID_CACHE_SIZE)(_parse_jid)


def jid_cache_info() -> functools._CacheInfo:
    """Hits, misses, maxsize and current size of parse_jid's cache."""
    return _parse_jid_cached.cache_info()


def clear_jid_cache() -> None:
    _parse_jid_cached.cache_clear()


def jid_from_parts(user: str | None, host: str, resource: str | None) -> JID:
    """A JID from separate parts, each prepared and checked; None means the part is absent."""
    return JID._from_prepared(*_prepare_parts(user, host, resource))


def _prepare_parts(
    user: str | None, host: str, resource: str | None
) -> tuple[str | None, str, str | None]:
    return (
        None if user is None else prepare_localpart(user),
        prepare_domain(host),
        None if resource is None else prepare_resource(resource),
    )


# --------------------------------------------------------------------------- local, resource


def prepare_localpart(s: str) -> str:
    """The localpart ``s`` under UsernameCaseMapped (RFC 8265 §3.3) and RFC 7622 §3.3."""
    if not s:
        raise InvalidJID("localpart", "empty (omit the '@' for a JID without one)")
    _check_input_length("localpart", s)
    if s.isascii() and _ASCII_LOCALPART.fullmatch(s):
        prepared = s.lower()
    else:
        prepared = _enforce(_LOCALPART_PROFILE, "localpart", s)
    bad = next((c for c in prepared if c in LOCALPART_FORBIDDEN), None)
    if bad is not None:
        raise InvalidJID("localpart", f"{_describe(bad)} is not allowed (RFC 7622 §3.3.1)")
    _check_octets("localpart", prepared)
    return prepared


def prepare_resource(s: str) -> str:
    """The resourcepart ``s`` under OpaqueString (RFC 8265 §4.2), as RFC 7622 §3.4 asks."""
    if not s:
        raise InvalidJID("resourcepart", "empty")
    _check_input_length("resourcepart", s)
    if s.isascii() and _ASCII_RESOURCE.fullmatch(s):
        prepared = s
    else:
        prepared = _enforce(_RESOURCE_PROFILE, "resourcepart", s)
    _check_octets("resourcepart", prepared)
    return prepared


def prepare_password(s: str) -> str:
    """A SASL password under OpaqueString (RFC 8265 §4.2); the error never quotes the password."""
    if not isinstance(s, str):
        raise TypeError(f"a password is a str, not {type(s).__name__}")
    try:
        return _PASSWORD_PROFILE.enforce(s)
    except UnicodeError as error:
        if not s or _reason(error) == "empty":
            raise ValueError("password: empty") from None
        raise ValueError(
            f"password: the character at position {error.start + 1} is not allowed "
            f"({_reason(error)})"
        ) from None


def _enforce(profile, part: str, s: str) -> str:
    try:
        return profile.enforce(s)
    except UnicodeError as error:
        reason = _reason(error)
        if reason == "empty":
            raise InvalidJID(part, "empty after preparation") from None
        if isinstance(error, UnicodeEncodeError) and error.end - error.start == 1:
            # positions count in the string the profile checked, which its mappings may
            # have made longer than ``s`` ('İ' is two characters lower-cased): found by
            # tests/fuzz/atheris_stream.py
            checked = error.object
            where = f"{_describe(checked[error.start])} at position {error.start + 1}"
            raise InvalidJID(part, f"{where} is not allowed ({reason})") from None
        raise InvalidJID(part, f"not allowed ({reason})") from None


def _reason(error: UnicodeError) -> str:
    """precis_i18n's reason without its 'DISALLOWED/' prefix, e.g. 'spaces' or 'bidi_rule'."""
    reason = getattr(error, "reason", "") or str(error)
    return reason.rpartition("/")[2] or reason


# --------------------------------------------------------------------------- domainpart


def prepare_domain(s: str) -> str:
    """The domainpart ``s`` per RFC 7622 §3.2: an IP literal, or a domain name in U-label form."""
    if not s:
        raise InvalidJID("domainpart", "empty")
    _check_input_length("domainpart", s)
    if s[0] == "[":
        return _prepare_ipv6(s)
    if s[-1] == ".":  # RFC 7622 §3.2: one trailing dot is stripped
        s = s[:-1]
        if not s:
            raise InvalidJID("domainpart", "empty")
    s = s.lower() if s.isascii() else _map_rfc5895(s)
    labels = s.split(".")
    if _DIGITS.fullmatch(labels[-1]):
        return _prepare_ipv4(s)
    prepared = ".".join([_prepare_label(label) for label in labels])
    _check_octets("domainpart", prepared)
    return prepared


def _map_rfc5895(s: str) -> str:
    """RFC 5895 §2 mapping: lower case, full/half width to normal, NFC, ideographic full stops."""
    s = s.lower()
    s = "".join([_width_mapped(c) for c in s])
    return unicodedata.normalize("NFC", s).replace("\u3002", ".")


def _width_mapped(c: str) -> str:
    decomposition = unicodedata.decomposition(c)
    if decomposition.startswith(("<wide>", "<narrow>")):
        return "".join(chr(int(code, 16)) for code in decomposition.split()[1:])
    return c


def _prepare_label(label: str) -> str:
    if not label:
        raise InvalidJID("domainpart", "empty label")
    if label.isascii():
        if label[2:4] == "--":  # RFC 5890 §2.3.1: reserved unless an A-label ('xn--')
            if label.startswith("xn--"):
                return _ulabel(label)
            raise InvalidJID("domainpart", f"label {label!r} has '--' in its 3rd and 4th places")
        if len(label) > MAX_LABEL_OCTETS:
            raise InvalidJID("domainpart", f"label longer than {MAX_LABEL_OCTETS} octets")
        if not _LDH_LABEL.fullmatch(label):
            raise InvalidJID("domainpart", _ldh_problem(label))
        return label
    _check_ulabel(label)
    return label


def _ldh_problem(label: str) -> str:
    bad = next((c for c in label if not (c.isalnum() or c == "-")), None)
    if bad is not None:
        return f"{_describe(bad)} is not allowed in a domain name"
    return f"label {label!r} starts or ends with '-'"


def _ulabel_idna2008(alabel: str) -> str:
    """The U-label an A-label stands for, if it is the canonical encoding of a valid one."""
    try:
        ulabel = idna.ulabel(alabel)
        if idna.alabel(ulabel).decode("ascii") != alabel:
            raise idna.IDNAError("not the canonical A-label of its U-label")
    except (idna.IDNAError, UnicodeError) as error:
        raise InvalidJID("domainpart", f"bad A-label {alabel!r}: {error}") from None
    return ulabel


def _check_ulabel_idna2008(label: str) -> None:
    """IDNA2008 (RFC 5891 §5.4) checks, including the 63-octet limit of the A-label."""
    try:
        idna.alabel(label)
    except (idna.IDNAError, UnicodeError) as error:
        raise InvalidJID("domainpart", f"label {label!r}: {error}") from None


def _ulabel_idna2003(alabel: str) -> str:
    """Without ``idna``: Python's IDNA2003 codec decodes the A-label, which must be canonical."""
    try:
        ulabel = stdlib_idna.ToUnicode(alabel.encode("ascii"))
    except UnicodeError as error:
        raise InvalidJID("domainpart", f"bad A-label {alabel!r}: {error}") from None
    _check_ulabel_idna2003(ulabel)
    if stdlib_idna.ToASCII(ulabel).decode("ascii").lower() != alabel:
        raise InvalidJID("domainpart", f"bad A-label {alabel!r}: not the canonical encoding")
    return ulabel


def _check_ulabel_idna2003(label: str) -> None:
    """Without ``idna``: a label that IDNA2003 nameprep would change is refused, not changed."""
    # IDNA2003 leaves ASCII to STD3 rules, which Python's codec does not apply: check them here.
    if not _LDH_LABEL.fullmatch("".join([c if c.isascii() else "a" for c in label])):
        raise InvalidJID("domainpart", _ldh_problem(label))
    try:
        unchanged = stdlib_idna.ToUnicode(stdlib_idna.ToASCII(label)) == label
    except UnicodeError as error:
        raise InvalidJID("domainpart", f"label {label!r}: {error}") from None
    if not unchanged:
        raise InvalidJID("domainpart", f"label {label!r} is not allowed (IDNA2003 would alter it)")


if idna is not None:
    _ulabel, _check_ulabel = _ulabel_idna2008, _check_ulabel_idna2008
else:  # pragma: no cover - idna comes with twisted[tls]
    _ulabel, _check_ulabel = _ulabel_idna2003, _check_ulabel_idna2003


def _prepare_ipv4(s: str) -> str:
    try:
        return str(ipaddress.IPv4Address(s))
    except ValueError:
        raise InvalidJID("domainpart", f"{_clip(s)!r} is neither an IPv4 address nor a domain "
                         "name (a top-level label is never all digits)") from None


def _prepare_ipv6(s: str) -> str:
    inner = s[1:-1] if s[-1] == "]" else ""
    if "%" in inner:  # a zone index only means something on one host
        inner = ""
    try:
        return f"[{ipaddress.IPv6Address(inner).compressed}]"
    except ValueError:
        raise InvalidJID("domainpart", f"{_clip(s)!r} is not a bracketed IPv6 address") from None


# --------------------------------------------------------------------------- shared checks


def _check_input_length(part: str, s: str) -> None:
    if len(s) > MAX_INPUT_CHARS:
        raise InvalidJID(part, f"longer than {MAX_PART_OCTETS} octets")


def _check_octets(part: str, prepared: str) -> None:
    if len(prepared) > MAX_PART_OCTETS // 4 and len(prepared.encode("utf-8")) > MAX_PART_OCTETS:
        raise InvalidJID(part, f"longer than {MAX_PART_OCTETS} octets")


def _describe(c: str) -> str:
    """A character as 'U+0020 (SPACE)' — readable even when it is invisible."""
    name = unicodedata.name(c, "")
    return f"U+{ord(c):04X} ({name})" if name else f"U+{ord(c):04X}"


def _clip(s: str, limit: int = 60) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


def domain_or_none(value: str | None) -> str | None:
    """The prepared domain, or None for a missing or invalid one (for stream headers)."""
    if not value:
        return None
    try:
        return prepare_domain(value)
    except (InvalidJID, ValueError):
        return None
