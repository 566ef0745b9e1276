# -*- test-case-name: tests.unit.test_services -*-
"""Service discovery (XEP-0030) answered from what plugins declare, per entity and node.

An entity is what a disco request can be about: the server (each host), an account (its own
bare JID, asked by itself), each service on a subdomain. Each has a DiscoEntity: counted
identities and features for the entity itself (``ServerFeatures``), plus providers that
plugins register for what changes with the request: a PEP node list, the rooms of a MUC,
the features of a node. A provider is ``provider(stanza, node)`` returning
``xmppd.caps.DiscoInfo`` (info) or a list of DiscoItem (items), None for "nothing from me",
or a Deferred of those. A node nobody answers for is item-not-found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import DiscoInfo
from xmppd.errors import StanzaError
from xmppd.features import ServerFeatures
from xmppd.handlers import PrioritizedHandlers
from xmppd.stanza import Stanza


@dataclass(frozen=True, slots=True)
class DiscoItem:
    """One disco#items entry: a JID, optionally a node and a human-readable name."""

    jid: str
    node: str | None = None
    name: str | None = None

    def to_element(self) -> domish.Element:
        element = domish.Element((ns.DISCO_ITEMS, "item"))
        element["jid"] = self.jid
        if self.node is not None:
            element["node"] = self.node
        if self.name is not None:
            element["name"] = self.name
        return element


class DiscoEntity(ServerFeatures):
    """The disco of one kind of entity: static identities and features, and providers."""

    def __init__(self) -> None:
        super().__init__()
        self._info = PrioritizedHandlers()
        self._items = PrioritizedHandlers()

    def add_info_provider(self, provider: Callable) -> Callable[[], None]:
        return self._info.add(provider)

    def add_items_provider(self, provider: Callable) -> Callable[[], None]:
        return self._items.add(provider)

    # -- IQ answerers: handler(stanza, origin) for the dispatcher

    def on_info(self, stanza: Stanza, origin):
        node = stanza.payload().getAttribute("node")
        return _gathered([provider(stanza, node) for provider in self._info],
                         self._info_answer, node)

    def on_items(self, stanza: Stanza, origin):
        node = stanza.payload().getAttribute("node")
        return _gathered([provider(stanza, node) for provider in self._items],
                         self._items_answer, node)

    def _info_answer(self, parts: list, node: str | None) -> domish.Element:
        found = [part for part in parts if part is not None]
        if node is not None and not found:
            raise StanzaError("item-not-found", "no such node")
        query = _query(ns.DISCO_INFO, node)
        identities = {(i.category, i.type, i.name or None) for part in found
                      for i in part.identities}
        features = {feature for part in found for feature in part.features}
        if node is None:
            identities.update(self.identities())
            features.update(self.features())
        for category, type_, name in sorted(identities, key=lambda i: (i[0], i[1], i[2] or "")):
            identity = query.addElement("identity")
            identity["category"] = category
            identity["type"] = type_
            if name:
                identity["name"] = name
        for feature in sorted(features):
            query.addElement("feature")["var"] = feature
        for part in found:
            for form in part.forms:
                query.addChild(form.to_element())
        return query

    def _items_answer(self, parts: list, node: str | None) -> domish.Element:
        found = [part for part in parts if part is not None]
        if node is not None and not found:
            raise StanzaError("item-not-found", "no such node")
        query = _query(ns.DISCO_ITEMS, node)
        for part in found:
            for item in part:
                query.addChild(item.to_element())
        return query


def _query(namespace: str, node: str | None) -> domish.Element:
    query = domish.Element((namespace, "query"))
    if node is not None:
        query["node"] = node
    return query


def _gathered(parts: list, answer: Callable, node: str | None):
    """``answer(parts, node)`` at once when every provider answered at once (the rule), else
    once the Deferreds among them have fired."""
    if not any(isinstance(part, defer.Deferred) for part in parts):
        return answer(parts, node)
    waiting = [part if isinstance(part, defer.Deferred) else defer.succeed(part)
               for part in parts]
    d = defer.gatherResults(waiting, consumeErrors=True)
    d.addErrback(lambda failure: failure.value.subFailure)  # the provider's own failure
    return d.addCallback(answer, node)


__all__ = ["DiscoEntity", "DiscoInfo", "DiscoItem"]
