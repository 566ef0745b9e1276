"""The indented examples of etc/xmppd.toml (``#     [plugins.NAME]`` blocks), read as TOML so
a plugin's tests can check that its documented example configures."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "etc" / "xmppd.toml"


def sample_section(plugin: str) -> dict:
    """The ``[plugins.PLUGIN]`` example of the sample config; KeyError when it has none."""
    lines = re.findall(r"(?m)^#     (.*)$", SAMPLE.read_text(encoding="utf-8"))
    return tomllib.loads("\n".join(lines))["plugins"][plugin]
