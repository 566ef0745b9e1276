# -*- test-case-name: tests.unit.test_pubsub_store -*-
"""Where one pubsub service keeps its nodes, items and subscriptions: generic stores only.

The owner of every row is the service's JID: an account's bare JID for its PEP service, so
that deleting the account deletes its nodes with it (the generic stores cascade on owner),
or the domain of a pubsub service. Under that owner:

- map ``pubsub``: node name -> {"config": {...}, "affiliations": {bare JID: affiliation}};
  small, read by every operation on the node, so one read answers "does it exist, who may";
- archive ``pubsub/items/<node>``: the items in publish order, entry id = item id,
  with_jid = publisher, payload = the serialized payload; republishing an id replaces the
  item and makes it the newest, and ``trim`` enforces max_items;
- map ``pubsub/subscriptions/<node>``: subscribed JID -> {"subid": ..., "state": ...}, apart
  from the node record so that a subscribe writes one row, not every subscriber's.

Deleting a node is three writes. The record goes first, so a node is never half there; the
items and subscriptions of a node name are cleared again when a node of that name is made,
so a crash between the writes cannot hand old items to a new node.
"""

from __future__ import annotations

from xmppd.pubsub.config import NodeConfig
from xmppd.pubsub.model import Item, Node, Subscription
from xmppd.storage.records import ArchiveEntry, ArchivePage, ArchiveQuery

NODES = "pubsub"
ITEMS = "pubsub/items/"
SUBSCRIPTIONS = "pubsub/subscriptions/"


class NodeStore:
    """The stored state of one service (``owner``); every method is a coroutine."""

    def __init__(self, storage, owner: str, defaults: NodeConfig) -> None:
        self._storage = storage
        self.owner = owner
        self._defaults = defaults
        self._nodes = storage.open_store(NODES, "map")

    def _items(self, node: str):
        return self._storage.open_store(ITEMS + node, "archive")

    def _subscriptions(self, node: str):
        return self._storage.open_store(SUBSCRIPTIONS + node, "map")

    # ------------------------------------------------------------------ nodes

    async def get_node(self, name: str) -> Node | None:
        data = await self._nodes.get(self.owner, name)
        return None if data is None else Node.from_json(name, data, self._defaults)

    async def nodes(self) -> list[Node]:
        """Every node of the service, sorted by name."""
        records = await self._nodes.items(self.owner)
        return [Node.from_json(name, records[name], self._defaults) for name in sorted(records)]

    async def count_nodes(self) -> int:
        return len(await self._nodes.keys(self.owner))

    async def create_node(self, node: Node) -> None:
        """Store a new node, with nothing left over from an earlier node of its name."""
        await self._items(node.name).clear(self.owner)
        await self._subscriptions(node.name).clear(self.owner)
        await self.put_node(node)

    async def put_node(self, node: Node) -> None:
        await self._nodes.set(self.owner, node.name, node.to_json())

    async def delete_node(self, name: str) -> None:
        await self._nodes.delete(self.owner, name)
        await self._items(name).clear(self.owner)
        await self._subscriptions(name).clear(self.owner)

    # ------------------------------------------------------------------ items

    async def add_item(self, node: str, item: Item, keep: int) -> None:
        """Store ``item`` (replacing one of its id) and drop all but the newest ``keep``."""
        items = self._items(node)
        await items.append(self.owner, ArchiveEntry(item.stamp, item.publisher, item.payload,
                                                    item.id))
        await items.trim(self.owner, keep)

    async def trim(self, node: str, keep: int) -> int:
        return await self._items(node).trim(self.owner, keep)

    async def get_item(self, node: str, item_id: str) -> Item | None:
        entry = await self._items(node).get(self.owner, item_id)
        return None if entry is None else _item(entry)

    async def query_items(self, node: str, query: ArchiveQuery) -> tuple[list[Item], ArchivePage]:
        """The items ``query`` selects, oldest first, with the page they came in."""
        page = await self._items(node).query(self.owner, query)
        return [_item(entry) for entry in page.entries], page

    async def count_items(self, node: str) -> int:
        return await self._items(node).count(self.owner)

    async def remove_items(self, node: str, item_ids: tuple[str, ...]) -> int:
        return await self._items(node).remove(self.owner, item_ids)

    async def purge(self, node: str) -> int:
        return await self._items(node).clear(self.owner)

    # ------------------------------------------------------------------ subscriptions

    async def subscriptions(self, node: str) -> list[Subscription]:
        records = await self._subscriptions(node).items(self.owner)
        return [Subscription.from_json(node, jid, records[jid]) for jid in sorted(records)]

    async def get_subscription(self, node: str, jid: str) -> Subscription | None:
        data = await self._subscriptions(node).get(self.owner, jid)
        return None if data is None else Subscription.from_json(node, jid, data)

    async def put_subscription(self, subscription: Subscription) -> None:
        await self._subscriptions(subscription.node).set(self.owner, subscription.jid,
                                                         subscription.to_json())

    async def remove_subscription(self, node: str, jid: str) -> bool:
        return await self._subscriptions(node).delete(self.owner, jid)


def _item(entry: ArchiveEntry) -> Item:
    return Item(entry.id, entry.with_jid, entry.payload, entry.stamp)
