# -*- test-case-name: tests.unit.test_pubsub_store -*-
"""What a pubsub service holds: nodes (configuration and affiliations), subscriptions and
items, as immutable values that the store writes and the service decides on."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from xmppd.pubsub.config import NodeConfig

# XEP-0060 §4.1. 'none' is what having no affiliation means: it is never stored.
AFFILIATIONS = ("owner", "publisher", "member", "none", "outcast")
# XEP-0060 §4.2; 'none' removes a subscription. No 'pending': 'authorize' is not offered.
SUBSCRIPTION_STATES = ("subscribed", "none")

MAX_NODE_NAME = 1000  # so the item store's name ('pubsub/items/' + node) stays under 1023
MAX_ITEM_ID = 1023


@dataclass(frozen=True)
class Node:
    """One node: its configuration and the affiliations its owners gave (bare JID strings).

    A PEP service's account is owner of every node without being listed (XEP-0163 §3).
    """

    name: str
    config: NodeConfig
    affiliations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for jid, affiliation in self.affiliations.items():
            if affiliation not in AFFILIATIONS or affiliation == "none":
                raise ValueError(f"Node.affiliations: {jid!r} cannot be {affiliation!r}")
        object.__setattr__(self, "affiliations", MappingProxyType(dict(self.affiliations)))

    def with_config(self, config: NodeConfig) -> Node:
        return dataclasses.replace(self, config=config)

    def with_affiliations(self, changes: Mapping[str, str]) -> Node:
        """The node with ``changes`` applied: 'none' removes an affiliation."""
        affiliations = dict(self.affiliations)
        for jid, affiliation in changes.items():
            if affiliation == "none":
                affiliations.pop(jid, None)
            else:
                affiliations[jid] = affiliation
        return dataclasses.replace(self, affiliations=affiliations)

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "affiliations": dict(self.affiliations)}

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any], defaults: NodeConfig) -> Node:
        return cls(name, NodeConfig.from_json(data.get("config", {}), defaults),
                   data.get("affiliations", {}))


@dataclass(frozen=True)
class Subscription:
    """One entity's subscription to one node: the JID as subscribed (bare or full, XEP-0060
    §6.1.1) and the id the service gave it."""

    node: str
    jid: str
    subid: str
    state: str = "subscribed"

    @property
    def bare(self) -> str:
        """The subscriber's bare JID (a localpart or domain never holds a '/')."""
        return self.jid.partition("/")[0]

    def to_json(self) -> dict[str, str]:
        return {"subid": self.subid, "state": self.state}

    @classmethod
    def from_json(cls, node: str, jid: str, data: Mapping[str, str]) -> Subscription:
        return cls(node, jid, data["subid"], data.get("state", "subscribed"))


@dataclass(frozen=True)
class Item:
    """One published item: ``payload`` is the serialized payload element, "" for an item
    without one; ``publisher`` the bare JID that published it."""

    id: str
    publisher: str
    payload: str
    stamp: float
