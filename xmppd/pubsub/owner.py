# -*- test-case-name: tests.unit.test_pubsub_owner -*-
"""The owner use cases of XEP-0060 §8: create, configure, delete and purge a node, and
manage its affiliations and subscriptions."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from xmppd.forms import Form
from xmppd.jid import JID
from xmppd.pubsub.config import apply_form, config_form
from xmppd.pubsub.core import ServiceCore, check_node_name
from xmppd.pubsub.errors import PubSubError, shown, unsupported
from xmppd.pubsub.events import (
    Notification,
    configuration_event,
    delete_event,
    purge_event,
)
from xmppd.pubsub.model import AFFILIATIONS, SUBSCRIPTION_STATES, Node, Subscription

SUBID_BYTES = 12


def new_subid() -> str:
    return secrets.token_urlsafe(SUBID_BYTES)


class OwnerOperations(ServiceCore):
    """XEP-0060 §8, on top of the service's core."""

    async def create(self, requester: JID, name: str | None,
                     form: Form | None = None) -> str:
        """Create a node (§8.1), configured by ``form`` if given; the node's name, made up
        for an instant node (§8.1.2) on a generic service. PEP nodes are named by their
        namespace, so a PEP service wants a name (``nodeid-required``)."""
        if name is None:
            if self.pep:
                raise PubSubError("not-acceptable", "nodeid-required")
            name = secrets.token_hex(16)
        config = self.defaults if form is None else apply_form(self.defaults, form, self.limits)
        await self.serial(check_node_name(name), self.new_node, requester, name, config)
        return name

    def default_config(self) -> Form:
        """The configuration a new node gets (§8.3)."""
        return config_form(self.defaults)

    async def get_config(self, requester: JID, name: str) -> Form:
        """The configure form with the node's values (§8.2.1)."""
        node = await self.node(name)
        self.access.check_owner(node, requester)
        return config_form(node.config)

    async def configure(self, requester: JID, name: str,
                        form: Form) -> tuple[Notification, ...]:
        """Apply a submitted configure form (§8.2.4); a cancelled one changes nothing."""
        return await self.serial(name, self._configure, requester, name, form)

    async def _configure(self, requester: JID, name: str,
                         form: Form) -> tuple[Notification, ...]:
        node = await self.node(name)
        self.access.check_owner(node, requester)
        if form.type == "cancel":
            return ()
        if form.type != "submit":
            raise PubSubError("bad-request", text=f"expected a submitted form, not a {form.type}")
        node = node.with_config(apply_form(node.config, form, self.limits))
        await self.store.put_node(node)
        await self.store.trim(name, node.config.kept_items(self.limits))
        if not (node.config.notify_config and node.config.deliver_notifications):
            return ()
        shown_form = config_form(node.config, "result") if node.config.deliver_payloads else None
        return (await self.notification("configuration", node,
                                        configuration_event(name, shown_form)),)

    async def delete(self, requester: JID, name: str,
                     redirect: str | None = None) -> tuple[Notification, ...]:
        """Delete a node with its items and subscriptions (§8.4); its subscribers hear of it
        when notify_delete is on."""
        return await self.serial(name, self._delete, requester, name, redirect)

    async def _delete(self, requester: JID, name: str,
                      redirect: str | None) -> tuple[Notification, ...]:
        node = await self.node(name)
        self.access.check_owner(node, requester)
        notifications = ()
        if node.config.notify_delete:
            notifications = (await self.notification("delete", node,
                                                     delete_event(name, redirect)),)
        await self.store.delete_node(name)
        return notifications

    async def purge(self, requester: JID, name: str) -> tuple[Notification, ...]:
        """Remove every item (§8.5): owners and publishers may."""
        return await self.serial(name, self._purge, requester, name)

    async def _purge(self, requester: JID, name: str) -> tuple[Notification, ...]:
        node = await self.node(name)
        if self.access.affiliation(node, requester) not in ("owner", "publisher"):
            raise PubSubError("forbidden", text="only owners and publishers may purge")
        if not node.config.persist_items:
            raise unsupported("persistent-items", "the node keeps no items")
        await self.store.purge(name)
        if not (node.config.notify_retract and node.config.deliver_notifications):
            return ()
        return (await self.notification("purge", node, purge_event(name)),)

    # ------------------------------------------------------------------ affiliations

    async def node_affiliations(self, requester: JID, name: str) -> dict[str, str]:
        """Every affiliation of the node, by bare JID (§8.9.1); a PEP account is listed as
        the owner it always is."""
        node = await self.node(name)
        self.access.check_owner(node, requester)
        return self._affiliations(node)

    def _affiliations(self, node: Node) -> dict[str, str]:
        affiliations = dict(node.affiliations)
        if self.pep:
            affiliations[self.jid.bare().full()] = "owner"
        return affiliations

    async def set_affiliations(self, requester: JID, name: str,
                               changes: Mapping[JID, str]) -> None:
        """Change affiliations (§8.9.2), all or none. Outcasts lose their subscriptions
        (§4.1: an outcast may not subscribe). A change that leaves the node without an
        owner, or touches a PEP account's own ownership, is ``not-acceptable``."""
        await self.serial(name, self._set_affiliations, requester, name, changes)

    async def _set_affiliations(self, requester: JID, name: str,
                                changes: Mapping[JID, str]) -> None:
        node = await self.node(name)
        self.access.check_owner(node, requester)
        for jid, affiliation in changes.items():
            if affiliation not in AFFILIATIONS:
                raise PubSubError("bad-request", text=f"no affiliation '{shown(affiliation)}'")
            if self.pep and jid.bare() == self.jid.bare():
                raise PubSubError("not-acceptable", text="the account owns its nodes")
        node = node.with_affiliations({jid.bare().full(): affiliation
                                       for jid, affiliation in changes.items()})
        if not self.pep and "owner" not in node.affiliations.values():
            raise PubSubError("not-acceptable", text="a node needs an owner")
        await self.store.put_node(node)
        banned = {jid.bare().full() for jid, affiliation in changes.items()
                  if affiliation == "outcast"}
        if banned:
            for subscription in await self.store.subscriptions(name):
                if subscription.bare in banned:
                    await self.store.remove_subscription(name, subscription.jid)

    # ------------------------------------------------------------------ subscriptions

    async def node_subscriptions(self, requester: JID, name: str) -> list[Subscription]:
        node = await self.node(name)
        self.access.check_owner(node, requester)
        return await self.store.subscriptions(name)

    async def set_subscriptions(self, requester: JID, name: str,
                                changes: Mapping[JID, str]) -> None:
        """Add ('subscribed') or remove ('none') subscriptions (§8.8.2)."""
        await self.serial(name, self._set_subscriptions, requester, name, changes)

    async def _set_subscriptions(self, requester: JID, name: str,
                                 changes: Mapping[JID, str]) -> None:
        node = await self.node(name)
        self.access.check_owner(node, requester)
        for state in changes.values():
            if state not in SUBSCRIPTION_STATES:
                raise PubSubError("bad-request", text=f"no subscription state '{shown(state)}'")
        for jid, state in changes.items():
            if state == "none":
                await self.store.remove_subscription(name, jid.full())
            elif await self.store.get_subscription(name, jid.full()) is None:
                await self.store.put_subscription(Subscription(name, jid.full(), new_subid()))

