# -*- test-case-name: tests.unit.test_caps -*-
"""XEP-0115 entity capabilities: the ``ver`` hash of a disco#info, and the ``<c/>`` element.

A client puts ``<c hash node ver/>`` in its presence so that nobody has to ask each of its
resources what it supports; PEP (XEP-0163) needs the features behind a ``ver`` to know who
wants which notifications, and a server may advertise its own ``<c/>`` as a stream feature.
A ``ver`` is only worth caching for every JID that sends it once the disco#info it stands for
has been fetched and hashed again here (§5.4): ``verify`` does that.

Ill-formed disco#info (the §5.4 list: a duplicate identity, feature or FORM_TYPE, a FORM_TYPE
with two values) and ill-formed ``<c/>`` raise ``StanzaError("bad-request")``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import FORM_TYPE, Form, extended_info

# XEP-0115 §9.1: SHA-1 is mandatory; others by their IANA "Hash Function Textual Names".
# MD2 and MD5 are left out on purpose: an unsupported hash only means "do not cache globally".
HASHES: dict[str, Callable[[bytes], Any]] = {
    "sha-1": hashlib.sha1,
    "sha-224": hashlib.sha224,
    "sha-256": hashlib.sha256,
    "sha-384": hashlib.sha384,
    "sha-512": hashlib.sha512,
}

_SEPARATOR = "<"


@dataclass(frozen=True, order=True)
class Identity:
    """A disco identity. Field order is the §5.1 sort order: category, type, xml:lang (then
    name, which the XEP need not sort by since the first three are unique)."""

    category: str
    type: str
    lang: str = ""
    name: str = ""

    def caps_text(self) -> str:
        return f"{self.category}/{self.type}/{self.lang}/{self.name}"

    def to_element(self) -> domish.Element:
        element = domish.Element((ns.DISCO_INFO, "identity"))
        element["category"] = self.category
        element["type"] = self.type
        if self.lang:
            element["xml:lang"] = self.lang
        if self.name:
            element["name"] = self.name
        return element


@dataclass(frozen=True)
class DiscoInfo:
    """What a disco#info result says about an entity: what the ``ver`` hash is computed from."""

    identities: tuple[Identity, ...]
    features: tuple[str, ...]
    forms: tuple[Form, ...] = ()

    def verification_string(self) -> str:
        """The string S of XEP-0115 §5.1 (before UTF-8 encoding and hashing)."""
        parts = [identity.caps_text() for identity in sorted(set(self.identities))]
        parts += sorted(set(self.features))
        for form in sorted(self._hashed_forms(), key=lambda form: form.form_type or ""):
            parts.append(form.form_type or "")
            for var in sorted(form.fields):
                if var != FORM_TYPE:
                    parts.append(var)
                    parts += sorted(form.fields[var].values)
        return "".join(part + _SEPARATOR for part in parts)

    def _hashed_forms(self) -> list[Form]:
        # §5.4 step 3.6: a form without a (hidden) FORM_TYPE is left out.
        return [form for form in self.forms if form.form_type is not None]

    def ver(self, hash_name: str = "sha-1") -> str:
        """The ``ver`` attribute: base64 of the hash of S (§5.1 steps 8-9)."""
        try:
            algorithm = HASHES[hash_name]
        except KeyError:
            raise ValueError(f"unsupported caps hash {hash_name!r}") from None
        digest = algorithm(self.verification_string().encode("utf-8")).digest()
        return base64.b64encode(digest).decode("ascii")

    def is_ambiguous(self) -> bool:
        """True when a string holds the '<' separator, so another disco#info could hash the
        same (the preimage trick §9.3 refers to): such a ``ver`` must not be trusted for
        other JIDs."""
        strings = [text for identity in self.identities
                   for text in (identity.category, identity.type, identity.lang, identity.name)]
        strings += self.features
        for form in self._hashed_forms():
            for var, field in form.fields.items():
                strings += (var, *field.values)
        return any(_SEPARATOR in text for text in strings)


def _lang(element: domish.Element) -> str:
    # Our parser keys xml:lang as "xml:lang"; domish-built elements use the tuple.
    return element.getAttribute("xml:lang") or element.getAttribute((ns.XML, "lang")) or ""


