# -*- test-case-name: tests.unit.test_server_trust -*-
"""The numeric settings of the server-trust plugins ([plugins.server_trust], [plugins.incident])."""

from __future__ import annotations

from xmppd.plugins._config import reject_unknown_keys


def read_settings(ctx, defaults: dict) -> dict:
    """The plugin's section checked against ``defaults``: the same keys, numbers above 0 of
    the same kind (a whole number where the default is an int). A bad value stops start-up
    with a message naming the key."""
    reject_unknown_keys(ctx, defaults)
    settings = dict(defaults)
    for key, default in defaults.items():
        if key not in ctx.config:
            continue
        value = ctx.config[key]
        kind = int if isinstance(default, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"[plugins.{ctx.name}] {key}: expected {what} above 0, "
                             f"got {value!r}")
        settings[key] = type(default)(value)
    return settings
