"""The certificates area: for every domain and service subdomain, the certificate it would
present (xmppd.stream.certstore picks it as the server does): chain to a trusted CA
(``[s2s] ca_file``), dates (expired, or expiring within ``warn_days``), names (RFC 6125, as
peers check them: xmppd.s2s.certs), and the key matching the certificate."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from xmppd.check.findings import ERROR, NOTE, OK, WARN, Finding
from xmppd.config import Config
from xmppd.s2s.certs import TrustStore, TrustStoreError, check_certificate, name_problem
from xmppd.stream.certstore import CertificateStore, KeyPair, missing_halves
from xmppd.stream.tls import TLSConfigError

AREA = "certificates"
WARN_DAYS = 14


def check_certificates(config: Config, domains: Sequence[str], warn_days: int = WARN_DAYS,
                       now: datetime.datetime | None = None) -> list[Finding]:
    now = now or datetime.datetime.now(datetime.UTC)
    findings: list[Finding] = []
    if config.tls.certificates is not None:
        try:
            findings += [Finding(WARN, AREA, p) for p in missing_halves(config.tls.certificates)]
        except OSError as error:
            return [Finding(ERROR, AREA, f"[tls] certificates: {config.tls.certificates}: "
                                         f"{error.strerror or error}")]
    try:
        store = CertificateStore.from_config(config.tls, config.server.domains)
    except TLSConfigError as error:
        # one finding per bad file, each naming it (the store joins them with "; ")
        return findings + [Finding(ERROR, AREA, part) for part in str(error).split("; ")]
    try:
        trust = TrustStore.from_file(config.s2s.ca_file)
    except TrustStoreError as error:
        trust = None
        findings.append(Finding(WARN, AREA, f"[s2s] ca_file: {error}; chains not checked"))
    for domain in domains:
        findings += check_pair(store.current.for_name(domain), domain, trust, warn_days, now)
    used = {id(store.current.for_name(d)) for d in domains}
    for pair in store.current.pairs():
        if id(pair) not in used:
            findings.append(Finding(NOTE, AREA, f"{pair.cert_path}: no domain of ours uses it"))
    return findings


def check_pair(pair: KeyPair, domain: str, trust: TrustStore | None, warn_days: int,
               now: datetime.datetime) -> list[Finding]:
    """Findings for the certificate ``domain`` presents (the key matched when it was read)."""
    where = f"{domain}: {pair.cert_path}"
    leaf = pair.leaf
    problems = []
    name = name_problem(leaf, domain)
    if name:
        problems.append(Finding(ERROR, AREA, f"{where}: {name}"))
    expires = leaf.not_valid_after_utc
    if expires <= now:
        problems.append(Finding(ERROR, AREA, f"{where}: expired on {expires:%Y-%m-%d %H:%M} "
                                             f"UTC"))
    elif expires - now < datetime.timedelta(days=warn_days):
        days = (expires - now).days
        problems.append(Finding(WARN, AREA, f"{where}: expires in {days} day"
                                            f"{'s' * (days != 1)} ({expires:%Y-%m-%d})"))
    if leaf.not_valid_before_utc > now:
        problems.append(Finding(ERROR, AREA, f"{where}: not valid before "
                                             f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"))
    if trust is not None and not problems:  # dates and names already said what is wrong
        verdict = check_certificate(pair.chain, domain, trust, now)
        if not verdict.chain_ok:
            reason = verdict.reason.split("; ")[0]
            problems.append(Finding(ERROR, AREA, f"{where}: chain: {reason}"))
    if problems:
        return problems
    return [Finding(OK, AREA, f"{where}: valid until {expires:%Y-%m-%d}, names {domain}, "
                              f"key matches")]
