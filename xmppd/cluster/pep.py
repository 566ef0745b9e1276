# -*- test-case-name: tests.unit.test_cluster_relays -*-
"""PEP notifications across the cluster (XEP-0163 §4.3).

Who wants an account's notifications is learned from presence (xmppd.pep.interest), and
each node sees only the presence that passes through it: that of its own sessions (a
contact's broadcast, the account's own resources) and of the s2s links it holds. So a node
that made a notification delivers it to what it knows (the pep plugin tells it as
``events.PEP_NOTIFIED``), and sends it as news (xmppd.cluster.broadcast) with the node as it
was (its access model decides who may read) and the JIDs already reached; every other node
emits ``events.PEP_NOTIFIED_ELSEWHERE``, and its pep plugin sends copies to the JIDs it knows
want the node and may have it, but not to those. The last items a newly interested JID gets
need nothing of this: the node that saw its presence reads them from the shared database.
A notification that some node missed (a Redis outage) is sent again until heard
(xmppd.cluster.insist); a node drops a copy it already had.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from xmppd import events
from xmppd.cluster.broadcast import Broadcast
from xmppd.cluster.insist import Insistent
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.pubsub import Notification
from xmppd.pubsub.config import PEP_DEFAULTS
from xmppd.pubsub.model import Node
from xmppd.xml.stored import stanza_from_text, stanza_to_text

log = get_logger(__name__)

TOPIC = "pep"


def encode(account: JID, notification: Notification, sent: frozenset[str]) -> str:
    """One JSON object: the account, the notification's kind, node and message, the JIDs
    sent to."""
    node = notification.node
    return json.dumps({"account": account.userhost(), "kind": notification.kind,
                       "node": node.name, "node_json": node.to_json(), "sent": sorted(sent),
                       "message": stanza_to_text(notification.message)})


def decode(text: str) -> tuple[JID, Notification, frozenset[str]]:
    """``encode``'s account, notification and JIDs; ValueError if it is not that."""
    try:
        data = json.loads(text)
        account = parse_jid(data["account"])
        node = Node.from_json(data["node"], data["node_json"], PEP_DEFAULTS)
        message = stanza_from_text(data["message"])
        sent = frozenset(data["sent"])
        kind = data["kind"]
    except (ValueError, KeyError, TypeError, AttributeError, InvalidJID) as error:
        raise ValueError(f"not a PEP notification ({type(error).__name__}: {error})") from None
    if account.resource is not None or not account.user or message is None \
            or message.name != "message" or not all(isinstance(jid, str) for jid in sent):
        raise ValueError("not an account's PEP notification")
    return account, Notification(kind, node, message), sent


def relay_pep(bus, broadcast: Broadcast, receivers: Callable[[], int] = lambda: 0,
              connected: Callable[[], bool] = lambda: True, reactor=None,
              interval: float = 5.0) -> list[Callable[[], None]]:
    """Wire the server's event ``bus`` to the other nodes; returns the undo functions.

    Each notification is news of its account's node (xmppd.cluster.insist): sent again at
    every ``interval`` until ``receivers()`` subscriptions (those of the nodes with
    sessions when it was published) heard it, so one published during a Redis outage
    reaches the other nodes once Redis is back; only the last one of each node is. (No
    ``reactor``: sent once, as in tests of the codec.)"""
    def arrived(node: str, text: str):
        try:
            args = decode(text)
        except ValueError as error:
            log.warn("ignored a malformed PEP notification from node {node}: {error}",
                     node=node, error=str(error))
            return None
        return bus.emit(events.PEP_NOTIFIED_ELSEWHERE, *args)

    news = Insistent(broadcast, TOPIC, arrived, receivers, connected, reactor, interval)

    def notified(account: JID, notification: Notification, sent: frozenset[str]) -> None:
        news.send((account.userhost(), notification.node.name),
                  encode(account, notification, sent))

    return [bus.on(events.PEP_NOTIFIED, notified), news.start()]
