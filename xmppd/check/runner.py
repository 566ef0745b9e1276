# -- test-case-name: tests.integration.test_check --
"""Run the areas in order and print one line per finding; the exit status says if any
warning or error was found. Service subdomains come from the running server (plugins make
them); when it is stopped, only the hosts are checked, and a note says so."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from xmppd.check.certificates import WARN_DAYS, check_certificates
from xmppd.check.config import check_config
from xmppd.check.connectivity import check_connectivity
from xmppd.check.dns import DNSCheck, make_resolver
from xmppd.check.findings import AREAS, NOTE, Finding, exit_status, summary
from xmppd.check.listeners import listeners
from xmppd.config import Config


@dataclass
class CheckOptions:
    areas: Sequence[str] = AREAS
    dns_servers: Sequence[tuple[str, int]] = ()  # else [s2s] dns_servers, else the system's
    warn_days: int = WARN_DAYS


async def run_check(reactor, config_path: str, options: CheckOptions,
                    out: TextIO | None = None) -> int:
    """Print the findings, then a summary line; returns the exit status."""
    out = sys.stdout if out is None else out
    findings: list[Finding] = []

    def report(new: list[Finding]) -> None:
        findings.extend(new)
        for finding in new:
            print(finding.line(), file=out, flush=True)

    config, found = check_config(config_path)
    if "config" in options.areas or config is None:
        report(found)
    if config is not None:
        hosts, services, note = await served_domains(reactor, config)
        if note:
            report([Finding(NOTE, "domains", note)])
        domains = [*hosts, *services]
        mine = listeners(config)
        advertised = []
        if "dns" in options.areas:
            servers = options.dns_servers or [tuple(a) for a in config.s2s.dns_servers]
            check = DNSCheck(make_resolver(servers, reactor), mine)
            report(await check.run(hosts, services))
            advertised = check.advertised
        if "certificates" in options.areas:
            report(check_certificates(config, domains, options.warn_days))
        if "connectivity" in options.areas:
            report(await check_connectivity(mine, hosts, advertised, expected_leaf(config)))
    print(f"xmppdctl check: {summary(findings)}", file=out)
    return exit_status(findings)


async def served_domains(reactor, config: Config) -> tuple[list[str], list[str], str | None]:
    """(hosts, service subdomains, a note when the services could not be asked)."""
    from xmppd.admin import control

    hosts = list(config.server.domains)
    path = config.server.control_socket
    if path is None:
        return hosts, [], ("the control socket is off: service subdomains (conference., "
                           "pubsub.) are not known here; checking the hosts only")
    try:
        answer = await control.call(path, "domains", reactor=reactor)
    except control.ServerNotRunning:
        return hosts, [], ("xmppd is not running: service subdomains (conference., pubsub.) "
                           "are known only to the running server; checking the hosts only")
    except control.ControlError as error:
        return hosts, [], f"cannot ask the running server for its services: {error}"
    return hosts, list(answer.get("services", [])), None


def expected_leaf(config: Config):
    """domain → the leaf certificate on disk for it (None when unreadable)."""
    from xmppd.stream.certstore import CertificateStore
    from xmppd.stream.tls import TLSConfigError

    try:
        store = CertificateStore.from_config(config.tls, config.server.domains)
    except TLSConfigError:
        return lambda domain: None
    return lambda domain: store.current.for_name(domain).leaf
