# -*- test-case-name: tests.unit.test_pep_account -*-
"""The pep plugin's offer to other plugins (``IPep``): work on an account's PEP nodes on its
behalf, as if its own client had sent the IQ: same checks, same publish-options, same
notifications. Nothing done here is told as ``events.PEP_CHANGED`` (see
xmppd.pep.changes), which is what keeps conversions between nodes free of loops."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import ns
from xmppd.forms import Form, make_field
from xmppd.interfaces import IPep
from xmppd.jid import JID
from xmppd.pep.notify import Notifier
from xmppd.pubsub import PubSub
from xmppd.storage.records import ArchiveQuery
from xmppd.xml.stored import stanza_from_text


def publish_options(options: Mapping[str, str]) -> Form:
    """``{"access_model": "whitelist"}`` as the ``<publish-options/>`` form a client sends."""
    fields = [make_field(f"pubsub#{name}", value) for name, value in options.items()]
    return Form.build("submit", fields, form_type=ns.PUBSUB_PUBLISH_OPTIONS)


@implementer(IPep)
class AccountPep:
    """IPep over the plugin's PubSub and Notifier."""

    def __init__(self, pubsub: PubSub, notifier: Notifier) -> None:
        self._pubsub = pubsub
        self._notifier = notifier

    def publish(self, account: JID, node: str, item_id: str | None,
                payload: domish.Element | None,
                options: Mapping[str, str] | None = None) -> defer.Deferred:
        return defer.ensureDeferred(self._publish(account.bare(), node, item_id, payload,
                                                  options))

    async def _publish(self, account: JID, node: str, item_id: str | None,
                       payload: domish.Element | None,
                       options: Mapping[str, str] | None) -> str | None:
        service = self._pubsub.pep(account)
        form = publish_options(options) if options else None
        published = await service.publish(account, node, item_id, payload, options=form)
        await self._notifier.deliver(service, published.notifications)
        return published.item_id

    def retract(self, account: JID, node: str, item_ids) -> defer.Deferred:
        return defer.ensureDeferred(self._retract(account.bare(), node, tuple(item_ids)))

    async def _retract(self, account: JID, node: str, item_ids: tuple[str, ...]) -> None:
        if not item_ids:
            return
        service = self._pubsub.pep(account)
        notifications = await service.retract(account, node, item_ids, notify=True)
        await self._notifier.deliver(service, notifications)

    def items(self, account: JID, node: str) -> defer.Deferred:
        return defer.ensureDeferred(self._items(account.bare(), node))

    async def _items(self, account: JID, node: str) -> list[tuple[str, domish.Element | None]]:
        store = self._pubsub.pep(account).store
        if await store.get_node(node) is None:
            return []
        # All of them, not a reply's page: a conversion that saw only the newest hundred
        # would write a list without the rest. A node holds at most max_items_per_node.
        items, _ = await store.query_items(node, ArchiveQuery(limit=None))
        return [(item.id, stanza_from_text(item.payload) if item.payload else None)
                for item in items]
