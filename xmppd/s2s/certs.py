"""Is this peer certificate good for this domain? RFC 6120 §13.7.2, RFC 6125, RFC 7590.

Two separate questions, both answered (the log line wants both):

- chain: the leaf chains to a CA in our trust store (intermediates from the presented chain
  allowed), every certificate is within its dates and correctly signed. cryptography's X.509
  verifier does the path building; we relax two of its web-PKI rules that do not fit XMPP:
  the leaf's EKU may be serverAuth *or* clientAuth (one certificate serves both directions of
  s2s, and public CAs are dropping clientAuth), and a leaf may lack subjectAltName (then the
  name check below falls back to the CN). A certificate that is itself in the trust store is
  trusted as is (an operator pinning a peer's self-signed certificate).
- name: the certificate names the domain, RFC 6125 §6 with XMPP's identifier types:
  DNS-ID (a wildcard only as the whole left-most label, matching exactly one label),
  SRV-ID ``_xmpp-server.<domain>`` (RFC 4985), XmppAddr equal to the domain (RFC 6120
  §13.7.1.4), and the subject CN (CN-ID, DNS-ID rules) only when the certificate has no
  subjectAltName at all.

We do not use service_identity for the name: it has no XmppAddr, requires every given ID type
to match rather than any one, and refuses a whole certificate over one odd SAN entry.
"""

from __future__ import annotations

import datetime
import functools
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import idna
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")  # RFC 6120 §13.7.1.4
ID_ON_DNSSRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")  # RFC 4985
XMPP_SERVER_SRV = "_xmpp-server."  # RFC 6120 §13.7.1.2.1: the SRV-ID service for s2s
TLS_EKUS = frozenset({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH,
                      ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE})
MAX_NAMES_IN_REASON = 5

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class TrustStoreError(Exception):
    """The CA bundle cannot be used; the message names the file."""


@dataclass(frozen=True)
class TrustStore:
    """The CAs we trust for peer certificates (the ``[s2s] ca_file`` bundle)."""

    certificates: tuple[x509.Certificate, ...]
    skipped: int = 0  # PEM blocks in the bundle that were not parseable certificates

    def __post_init__(self) -> None:
        if not self.certificates:
            raise TrustStoreError("no CA certificate in the trust store")

    @classmethod
    def from_pem(cls, data: bytes, source: str = "PEM data") -> TrustStore:
        """Every certificate in a PEM bundle; unparseable ones are skipped (and counted) so one
        odd entry in a system bundle does not take all federation down."""
        certificates, skipped = [], 0
        with warnings.catch_warnings():
            # System bundles hold a few old roots cryptography frowns upon (e.g. a serial
            # number of 0); they load fine and are not ours to complain about.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            for block in _PEM_CERT.findall(data):
                try:
                    certificates.append(x509.load_pem_x509_certificate(block))
                except ValueError:
                    skipped += 1
        if not certificates:
            raise TrustStoreError(f"{source}: no PEM certificate found")
        return cls(tuple(certificates), skipped)

    @classmethod
    def from_file(cls, path: Path | str) -> TrustStore:
        """Load a PEM bundle such as /etc/ssl/certs/ca-certificates.crt or a test CA."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise TrustStoreError(f"CA file {path}: {error.strerror or error}") from None
        return cls.from_pem(data, source=f"CA file {path}")

    def contains(self, certificate: x509.Certificate) -> bool:
        return certificate in self.certificates

    @functools.cached_property
    def store(self) -> Store:
        """The same CAs for cryptography's verifier (built once)."""
        return Store(list(self.certificates))


@dataclass(frozen=True)
class CertCheck:
    """The verdict on a peer's certificate for one domain; ``reason`` is for the log line."""

    valid: bool
    chain_ok: bool
    name_ok: bool
    reason: str


