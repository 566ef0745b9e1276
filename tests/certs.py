"""A throw-away PKI for tests: a CA, per-domain certificates, and the bad ones to refuse.

Unit tests use the objects; integration tests use the PEM files written into a directory
(``ca.crt``, ``<name>.crt`` holding leaf + intermediates, ``<name>.key``), e.g. to point two
servers' ``ca_file`` and certificates at them. Run ``python -m tests.certs DIR DOMAIN...`` to get
the standard set (see ``make_test_pki``) from a shell script.

Leaf certificates carry what RFC 6120 §13.7.1.2 / RFC 6125 expect of an XMPP server:
SANs ``DNS:d`` and ``DNS:*.d``, EKU serverAuth + clientAuth (the same certificate serves both
directions of s2s), and optionally an XmppAddr (id-on-xmppAddr, UTF8String) and an SRV-ID
(id-on-dnsSRV, IA5String ``_xmpp-server.d``).
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")  # RFC 6120 §13.7.1.4
ID_ON_DNSSRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")  # RFC 4985
SERVER_AND_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)

_ONE_DAY = datetime.timedelta(days=1)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def xmpp_addr(address: str) -> x509.OtherName:
    """An XmppAddr SAN entry (UTF8String under id-on-xmppAddr)."""
    return x509.OtherName(ID_ON_XMPPADDR, asn1.encode_der(address))


def srv_id(name: str) -> x509.OtherName:
    """An SRV-ID SAN entry, e.g. ``srv_id("_xmpp-server.example.org")`` (IA5String)."""
    return x509.OtherName(ID_ON_DNSSRV, asn1.encode_der(asn1.IA5String(name)))


@dataclass(frozen=True)
class Issued:
    """A certificate, its key, and where both were written."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path
    chain: tuple[x509.Certificate, ...] = ()  # leaf first, then intermediates (no root)

    @property
    def presented(self) -> list[x509.Certificate]:
        """What a TLS peer sends: the leaf, then the intermediates."""
        return list(self.chain) or [self.cert]


@dataclass
class CertificateAuthority:
    """A CA (root or intermediate) that writes what it issues into ``directory``."""

    directory: Path
    name: str = "xmppd test CA"
    parent: CertificateAuthority | None = None
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    cert: x509.Certificate = field(init=False)
    key: ec.EllipticCurvePrivateKey = field(init=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(self.name)
        now = utc_now()
        issuer_name = self.parent.cert.subject if self.parent else subject
        signing_key = self.parent.key if self.parent else self.key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before or now - 365 * _ONE_DAY)  # covers issue_expired
            .not_valid_after(self.not_after or now + 3650 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
        )
        if self.parent:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.parent.key.public_key()),
                critical=False)
        self.cert = builder.sign(signing_key, hashes.SHA256())
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_pem(self.ca_path, [self.cert])

    @property
    def ca_path(self) -> Path:
        return self.directory / f"{_file_stem(self.name)}.crt"

    def intermediate(self, name: str = "xmppd test intermediate") -> CertificateAuthority:
        """A sub-CA; certificates it issues are written with it in their chain file."""
        return CertificateAuthority(self.directory, name, parent=self)

    def issue(
        self,
        domain: str,
        *,
        dns_names: Sequence[str] | None = None,
        other_names: Sequence[x509.OtherName] = (),
        with_xmpp_addr: bool = False,
        with_srv_id: bool = False,
        common_name: str | None = None,
        san: bool = True,
        eku: Sequence[ObjectIdentifier] | None = SERVER_AND_CLIENT,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        filename: str | None = None,
    ) -> Issued:
        """A leaf for ``domain``: SANs ``DNS:domain, DNS:*.domain`` unless told otherwise.

        ``san=False`` leaves the SAN extension out (only the subject CN names the server);
        ``eku=None`` leaves out the EKU extension.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = utc_now()
        names: list[x509.GeneralName] = [
            x509.DNSName(n) for n in (dns_names if dns_names is not None
                                      else [domain, f"*.{domain}"])
        ]
        if with_xmpp_addr:
            names.append(xmpp_addr(domain))
        if with_srv_id:
            names.append(srv_id(f"_xmpp-server.{domain}"))
        names.extend(other_names)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name or domain))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - _ONE_DAY)
            .not_valid_after(not_after or now + 365 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        if san and names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        chain = (cert, *self._intermediates())
        return _save(self.directory, filename or _file_stem(domain), cert, key, chain)

    def issue_expired(self, domain: str) -> Issued:
        """Right name, right CA, but its validity ended yesterday."""
        now = utc_now()
        return self.issue(domain, not_before=now - 30 * _ONE_DAY, not_after=now - _ONE_DAY,
                          filename=f"expired.{_file_stem(domain)}")

    def issue_wrong_name(self, domain: str, actual: str = "wrong.example") -> Issued:
        """Right CA, valid dates, but issued to ``actual``: presented for ``domain``, it fails."""
        return self.issue(actual, filename=f"wrong-name.{_file_stem(domain)}")

    def _intermediates(self) -> list[x509.Certificate]:
        chain: list[x509.Certificate] = []
        ca: CertificateAuthority | None = self
        while ca is not None and ca.parent is not None:
            chain.append(ca.cert)
            ca = ca.parent
        return chain


def make_self_signed(directory: Path, domain: str, *, filename: str | None = None) -> Issued:
    """A leaf that signs itself: right name and dates, but nobody vouches for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = utc_now()
    name = _name(domain)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _ONE_DAY)
        .not_valid_after(now + 365 * _ONE_DAY)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(domain), x509.DNSName(f"*.{domain}")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage(list(SERVER_AND_CLIENT)), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = Path(directory)
    return _save(directory, filename or f"self-signed.{_file_stem(domain)}", cert, key, (cert,))


@dataclass(frozen=True)
class StandardPKI:
    """The standard set ``make_test_pki`` writes."""


    ca: CertificateAuthority
    good: dict[str, Issued]
    expired: dict[str, Issued]
    wrong_name: dict[str, Issued]
    self_signed: dict[str, Issued]


def make_test_pki(directory: Path, domains: Sequence[str], *,
                  with_other_names: bool = True) -> StandardPKI:
    """A CA plus, per domain: a good certificate (with XmppAddr and SRV-ID unless
    ``with_other_names`` is False: ejabberd 23.01 crashes on XmppAddr), an expired one,
    a wrong-name one and a self-signed one, all written into ``directory``."""
    ca = CertificateAuthority(Path(directory))
    return StandardPKI(
        ca=ca,
        good={d: ca.issue(d, with_xmpp_addr=with_other_names, with_srv_id=with_other_names)
              for d in domains},
        expired={d: ca.issue_expired(d) for d in domains},
        wrong_name={d: ca.issue_wrong_name(d) for d in domains},
        self_signed={d: make_self_signed(Path(directory), d) for d in domains},
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _file_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name.lower()).strip("-.")


def _save(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey,
          chain: Sequence[x509.Certificate]) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    _write_pem(cert_path, chain)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return Issued(cert, key, cert_path, key_path, tuple(chain))


def _write_pem(path: Path, certs: Sequence[x509.Certificate]) -> None:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print("usage: python -m tests.certs DIRECTORY DOMAIN [DOMAIN...]", file=sys.stderr)
        return 2
    pki = make_test_pki(Path(args[0]), args[1:])
    print(f"CA: {pki.ca.ca_path}")
    for domain, issued in pki.good.items():
        print(f"{domain}: {issued.cert_path} {issued.key_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
