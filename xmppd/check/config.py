"""The config area: the file (every problem at once) and the plugins' own options."""

from __future__ import annotations

from xmppd.check.findings import ERROR, OK, Finding
from xmppd.config import Config, ConfigError, load_config

AREA = "config"


def check_config(path: str) -> tuple[Config | None, list[Finding]]:
    """The loaded config (None if unusable) and the findings about it."""
    try:
        config = load_config(path)
    except ConfigError as error:
        return None, [Finding(ERROR, AREA, problem) for problem in error.problems]
    findings = check_plugins(config)
    if not findings:
        findings.append(Finding(OK, AREA, f"{path}: valid, plugins found and their "
                                          f"options valid"))
    return config, findings


def check_plugins(config: Config) -> list[Finding]:
    """What start-up would say of the plugins: missing, unordered, bad options."""
    from xmppd.registry import PluginError, PluginRegistry
    from xmppd.service import federation_needs

    registry = PluginRegistry(None, config.plugins.enabled, config.plugins.sections,
                              config.server.plugin_dirs)
    try:
        registry.check(federation_needs(config.s2s))
    except PluginError as error:
        return [Finding(ERROR, AREA, str(error))]
    return []
