# -*- test-case-name: tests.unit.test_pep_plugin -*-
"""Who gets a PEP notification (XEP-0163 §4.3), and the last items a JID gets when it
starts wanting a node (§4.3.2).

A notification goes, from the account's bare JID (§4.3.1 rule 1), to:

- the JIDs subscribed to the node (XEP-0060) that may still read it (the core's list);
- the account's own available resources whose caps want the node;
- the resources of contacts that share presence with the account (a 'from' or 'both'
  subscription) whose caps want the node and whom the access model lets read it.

For contacts online with known caps this reads nothing from storage: the wanting JIDs are
in memory (xmppd.pep.interest), the roster plugin serves an online owner's roster from memory.

In a cluster each node knows only the JIDs whose presence passed through it (its own
sessions, the s2s links it holds): ``announce`` tells what was sent here (the cluster
carries it to the other nodes), and ``deliver_elsewhere`` is the same delivery for a
notification another node made, to the JIDs known here that it did not reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.words.xish import domish

from xmppd.im.presence_stanzas import addressed_copy
from xmppd.interfaces import IRoster
from xmppd.jid import JID
from xmppd.pep.interest import Interests
from xmppd.pubsub import Notification, PubSubService


class Notifier:
    """Addresses and sends the notifications of PEP services."""

    def __init__(self, send: Callable[[domish.Element], object], interests: Interests,
                 roster: Callable[[], IRoster | None],
                 announce: Callable[[JID, Notification, frozenset[str]], object] | None = None,
                 ) -> None:
        self._send = send
        self._interests = interests
        self._roster = roster
        self._announce = announce  # announce(account, notification, JID strings sent to)

    async def deliver(self, service: PubSubService, notifications: Iterable[Notification],
                      ) -> None:
        account = service.jid
        for notification in notifications:
            recipients = {jid.full(): jid for jid in notification.subscribers}
            wanting = self._interests.wanting(account, notification.node.name)
            for jid in await self.eligible(service, notification, wanting):
                recipients.setdefault(jid.full(), jid)
            send_copies(self._send, account, notification.message, recipients.values())
            if self._announce is not None:
                self._announce(account, notification, frozenset(recipients))

    async def deliver_elsewhere(self, service: PubSubService, notification: Notification,
                                sent: frozenset[str]) -> None:
        """Another node's notification: to those here that want it and may have it, but
        not to the JIDs (``sent``) it already reached."""
        wanting = [jid for jid in self._interests.wanting(service.jid, notification.node.name)
                   if jid.full() not in sent]
        if wanting:
            send_copies(self._send, service.jid, notification.message,
                        await self.eligible(service, notification, wanting))

    async def eligible(self, service: PubSubService, notification: Notification,
                       jids: list[JID]) -> list[JID]:
        """Those of ``jids`` (wanting the node) that get its events: the account's own, and
        contacts sharing presence with it that the node's access model lets read."""
        account = service.jid
        own = [jid for jid in jids if jid.bare() == account]
        others = [jid for jid in jids if jid.bare() != account]
        if others:
            sharing = await self._presence_subscribers(account)
            others = [jid for jid in others if jid.bare() in sharing]
            others = await service.audience(notification.node, others)
        return own + others

    async def _presence_subscribers(self, account: JID) -> frozenset[JID]:
        roster = self._roster()
        if roster is None:
            return frozenset()
        return frozenset((await roster.contacts(account)).subscribers)

    async def send_last_items(self, service: PubSubService, jid: JID,
                              nodes: Iterable[str]) -> None:
        """The last item of each of ``nodes`` that sends it on presence, to ``jid`` if it
        may have it: for a JID that has just come to want these nodes."""
        names = set(nodes)
        if not names:
            return
        existing = [node.name for node in await service.store.nodes() if node.name in names]
        for name in existing:
            last = await service.last_published(name)
            if last is None or not await self.eligible(service, last, [jid]):
                continue
            send_copies(self._send, service.jid, last.message, (jid,))


def send_copies(send: Callable[[domish.Element], object], sender: JID,
                message: domish.Element, recipients: Iterable[JID]) -> None:
    """One addressed copy of a notification per recipient, sharing its children."""
    sender_text = sender.full()
    for jid in recipients:
        send(addressed_copy(message, sender_text, jid.full()))
