"""Helpers for plugins that validate their own [plugins.NAME] section."""

from __future__ import annotations

from collections.abc import Iterable


def reject_unknown_keys(ctx, known: Iterable[str]) -> None:
    """An unknown key in a plugin's section stops start-up, like any other unknown key."""
    unknown = sorted(set(ctx.config) - set(known))
    if unknown:
        raise ValueError(f"[plugins.{ctx.name}] {unknown[0]}: unknown key")
