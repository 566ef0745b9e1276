# -- test-case-name: tests.unit.test_certstore --
"""Certificates per domain, read from disk and swapped as a whole on reload.

Where they come from (``[tls]``): the single ``certificate``/``key`` pair, and a directory
``certificates`` laid out as Prosody or Let's Encrypt do: ``DOMAIN.crt`` + ``DOMAIN.key``, or
``DOMAIN/fullchain.pem`` + ``DOMAIN/privkey.pem``. Which one a name gets (``for_name``): the
file named after it, else a certificate whose names cover it (RFC 6125: a ``*.example.org``
certificate for ``conference.example.org``), else the file of a parent domain, else the
single pair, else the first domain's.

A ``CertificateSet`` never changes; ``CertificateStore.reload`` reads the files again and
replaces the set only if every file is good, so a half-renewed directory keeps the old
certificates. TLS connections take their context from the set current when they start:
existing sessions keep theirs (xmppd.stream.tls, xmppd.s2s.tlsctx).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from xmppd.s2s.certs import names_domain
from xmppd.stream.tls import TLSConfigError

LETSENCRYPT_CHAIN, LETSENCRYPT_KEY = "fullchain.pem", "privkey.pem"
COVERS_REMEMBERED = 256  # names per certificate whose answer KeyPair.covers keeps


@dataclass(eq=False)
class KeyPair:
    """A certificate chain (leaf first) and its private key, read and checked."""

    name: str  # the domain its files are named after, or "" for the single [tls] pair
    cert_path: Path
    key_path: Path
    chain: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes
    _covers: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    def covers(self, domain: str) -> bool:
        """The certificate names ``domain`` (RFC 6125 DNS-ID, wildcard, SRV-ID, XmppAddr).
        Asked at every TLS connection (twice: the stream's domain, then SNI): the answers
        for the first COVERS_REMEMBERED names are kept, as reading the certificate's names
        again costs more than the rest of choosing it."""
        known = self._covers.get(domain)
        if known is None:
            known = names_domain(self.leaf, domain)
            if len(self._covers) < COVERS_REMEMBERED:  # SNI names are the client's choice
                self._covers[domain] = known
        return known


def load_pair(cert_path: Path, key_path: Path, name: str = "") -> KeyPair:
    """Read a PEM chain and its key; TLSConfigError naming the file if either is unusable or
    the key is not the certificate's."""
    try:
        cert_pem = Path(cert_path).read_bytes()
        key_pem = Path(key_path).read_bytes()
    except OSError as error:
        raise TLSConfigError(f"cannot read {error.filename}: {error.strerror}") from None
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_pem))
    except ValueError as error:
        raise TLSConfigError(f"{cert_path}: not a PEM certificate ({error})") from None
    try:
        private = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise TLSConfigError(f"{key_path}: not an unencrypted PEM private key "
                             f"({error})") from None
    if not same_public_key(chain[0], private):
        raise TLSConfigError(f"{key_path} is not the key of {cert_path}")
    return KeyPair(name, Path(cert_path), Path(key_path), chain, private)


def same_public_key(certificate: x509.Certificate, private_key) -> bool:
    """The private key belongs to the certificate (their public keys are equal)."""
    return certificate.public_key() == private_key.public_key()


def directory_pairs(directory: Path) -> Iterator[tuple[str, Path, Path]]:
    """(domain, certificate file, key file) for every pair in ``directory``, sorted by name.

    ``DOMAIN.crt`` needs ``DOMAIN.key`` beside it; ``DOMAIN/`` needs both Let's Encrypt files.
    A lone file is reported by ``missing_halves``, not silently used."""
    found = {}
    for path in sorted(Path(directory).iterdir()):
        if path.is_dir():
            chain, key = path / LETSENCRYPT_CHAIN, path / LETSENCRYPT_KEY
            if chain.exists() and key.exists():
                found[path.name.lower()] = (chain, key)
        elif path.suffix == ".crt" and path.with_suffix(".key").exists():
            found.setdefault(path.stem.lower(), (path, path.with_suffix(".key")))
    for name in sorted(found):
        yield name, *found[name]


def missing_halves(directory: Path) -> list[str]:
    """Files in ``directory`` that look like half a pair: a certificate without its key or
    the other way round."""
    problems = []
    for path in sorted(Path(directory).iterdir()):
        if path.is_dir():
            chain, key = path / LETSENCRYPT_CHAIN, path / LETSENCRYPT_KEY
            if chain.exists() != key.exists():
                problems.append(f"{path}: has {chain.name if chain.exists() else key.name} "
                                f"without {key.name if chain.exists() else chain.name}")
        elif path.suffix in (".crt", ".key"):
            other = path.with_suffix(".key" if path.suffix == ".crt" else ".crt")
            if not other.exists():
                problems.append(f"{path}: no {other.name} beside it")
    return problems