def parse_disco_info(query: domish.Element) -> DiscoInfo:
    """Read a disco#info ``<query/>`` result as §5.4 says: duplicates make it ill-formed."""
    if query.uri != ns.DISCO_INFO or query.name != "query":
        raise StanzaError("bad-request", f"expected <query xmlns='{ns.DISCO_INFO}'/>")
    identities: list[Identity] = []
    features: list[str] = []
    for child in query.elements():
        if child.uri != ns.DISCO_INFO:
            continue
        if child.name == "identity":
            category, type_ = child.getAttribute("category"), child.getAttribute("type")
            if not category or not type_:
                raise StanzaError("bad-request", "an identity needs a category and a type")
            identities.append(Identity(category, type_, _lang(child),
                                       child.getAttribute("name") or ""))
        elif child.name == "feature":
            var = child.getAttribute("var")
            if not var:
                raise StanzaError("bad-request", "a feature needs a var")
            features.append(var)
    forms = tuple(extended_info(query))
    _refuse_duplicates("identity", (identity.caps_text() for identity in identities))
    _refuse_duplicates("feature", features)
    _refuse_duplicates("FORM_TYPE", (form.form_type for form in forms if form.form_type))
    return DiscoInfo(tuple(identities), tuple(features), forms)


def _refuse_duplicates(what: str, texts: Iterable[str]) -> None:
    seen: set[str] = set()
    for text in texts:
        if text in seen:
            raise StanzaError("bad-request", f"disco#info lists the {what} '{text[:80]}' twice")
        seen.add(text)


# ---------------------------------------------------------------------- <c/>


@dataclass(frozen=True)
class Caps:
    """A ``<c xmlns='http://jabber.org/protocol/caps'/>``; ``hash`` is None in the legacy
    format (before version 1.4), whose ``ver`` cannot be verified (§13)."""

    node: str
    ver: str
    hash: str | None = "sha-1"
    ext: str | None = None  # deprecated, kept only to pass on

    @classmethod
    def of(cls, info: DiscoInfo, node: str, hash_name: str = "sha-1") -> Caps:
        """Our own ``<c/>`` for presence or the stream feature (§6.3)."""
        return cls(node, info.ver(hash_name), hash_name)

    @property
    def disco_node(self) -> str:
        """The node to put in the disco#info request that fetches this ``ver`` (§6.2)."""
        return f"{self.node}#{self.ver}"

    @property
    def is_legacy(self) -> bool:
        return self.hash is None

    @property
    def is_verifiable(self) -> bool:
        return self.hash in HASHES

    def to_element(self) -> domish.Element:
        element = domish.Element((ns.CAPS, "c"))
        if self.hash is not None:
            element["hash"] = self.hash
        element["node"] = self.node
        element["ver"] = self.ver
        if self.ext is not None:
            element["ext"] = self.ext
        return element


def parse_caps(element: domish.Element) -> Caps:
    """Read a ``<c/>``; one without ``node`` or ``ver`` is ill-formed (both REQUIRED, §4)."""
    if element.uri != ns.CAPS or element.name != "c":
        raise StanzaError("bad-request", f"expected <c xmlns='{ns.CAPS}'/>")
    node, ver = element.getAttribute("node"), element.getAttribute("ver")
    if not node or not ver:
        raise StanzaError("bad-request", "entity capabilities need a node and a ver")
    return Caps(node, ver, element.getAttribute("hash"), element.getAttribute("ext"))


def find_caps(parent: domish.Element) -> Caps | None:
    """The ``<c/>`` of a presence or of stream features; None when there is none."""
    for child in parent.elements():
        if child.uri == ns.CAPS and child.name == "c":
            return parse_caps(child)
    return None


def verify(caps: Caps, info: DiscoInfo | domish.Element) -> bool:
    """Whether ``caps.ver`` is the hash of ``info`` (the disco#info fetched for it), so that
    the features may be cached for every JID that sends this ``ver`` (§5.4 step 3.8).

    False means "keep these features for this JID only": the hash is unknown or legacy (§5.4
    step 2), it does not match (step 3.9), or the disco#info is ambiguous (``is_ambiguous``).
    Ill-formed disco#info (steps 3.3-3.5) raises ``StanzaError("bad-request")``.
    """
    if isinstance(info, domish.Element):
        info = parse_disco_info(info)
    if not caps.is_verifiable or info.is_ambiguous():
        return False
    return info.ver(caps.hash) == caps.ver