@dataclass(frozen=True)
class PresentedNames:
    """The identifiers a certificate presents (RFC 6125 §1.8), as the certificate spells them."""

    dns_ids: tuple[str, ...] = ()
    srv_ids: tuple[str, ...] = ()
    xmpp_addrs: tuple[str, ...] = ()
    common_names: tuple[str, ...] = ()
    has_san: bool = False

    def for_humans(self) -> list[str]:
        """The names a log reader should see: SAN entries, or the CN when there are none."""
        names = [*self.dns_ids, *self.srv_ids, *self.xmpp_addrs]
        if not self.has_san:
            names.extend(self.common_names)
        return list(dict.fromkeys(names))


def check_certificate(chain: Sequence[x509.Certificate], domain: str, trust: TrustStore,
                      now: datetime.datetime | None = None) -> CertCheck:
    """Check a presented chain (leaf first) for ``domain``; never raises on bad certificates."""
    if not chain:
        return CertCheck(False, False, False, "no certificate")
    leaf = chain[0]
    chain_problem = _chain_problem(leaf, list(chain[1:]), trust, _utc(now))
    name_problem = _name_problem(leaf, domain)
    problems = [p for p in (chain_problem, name_problem) if p]
    return CertCheck(valid=not problems, chain_ok=chain_problem is None,
                     name_ok=name_problem is None, reason="; ".join(problems) or "ok")


def presented_names(certificate: x509.Certificate) -> PresentedNames:
    """Read the DNS-IDs, SRV-IDs, XmppAddrs and subject CNs; undecodable entries are left out."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    srv_ids, xmpp_addrs = [], []
    for other in san.get_values_for_type(x509.OtherName) if san is not None else ():
        if other.type_id == ID_ON_DNSSRV:
            srv_ids.extend(_decoded(other.value, asn1.IA5String))
        elif other.type_id == ID_ON_XMPPADDR:
            xmpp_addrs.extend(_decoded(other.value, str))
    common_names = [str(a.value) for a in
                    certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return PresentedNames(
        dns_ids=tuple(san.get_values_for_type(x509.DNSName)) if san is not None else (),
        srv_ids=tuple(srv_ids), xmpp_addrs=tuple(xmpp_addrs),
        common_names=tuple(common_names), has_san=san is not None and len(san) > 0)


def chain_from_pyopenssl(connection) -> list[x509.Certificate]:
    """The peer's chain, leaf first, from a pyOpenSSL ``SSL.Connection``; [] if it sent none.

    OpenSSL leaves the leaf out of the peer chain on the server side and puts it in on the
    client side; we always return it exactly once, first.
    """
    leaf = connection.get_peer_certificate(as_cryptography=True)
    if leaf is None:
        return []
    rest = connection.get_peer_cert_chain(as_cryptography=True) or []
    if rest and rest[0] == leaf:
        rest = rest[1:]
    return [leaf, *rest]


# --------------------------------------------------------------------------- the chain


def _chain_problem(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                   trust: TrustStore, now: datetime.datetime) -> str | None:
    """None if the chain is good, else a short reason. Simple cases are named before the
    verifier runs because its own messages are long and less plain."""
    if now < leaf.not_valid_before_utc:
        return "certificate not yet valid"
    if now > leaf.not_valid_after_utc:
        return "certificate expired"
    if trust.contains(leaf):
        return None
    if _is_self_signed(leaf):
        return "self-signed"
    eku_problem = _eku_problem(leaf)
    if eku_problem:
        return eku_problem
    verifier = (PolicyBuilder().store(trust.store).time(now)
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                    ee_policy=_LEAF_POLICY)
                .build_client_verifier())
    try:
        verifier.verify(leaf, intermediates)
    except (VerificationError, ValueError) as error:
        return _describe_verification_error(str(error))
    return None


def _leaf_policy() -> ExtensionPolicy:
    """Web PKI leaf rules, minus the EKU (checked by ``_eku_problem``) and the SAN requirement."""
    return (ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
            .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None))


_LEAF_POLICY = _leaf_policy()


def _is_self_signed(certificate: x509.Certificate) -> bool:
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _eku_problem(leaf: x509.Certificate) -> str | None:
    """RFC 5280 §4.2.1.12: no EKU means any use; otherwise it must allow TLS (either side)."""
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension):
        return "certificate extensions unreadable"
    if TLS_EKUS.intersection(eku):
        return None
    return "certificate not for TLS (extended key usage)"


def _describe_verification_error(message: str) -> str:
    message = re.sub(r"\s*\(encountered processing .*\)$", "", message)
    message = message.removeprefix("validation failed: ").removeprefix("candidates exhausted: ")
    if "not valid at validation time" in message:
        return "issuer certificate expired or not yet valid"  # the leaf's dates were fine
    if "candidates exhausted" in message:
        return "issuer not trusted"
    return f"chain invalid: {message}"


# --------------------------------------------------------------------------- the name


def name_problem(leaf: x509.Certificate, domain: str) -> str | None:
    """None if ``leaf`` names ``domain`` for XMPP, else why not: for our own certificates
    (xmppd.stream.certstore, ``xmppdctl check``) as for peers'."""
    return _name_problem(leaf, domain)