class CertificateSet:
    """The certificates in force at one moment; never changes (a reload makes a new one)."""

    def __init__(self, single: KeyPair | None, by_name: dict[str, KeyPair],
                 domains: tuple[str, ...] = ()) -> None:
        if single is None and not by_name:
            raise TLSConfigError("no certificate: set [tls] certificate and key, or put one "
                                 "per domain into [tls] certificates")
        self.single = single
        self.by_name = dict(by_name)
        self.domains = domains

    def pairs(self) -> list[KeyPair]:
        return ([self.single] if self.single else []) + list(self.by_name.values())

    def default(self) -> KeyPair:
        """For a connection that names no domain: the single pair, else the first domain's."""
        if self.single is not None:
            return self.single
        for domain in self.domains:
            if domain in self.by_name:
                return self.by_name[domain]
        return next(iter(self.by_name.values()))

    def for_name(self, name: str | None) -> KeyPair:
        """The pair to present for ``name`` (SNI, or the stream's domain); see the module."""
        if not name:
            return self.default()
        name = name.lower().rstrip(".")
        if name in self.by_name:
            return self.by_name[name]
        parents = _parents(name)
        for pair in [self.by_name[p] for p in parents if p in self.by_name] + self.pairs():
            if pair.covers(name):
                return pair
        for parent in parents:
            if parent in self.by_name:
                return self.by_name[parent]
        return self.default()


def _parents(name: str) -> list[str]:
    """``a.b.example.org`` → ``b.example.org``, ``example.org`` (not the bare TLD)."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels) - 1)]


class CertificateStore:
    """The live CertificateSet for the ``[tls]`` config, reloadable."""

    def __init__(self, certificate: Path | None, key: Path | None,
                 directory: Path | None = None, domains: tuple[str, ...] = ()) -> None:
        self.certificate, self.key, self.directory = certificate, key, directory
        self.domains = domains
        self.generation = 0  # bumped on every reload that changed the set
        self.current = self.read()
        self._signature = self.signature()

    @classmethod
    def from_config(cls, tls, domains: tuple[str, ...] = ()) -> CertificateStore:
        """From a ``[tls]`` section (xmppd.config.TLSConfig)."""
        return cls(tls.certificate, tls.key, tls.certificates, domains)

    def read(self) -> CertificateSet:
        """Read every file now; TLSConfigError naming each bad file (the set stays as it was)."""
        problems = []
        single = None
        if self.certificate is not None and self.key is not None:
            try:
                single = load_pair(self.certificate, self.key)
            except TLSConfigError as error:
                problems.append(str(error))
        by_name = {}
        if self.directory is not None:
            try:
                entries = list(directory_pairs(self.directory))
            except OSError as error:
                raise TLSConfigError(f"certificate directory {self.directory}: "
                                     f"{error.strerror or error}") from None
            for name, cert_path, key_path in entries:
                try:
                    by_name[name] = load_pair(cert_path, key_path, name)
                except TLSConfigError as error:
                    problems.append(str(error))
        if problems:
            raise TLSConfigError("; ".join(problems))
        return CertificateSet(single, by_name, self.domains)

    def reload(self) -> bool:
        """Read the files again; True if the set was replaced. On a bad file, raise
        TLSConfigError and keep the current set (new connections go on with it)."""
        signature = self.signature()
        self.current = self.read()
        self._signature = signature
        self.generation += 1
        return True

    def changed_on_disk(self) -> bool:
        """Any file added, removed or modified since the last read (for ``[tls] watch``)."""
        return self.signature() != self._signature

    def signature(self) -> tuple:
        """Names, sizes and modification times of every file read: cheap to compare."""
        paths = [p for p in (self.certificate, self.key) if p is not None]
        if self.directory is not None:
            try:
                for _name, cert_path, key_path in directory_pairs(self.directory):
                    paths += [cert_path, key_path]
            except OSError:
                paths.append(self.directory)
        return tuple((str(p), *_stat(p)) for p in paths)


def _stat(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()  # follows Let's Encrypt's live/ symlinks to the new archive files
    except OSError:
        return (-1, -1)
    return (info.st_mtime_ns, info.st_size)
