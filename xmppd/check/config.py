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
    """What start-up would say of the plugins (missing, unordered, what the config needs),
    then every enabled plugin's options on their own: each bad one is a line."""
    from xmppd.options import PluginOptions
    from xmppd.registry import PluginError, PluginRegistry, discover
    from xmppd.service import federation_needs

    registry = PluginRegistry(None, config.plugins.enabled, config.plugins.sections,
                              config.server.plugin_dirs)
    problems: list[str] = []
    try:
        registry.check(federation_needs(config.s2s))
    except PluginError as error:
        problems.append(str(error))
    try:
        available = discover(config.server.plugin_dirs)
    except PluginError:
        available = {}  # already said above
    for name in registry.enabled:
        configure = getattr(available.get(name), "configure", None)
        if configure is None:
            continue
        try:
            configure(PluginOptions(name, config.plugins.sections.get(name, {})))
        except ValueError as error:
            if str(error) not in problems:
                problems.append(str(error))
    return [Finding(ERROR, AREA, problem) for problem in problems]
