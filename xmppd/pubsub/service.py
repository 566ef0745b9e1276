# -*- test-case-name: tests.unit.test_pubsub_service -*-
"""A pubsub service (XEP-0060): the subscriber and publisher use cases (§6, §7) beside the
owner's (``owner.py``), as coroutines taking the requester's JID and parsed arguments.

Each returns what the reply needs and the notifications to send; it sends nothing itself,
so the same semantics serve a PEP service at every account (XEP-0163) and a pubsub domain.
Errors are ``PubSubError``s (``StanzaError``s) for the dispatcher to answer with.

Payloads are kept as the text ``stanza_to_text`` makes of them: the payload a publish
carries is serialized once (to store it and measure it); a stored payload goes out as that
text (``domish.SerializedXML``), never parsed again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.forms import Form
from xmppd.jid import JID
from xmppd.pubsub.config import (
    NodeConfig,
    check_limits,
    precondition_not_met,
    read_preconditions,
    unmet_preconditions,
)
from xmppd.pubsub.core import check_node_name
from xmppd.pubsub.errors import PubSubError, shown
from xmppd.pubsub.events import Notification, item_element, items_event, retract_event
from xmppd.pubsub.model import MAX_ITEM_ID, Item, Node, Subscription
from xmppd.pubsub.owner import OwnerOperations, new_subid
from xmppd.rsm import ResultSetRequest
from xmppd.storage import ArchiveEntryNotFound
from xmppd.storage.records import ArchivePage, ArchiveQuery, new_entry_id
from xmppd.xml.stored import stanza_to_text

_CONTENT_NAMESPACES = frozenset((ns.CLIENT, ns.SERVER))


@dataclass(frozen=True)
class Published:
    """A publication's outcome: the item id (made up when the publisher gave none, which
    the reply must then carry, §7.1.2) and the notifications."""

    node: str
    item_id: str | None
    notifications: tuple[Notification, ...]


@dataclass(frozen=True)
class ItemsPage:
    """Items retrieved, oldest first. ``page`` is set when the client paged with RSM or the
    reply holds fewer items than asked for: the reply then carries an RSM ``<set/>``."""

    node: str
    items: tuple[Item, ...]
    page: ArchivePage | None = None

    def item_elements(self) -> list[domish.Element]:
        return [stored_item(item) for item in self.items]


@dataclass(frozen=True)
class Subscribed:
    subscription: Subscription
    notifications: tuple[Notification, ...]


def stored_item(item: Item, with_payload: bool = True) -> domish.Element:
    """An ``<item/>`` as stored: its payload text goes out as it is."""
    payload = domish.SerializedXML(item.payload) if item.payload and with_payload else None
    return item_element(item.id, payload)


class PubSubService(OwnerOperations):
    """One pubsub service; make one with ``xmppd.pubsub.PubSub.pep`` or ``.service``."""

    # ------------------------------------------------------------------ publish (§7.1)

    async def publish(self, requester: JID, name: str, item_id: str | None = None,
                      payload: domish.Element | None = None, *, with_item: bool = True,
                      options: Form | None = None) -> Published:
        """Publish an item (``with_item`` False: a ``<publish/>`` without ``<item/>``).

        A missing node is made (auto-create, XEP-0163 §3) with ``options`` as its config;
        an existing one must meet them (§7.1.5), else ``<conflict/>`` +
        ``<precondition-not-met/>`` and nothing is stored.
        """
        check_node_name(name)
        if item_id is not None and not 0 < len(item_id) <= MAX_ITEM_ID:
            raise PubSubError("bad-request", text=f"item ids are 1 to {MAX_ITEM_ID} characters")
        text = self._payload_text(payload)
        preconditions = read_preconditions(options) if options is not None else {}
        return await self.serial(name, self._publish, requester, name, item_id, payload, text,
                                 with_item, preconditions)

    def _payload_text(self, payload: domish.Element | None) -> str:
        if payload is None:
            return ""
        if payload.uri is None or payload.uri in _CONTENT_NAMESPACES:
            # Stored as text and sent inside <item/>, an element in the stream's namespace
            # would change namespace; XEP-0060 payloads are namespaced.
            raise PubSubError("bad-request", "invalid-payload", "the payload needs a namespace")
        text = stanza_to_text(payload)
        if len(text.encode("utf-8")) > self.limits.max_item_size:
            raise PubSubError("not-acceptable", "payload-too-big",
                              f"payloads are at most {self.limits.max_item_size} bytes here")
        return text

    async def _publish(self, requester: JID, name: str, item_id: str | None,
                       payload: domish.Element | None, text: str, with_item: bool,
                       preconditions: dict) -> Published:
        node = await self.store.get_node(name)
        if node is None:
            config = check_limits(dataclasses.replace(self.defaults, **preconditions),
                                  self.limits)
            node = await self.new_node(requester, name, config)
        else:
            unmet = unmet_preconditions(node.config, preconditions, self.limits)
            if unmet:
                raise precondition_not_met(unmet[0])
        subscribed = (node.config.publish_model == "subscribers"
                      and await self._subscribed(name, requester))
        self.access.check_publish(node, requester, subscribed)
        config = node.config
        _check_event_type(config, with_item, payload)
        if with_item and item_id is None and config.persist_items:
            item_id = new_entry_id()
        if config.persist_items:
            item = Item(item_id, requester.bare().full(), text, self.now())
            await self.store.add_item(name, item, config.kept_items(self.limits))
        notifications = ()
        if config.deliver_notifications:
            shown_payload = payload if config.deliver_payloads else None
            items = [item_element(item_id, shown_payload)] if with_item else []
            notifications = (await self.notification("items", node, items_event(name, items)),)
        return Published(name, item_id, notifications)

    async def _subscribed(self, name: str, requester: JID) -> bool:
        bare = requester.bare().full()
        return any(sub.bare == bare for sub in await self.store.subscriptions(name))

    # ------------------------------------------------------------------ retract (§7.2)

    async def retract(self, requester: JID, name: str, item_ids: tuple[str, ...],
                      notify: bool | None = None) -> tuple[Notification, ...]:
        """Delete items: owners and publishers any, others what they published. Subscribers
        are told when ``notify`` says so, or, when it is absent, when notify_retract does."""
        if not item_ids:
            raise PubSubError("bad-request", "item-required")
        return await self.serial(name, self._retract, requester, name, item_ids, notify)

    async def _retract(self, requester: JID, name: str, item_ids: tuple[str, ...],
                       notify: bool | None) -> tuple[Notification, ...]:
        node = await self.node(name)
        if not node.config.persist_items:
            raise PubSubError("feature-not-implemented", "unsupported",
                              "the node keeps no items", feature="persistent-items")
        privileged = self.access.affiliation(node, requester) in ("owner", "publisher")
        for item_id in item_ids:
            item = await self.store.get_item(name, item_id)
            if item is None:
                raise PubSubError("item-not-found", text=f"no item '{shown(item_id)}'")
            if not privileged and item.publisher != requester.bare().full():
                raise PubSubError("forbidden", text="you may not retract that item")
        await self.store.remove_items(name, item_ids)
        if notify is None:
            notify = node.config.notify_retract
        if not (notify and node.config.deliver_notifications):
            return ()
        return (await self.notification("retract", node, retract_event(name, item_ids)),)

    # ------------------------------------------------------------------ items (§6.5)

    async def items(self, requester: JID, name: str, *, item_ids: tuple[str, ...] = (),
                    max_items: int | None = None,
                    rsm: ResultSetRequest | None = None) -> ItemsPage:
        """Retrieve items: these ids (the ones that exist, §6.5.8), the newest
        ``max_items`` (§6.5.7), a page of an RSM request, or all, newest first cut at the
        page limit (then with a ``page`` saying so)."""
        node = await self.node(name)
        await self.access.check_read(node, requester)
        if item_ids:
            found = [await self.store.get_item(name, item_id)
                     for item_id in item_ids[: self.limits.max_page]]
            return ItemsPage(name, tuple(item for item in found if item is not None))
        items, page = await self._query(name, _query(max_items, rsm, self.limits.max_page))
        paged = rsm is not None or (max_items is None and not page.complete)
        return ItemsPage(name, tuple(items), page if paged else None)

    async def _query(self, name: str, query: ArchiveQuery) -> tuple[list[Item], ArchivePage]:
        try:
            return await self.store.query_items(name, query)
        except ArchiveEntryNotFound as missing:
            raise PubSubError("item-not-found", text="no such item in this result set") \
                from missing

    async def last_published(self, name: str) -> Notification | None:
        """The last item of a node that sends it on presence (XEP-0163 §4.3.2), as a
        notification for no one yet: the wiring filters the newly available resources with
        ``audience`` and addresses copies. None when there is nothing to send."""
        node = await self.store.get_node(name)
        if node is None or node.config.send_last_published_item != "on_sub_and_presence":
            return None
        return await self._last_item(node, ())

    async def _last_item(self, node: Node, recipients: tuple[JID, ...]) -> Notification | None:
        if not node.config.deliver_notifications:
            return None
        items, _ = await self.store.query_items(node.name, ArchiveQuery(last_page=True, limit=1))
        if not items:
            return None
        element = stored_item(items[0], node.config.deliver_payloads)
        return Notification("items", node, items_event(node.name, [element]), recipients)

    # ------------------------------------------------------------------ subscribe (§6.1)

    async def subscribe(self, requester: JID, name: str, jid: JID) -> Subscribed:
        """Subscribe ``jid`` (the requester's own, bare or full: §6.1.3.1) to a node; again
        is the same subscription. The last item follows when the node sends it on
        subscription (§6.1.7)."""
        return await self.serial(name, self._subscribe, requester, name, jid)

    async def _subscribe(self, requester: JID, name: str, jid: JID) -> Subscribed:
        node = await self.node(name)
        if jid.bare() != requester.bare():
            raise PubSubError("bad-request", "invalid-jid", "you may subscribe yourself only")
        await self.access.check_read(node, requester)
        subscription = await self.store.get_subscription(name, jid.full())
        if subscription is None:
            subscription = Subscription(name, jid.full(), new_subid())
            await self.store.put_subscription(subscription)
        notifications = ()
        if node.config.send_last_published_item != "never":
            last = await self._last_item(node, (jid,))
            notifications = (last,) if last is not None else ()
        return Subscribed(subscription, notifications)

    async def unsubscribe(self, requester: JID, name: str, jid: JID,
                          subid: str | None = None) -> None:
        """End a subscription of the requester's own (§6.2)."""
        await self.serial(name, self._unsubscribe, requester, name, jid, subid)

    async def _unsubscribe(self, requester: JID, name: str, jid: JID,
                           subid: str | None) -> None:
        node = await self.node(name)
        if jid.bare() != requester.bare() and self.access.affiliation(node, requester) != "owner":
            raise PubSubError("forbidden", text="you may unsubscribe yourself only")
        subscription = await self.store.get_subscription(name, jid.full())
        if subscription is None:
            raise PubSubError("unexpected-request", "not-subscribed")
        if subid is not None and subid != subscription.subid:
            raise PubSubError("not-acceptable", "invalid-subid")
        await self.store.remove_subscription(name, jid.full())

    # ------------------------------------------------------------ the entity's own (§5.6, §5.7)

    async def subscriptions(self, requester: JID, name: str | None = None) -> list[Subscription]:
        """The requester's subscriptions (any of its resources'), at one node or all."""
        bare = requester.bare().full()
        nodes = [await self.node(name)] if name is not None else await self.store.nodes()
        return [sub for node in nodes for sub in await self.store.subscriptions(node.name)
                if sub.bare == bare]

    async def affiliations(self, requester: JID,
                           name: str | None = None) -> list[tuple[str, str]]:
        """(node, affiliation) for each node where the requester has one."""
        nodes = [await self.node(name)] if name is not None else await self.store.nodes()
        found = ((node.name, self.access.affiliation(node, requester)) for node in nodes)
        return [(node, affiliation) for node, affiliation in found if affiliation != "none"]


def _check_event_type(config: NodeConfig, with_item: bool,
                      payload: domish.Element | None) -> None:
    """The item and payload rules of XEP-0060 §4.3 and §7.1.3.6."""
    if not with_item and (config.persist_items or config.deliver_payloads):
        raise PubSubError("bad-request", "item-required")
    if with_item and not config.persist_items and not config.deliver_payloads:
        raise PubSubError("bad-request", "item-forbidden")
    if with_item and config.deliver_payloads and payload is None:
        raise PubSubError("bad-request", "payload-required")


def _query(max_items: int | None, rsm: ResultSetRequest | None, limit: int) -> ArchiveQuery:
    """The archive query for an items request: RSM paging, else the newest ``max_items``,
    else the newest the page limit allows."""
    if rsm is not None:
        if rsm.index is not None:
            raise PubSubError("feature-not-implemented", text="RSM <index/> is not supported")
        if rsm.wants_last_page:
            return ArchiveQuery(last_page=True, limit=rsm.max)
        return ArchiveQuery(after=rsm.after, before=rsm.before, limit=rsm.max)
    count = limit if max_items is None else min(max_items, limit)
    return ArchiveQuery(last_page=True, limit=count)