def names_domain(leaf: x509.Certificate, domain: str) -> bool:
    return _name_problem(leaf, domain) is None


def _name_problem(leaf: x509.Certificate, domain: str) -> str | None:
    """None if the leaf names ``domain`` (RFC 6125 §6.4 as used by XMPP), else a reason."""
    reference = _a_label_domain(domain)
    if reference is None:
        return f"name mismatch: {domain!r} is not a domain name"
    try:
        names = presented_names(leaf)
    except (ValueError, x509.DuplicateExtension):
        return "name mismatch: unreadable subjectAltName"
    if _names_domain(names, reference):
        return None
    shown = names.for_humans()
    if not shown:
        return "name mismatch: cert names no domain"
    listed = ", ".join(shown[:MAX_NAMES_IN_REASON])
    if len(shown) > MAX_NAMES_IN_REASON:
        listed += f" (+{len(shown) - MAX_NAMES_IN_REASON} more)"
    return f"name mismatch: cert is for {listed}"


def _names_domain(names: PresentedNames, reference: str) -> bool:
    if any(_dns_id_matches(p, reference) for p in names.dns_ids):
        return True
    if any(_srv_id_matches(p, reference) for p in names.srv_ids):
        return True
    if any(_a_label_domain(p) == reference for p in names.xmpp_addrs):
        return True
    # RFC 6125 §6.4.4: the CN only as a last resort, when no subjectAltName exists at all.
    return not names.has_san and any(_dns_id_matches(p, reference) for p in names.common_names)


def _dns_id_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.4.1/§6.4.3: case-insensitive; '*' only as the whole left-most label,
    standing for exactly one label, and never directly under a top-level domain."""
    presented = _a_label_domain(presented, allow_wildcard=True) or ""
    if "*" not in presented:
        return presented == reference
    wildcard, _, base = presented.partition(".")
    if wildcard != "*" or "*" in base or "." not in base:
        return False
    first, _, rest = reference.partition(".")
    return bool(first) and rest == base


def _srv_id_matches(presented: str, reference: str) -> bool:
    """RFC 4985 / RFC 6125 §6.5.1: '_xmpp-server.' then the domain; no wildcards."""
    if presented[:len(XMPP_SERVER_SRV)].lower() != XMPP_SERVER_SRV:
        return False
    return _a_label_domain(presented[len(XMPP_SERVER_SRV):]) == reference


def _a_label_domain(name: str, allow_wildcard: bool = False) -> str | None:
    """``name`` in lower-case A-label form without a trailing dot, or None if it is not a
    domain name. Certificates carry A-labels, JIDs carry U-labels: compare in one form."""
    name = name.strip().removesuffix(".")
    if not name or any(c.isspace() for c in name):
        return None
    if name.isascii():
        return name.lower()
    if allow_wildcard and "*" in name:
        return None  # a wildcard inside an internationalised name: never matched
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


def _decoded(der: bytes, kind: type) -> Iterable[str]:
    """One decoded otherName string, or nothing if the DER is not what the OID promises."""
    try:
        value = asn1.decode_der(kind, der)
    except (ValueError, TypeError):
        return ()
    return (value if isinstance(value, str) else value.as_str(),)


def _utc(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=datetime.UTC)
    return now.astimezone(datetime.UTC)
