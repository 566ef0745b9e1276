"""The options the pep and pubsub plugins share: the limits of one service owner."""

from __future__ import annotations

from xmppd.pubsub import Limits

LIMIT_KEYS = ("max_nodes", "max_items_per_node", "max_item_size")


def limits_of(ctx) -> Limits:
    """``[plugins.NAME]`` max_nodes, max_items_per_node, max_item_size (bytes) as Limits;
    a bad value stops start-up naming the key."""
    defaults = Limits()
    return Limits(**{key: ctx.option_int(key, getattr(defaults, key), minimum=1)
                     for key in LIMIT_KEYS})
