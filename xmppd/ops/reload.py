# -- test-case-name: tests.unit.test_reload --
"""Reload what can change while the server runs: SIGHUP and ``xmppdctl reload``.

The config file is read and checked again in full; if it has any problem nothing changes.
Then each difference from the config in force is either applied or named as needing a
restart (listeners, storage, domains... anything held by a socket or a open database):

- ``[log] level``
- ``[server] admins`` (plugins read ``ctx.server_config``, replaced for every plugin)
- ``[s2s] default_policy``, ``[s2s.policy]``, ``allow``, ``deny``: the next stanza, link
  and authentication are judged by the new policy; established links stay
- ``[tls]`` certificate, key, certificates, watch: every certificate is read again (also
  when no key changed: a renewed file); new connections present the new ones, existing
  sessions keep their TLS
- ``[limits]``: new connections, authentications and subscriptions count against the new
  caps and shapers; streams already open read the new values where they read them on use
  (pings, output bound)
- ``[plugins.NAME]`` of a plugin that declares itself reloadable with
  ``reconfigure(ctx, settings)`` (xmppd.registry.PluginRegistry.reconfigure)

The config in force afterwards (``server.config``) is the old one with only what was applied
replaced, so nothing reads a value that is not in effect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from xmppd.config import Config, ConfigError, load_config
from xmppd.interfaces import IServerTrust
from xmppd.logs import get_logger, set_level
from xmppd.registry import PluginError
from xmppd.stream.tls import TLSConfigError

log = get_logger(__name__)

# (section, key) applied at run time; everything else differing needs a restart.
RELOADABLE = {
    ("log", "level"), ("server", "admins"),
    ("s2s", "default_policy"), ("s2s", "policy"), ("s2s", "allow"), ("s2s", "deny"),
    ("tls", "certificate"), ("tls", "key"), ("tls", "certificates"), ("tls", "watch"),
}


@dataclass
class ReloadReport:
    """What one reload did: applied changes, changes that need a restart, and problems."""

    applied: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "applied": self.applied, "restart": self.restart,
                "problems": self.problems}


class Reloader:
    """Applies a fresh read of the config file to the running XmppdService."""

    def __init__(self, xmppd_service) -> None:
        self.service = xmppd_service

    def reload(self) -> ReloadReport:
        """Read the config again and apply what can be; never raises for a bad file."""
        report = ReloadReport()
        current: Config = self.service.config
        try:
            new = load_config(current.path)
        except ConfigError as error:
            report.problems.extend(error.problems)
            self._log(report)
            return report
        effective = current
        differences = changed_keys(current, new)
        wanted = {(section, key) for section, key in differences
                  if (section, key) in RELOADABLE or section == "limits"}
        for section, key in sorted(differences - wanted):
            if section != "plugins" or key == "enabled":
                report.restart.append(f"[{section}] {key}")
        effective = self._log_level(current, new, wanted, report, effective)
        effective = self._admins(new, wanted, report, effective)
        effective = self._federation(new, wanted, report, effective)
        effective = self._certificates(new, wanted, report, effective)
        effective = self._limits(new, wanted, report, effective)
        effective = self._plugins(current, new, report, effective)
        self._install(effective)
        self._log(report)
        return report

    # -- each part

    def _log_level(self, current, new, wanted, report, effective) -> Config:
        if ("log", "level") not in wanted:
            return effective
        set_level(new.log.level)
        report.applied.append(f"[log] level = {new.log.level}")
        return dataclasses.replace(effective, log=new.log)

    def _admins(self, new, wanted, report, effective) -> Config:
        if ("server", "admins") not in wanted:
            return effective
        report.applied.append("[server] admins")
        return dataclasses.replace(
            effective, server=dataclasses.replace(effective.server, admins=new.server.admins))

    def _federation(self, new, wanted, report, effective) -> Config:
        keys = sorted(key for section, key in wanted if section == "s2s")
        if not keys:
            return effective
        manager = self.service.s2s
        if manager is None:
            report.restart.extend(f"[s2s] {key} (federation is off)" for key in keys)
            return effective
        from xmppd.s2s.policy import FederationPolicy
        from xmppd.service import federation_needs

        if federation_needs(new.s2s) and self.service.server.query(IServerTrust) is None:
            report.problems.append("[s2s] buddies-only needs a plugin providing server trust "
                                   "(server_trust); the federation policy is unchanged")
            return effective
        s2s = new.s2s
        manager.policy = FederationPolicy(s2s.default_policy, s2s.policy, s2s.allow, s2s.deny,
                                          trust=manager.policy.trust)
        report.applied.extend(f"[s2s] {key}" for key in keys)
        return dataclasses.replace(effective, s2s=dataclasses.replace(
            effective.s2s, default_policy=s2s.default_policy, policy=s2s.policy,
            allow=s2s.allow, deny=s2s.deny))

    def _certificates(self, new, wanted, report, effective) -> Config:
        """Always read the certificate files again: a renewal changes files, not the config."""
        store = self.service.certificates
        if store is None:
            return effective
        before = (store.certificate, store.key, store.directory)
        store.certificate, store.key, store.directory = (new.tls.certificate, new.tls.key,
                                                         new.tls.certificates)
        try:
            store.reload()
        except TLSConfigError as error:
            store.certificate, store.key, store.directory = before
            report.problems.append(f"[tls] {error}; the certificates in use are unchanged")
            return effective
        names = sorted({pair.name or "default" for pair in store.current.pairs()})
        report.applied.append(f"[tls] certificates read again ({', '.join(names)})")
        self.service.watch_certificates(new.tls.watch)
        return dataclasses.replace(effective, tls=dataclasses.replace(
            effective.tls, certificate=new.tls.certificate, key=new.tls.key,
            certificates=new.tls.certificates, watch=new.tls.watch))

    def _limits(self, new, wanted, report, effective) -> Config:
        keys = sorted(key for section, key in wanted if section == "limits")
        limits = getattr(self.service.server, "limits", None)
        if not keys:
            return effective
        if limits is None:
            report.restart.extend(f"[limits] {key}" for key in keys)
            return effective
        config = new.limits
        limits.config = config
        for name, gate in limits.gates.items():  # the listeners' connection counts stay
            kind = limits.stream_class("s2s" if name.startswith("s2s") else "c2s")
            gate.per_ip, gate.total = kind.unauthenticated_per_ip, kind.unauthenticated_total
            gate.exempt = tuple(config.exempt)
        for auth in (limits.auth, limits.handshakes):  # the failures counted so far stay
            auth.delay, auth.max_delay, auth.window = (config.auth_delay, config.auth_max_delay,
                                                       config.auth_window)
        report.applied.extend(f"[limits] {key}" for key in keys)
        return dataclasses.replace(effective, limits=config)

    def _plugins(self, current, new, report, effective) -> Config:
        registry = self.service.plugins
        old_sections, new_sections = current.plugins.sections, new.plugins.sections
        sections = dict(effective.plugins.sections)
        for name in sorted(set(old_sections) | set(new_sections)):
            section = new_sections.get(name, {})
            if old_sections.get(name, {}) == section:
                continue
            if name not in registry.loaded:
                report.restart.append(f"[plugins.{name}] (the plugin is not loaded)")
                continue
            try:
                applied = registry.reconfigure(name, section)
            except PluginError as error:
                report.problems.append(f"{error}; plugin {name} keeps its settings")
                continue
            except Exception as error:  # a plugin's bug must not stop the rest of the reload
                log.failure("plugin {name} failed to reconfigure", name=name)
                report.problems.append(f"plugin {name} failed to reconfigure: {error}")
                continue
            if applied:
                sections[name] = section
                report.applied.append(f"[plugins.{name}]")
            else:
                report.restart.append(f"[plugins.{name}] (the plugin is not reloadable)")
        return dataclasses.replace(effective, plugins=dataclasses.replace(
            effective.plugins, sections=sections))

    # -- the result

    def _install(self, effective: Config) -> None:
        """The config in force, for the server and every plugin's ``ctx.server_config``."""
        self.service.config = effective
        self.service.server.config = effective
        for ctx in self.service.plugins.loaded.values():
            ctx.server_config = effective

    def _log(self, report: ReloadReport) -> None:
        for line in report.applied:
            log.info("reload: applied {change}", change=line)
        for line in report.restart:
            log.warn("reload: {change} changed and needs a restart", change=line)
        for line in report.problems:
            log.error("reload: {problem}", problem=line)
        if not (report.applied or report.restart or report.problems):
            log.info("reload: nothing changed")


def changed_keys(old: Config, new: Config) -> set[tuple[str, str]]:
    """(section, key) of every top-level setting that differs between two configs."""
    changed = set()
    for part in dataclasses.fields(old):
        if part.name == "path":
            continue
        before, after = getattr(old, part.name), getattr(new, part.name, None)
        if not dataclasses.is_dataclass(before):
            if before != after:
                changed.add((part.name, "*"))
            continue
        for key in dataclasses.fields(before):
            if getattr(before, key.name) != getattr(after, key.name, None):
                changed.add((part.name, key.name))
    return changed
