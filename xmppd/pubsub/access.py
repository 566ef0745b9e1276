# -*- test-case-name: tests.unit.test_pubsub_access -*-
"""Who may do what on a node: affiliation (XEP-0060 §4.1) crossed with the access model
(§4.5) and publish model, with the errors of §6.1.3 and §6.5.9 when the answer is no.

The roster questions of the 'presence' and 'roster' models are the wiring's to answer: it
passes ``relationship(owner, requester)``, a coroutine function of two bare JIDs giving the
subscription ('none', 'to', 'from', 'both') of ``requester`` in ``owner``'s roster and the
roster groups it is in. The owner asked is the PEP account, or on a generic service each
owner of the node (one of them granting access is enough).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable

from xmppd.jid import JID, parse_jid
from xmppd.pubsub.errors import PubSubError
from xmppd.pubsub.model import Node

Relationship = Callable[[JID, JID], Awaitable[tuple[str, Collection[str]]]]
CreatePolicy = Callable[[JID], bool]

READERS = frozenset(("owner", "publisher", "member"))  # read whatever the access model
PUBLISHERS = frozenset(("owner", "publisher"))
PRESENCE_SHARED = frozenset(("from", "both"))  # RFC 6121: the contact gets our presence


async def no_relationship(owner: JID, requester: JID) -> tuple[str, Collection[str]]:
    """For services without rosters: nobody shares presence or roster groups with owners."""
    return "none", ()


class Access:
    """The decisions of one service. ``account`` is the PEP account, owner of every node;
    None for a generic service, whose owners are those affiliated as such."""

    def __init__(self, relationship: Relationship, account: JID | None = None) -> None:
        self._relationship = relationship
        self._account = account

    def affiliation(self, node: Node, requester: JID) -> str:
        bare = requester.bare()
        if bare == self._account:
            return "owner"
        return node.affiliations.get(bare.userhost(), "none")

    def owners(self, node: Node) -> list[JID]:
        """Whose roster the 'presence' and 'roster' models consult."""
        if self._account is not None:
            return [self._account]
        return [parse_jid(jid) for jid, affiliation in node.affiliations.items()
                if affiliation == "owner"]

    async def check_read(self, node: Node, requester: JID) -> str:
        """The requester's affiliation if it may subscribe and retrieve items (XEP-0060
        §6.1.3, §6.5.9); else the error the XEP gives for the access model."""
        affiliation = self.affiliation(node, requester)
        if affiliation == "outcast":
            raise PubSubError("forbidden", text="you are banned from this node")
        if affiliation in READERS:
            return affiliation
        config = node.config
        model = config.access_model
        if model == "open":
            return affiliation
        if model == "whitelist":
            raise PubSubError("not-allowed", "closed-node", "the node has a whitelist")
        for owner in self.owners(node):
            subscription, groups = await self._relationship(owner, requester.bare())
            if model == "presence" and subscription in PRESENCE_SHARED:
                return affiliation
            if model == "roster" and set(groups) & set(config.roster_groups_allowed):
                return affiliation
        if model == "presence":
            raise PubSubError("not-authorized", "presence-subscription-required")
        raise PubSubError("not-authorized", "not-in-roster-group")

    async def may_read(self, node: Node, requester: JID) -> bool:
        try:
            await self.check_read(node, requester)
        except PubSubError:
            return False
        return True

    def check_owner(self, node: Node, requester: JID) -> None:
        """Configure, delete, manage affiliations and subscriptions: owners only (§8)."""
        if self.affiliation(node, requester) != "owner":
            raise PubSubError("forbidden", text="only an owner of the node may do that")

    def check_publish(self, node: Node, requester: JID, subscribed: bool) -> None:
        """Publish (XEP-0060 §7.1.3.1): publishers always, others as the publish model says;
        never an outcast."""
        affiliation = self.affiliation(node, requester)
        model = node.config.publish_model
        if affiliation in PUBLISHERS or (affiliation != "outcast" and (
                model == "open" or (model == "subscribers" and subscribed))):
            return
        raise PubSubError("forbidden", text="you may not publish to this node")


# ------------------------------------------------------------------ who may create nodes


def anyone(requester: JID) -> bool:
    return True


def local_users(domains: Iterable[str]) -> CreatePolicy:
    """Accounts of our own domains may create nodes; nobody else."""
    hosts = frozenset(domains)
    return lambda requester: requester.user is not None and requester.host in hosts


def admins(jids: Iterable[JID]) -> CreatePolicy:
    """Only these accounts may create nodes."""
    allowed = frozenset(jid.bare() for jid in jids)
    return lambda requester: requester.bare() in allowed
