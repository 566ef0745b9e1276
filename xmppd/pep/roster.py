# -*- test-case-name: tests.unit.test_pep_plugin -*-
"""The roster questions of the 'presence' and 'roster' access models (xmppd.pubsub.access),
answered by the roster plugin's ``IRoster``: from memory while the owner is online."""

from __future__ import annotations

from collections.abc import Callable, Collection, Container

from xmppd.interfaces import IRoster
from xmppd.jid import JID
from xmppd.pubsub.access import Relationship


def roster_relationship(roster: Callable[[], IRoster | None],
                        local_domains: Container[str]) -> Relationship:
    """A ``relationship(owner, requester)`` for ``xmppd.pubsub.PubSub``; an owner that is
    not a local account (a remote owner of a node on our pubsub service) has no roster
    here, so it shares nothing."""

    async def relationship(owner: JID, requester: JID) -> tuple[str, Collection[str]]:
        provider = roster()
        if provider is None or owner.host not in local_domains or owner.user is None:
            return "none", ()
        contact = requester.bare().userhost()
        for item in await provider.items(owner.bare()):
            if item.contact == contact:
                return item.subscription, item.groups
        return "none", ()

    return relationship
