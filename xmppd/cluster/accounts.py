# -*- test-case-name: tests.unit.test_cluster_relays -*-
"""Account deletion across the cluster: every node ends the account's sessions.

Whichever node deletes an account (XEP-0077 cancel, ``xmppdctl deluser``, the admin ad-hoc
command: all of them go through xmppd.admin.api.AdminAPI.delete_user) ends the sessions it
holds and emits ``events.USER_DELETED``; that goes out as news (xmppd.cluster.broadcast) and
every other node ends its own sessions of the account the same way (``<not-authorized/>``,
"account deleted") and then emits ``events.USER_DELETED`` on its own bus, so that its plugins
drop what they keep in memory of the account (a cached roster, vCard, block list), as they
do on the deleting node. The deleting node's ``USER_DELETING`` (subscriptions cancelled,
the archive's pending writes dropped) runs there only: the data is shared.

The news is sent again until every node with sessions heard it (xmppd.cluster.insist), so
a node cut from Redis at that moment ends its sessions of the account once Redis is back.
"""

from __future__ import annotations

from collections.abc import Callable

from xmppd import events
from xmppd.admin.api import end_deleted_sessions
from xmppd.cluster.broadcast import Broadcast
from xmppd.cluster.insist import Insistent
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger

log = get_logger(__name__)

TOPIC = "user-deleted"


def decode(text: str) -> JID:
    """The account (a bare JID with a user part) the news names; ValueError if not one."""
    try:
        account = parse_jid(text)
    except InvalidJID as error:
        raise ValueError(f"bad account: {error}") from None
    if account.resource is not None or not account.user:
        raise ValueError(f"not an account: {text!r}")
    return account


def relay_deletions(bus, broadcast: Broadcast, sessions,
                    receivers: Callable[[], int] = lambda: 0,
                    connected: Callable[[], bool] = lambda: True, reactor=None,
                    interval: float = 5.0) -> list[Callable[[], None]]:
    """Wire the server's event ``bus`` and its ``sessions`` (``resources(bare)``) to the other
    nodes; returns the undo functions. ``receivers``, ``connected``, ``reactor`` and
    ``interval``: as xmppd.cluster.insist.Insistent's (no ``reactor``: sent once)."""
    heard: set[str] = set()  # deletions this node is replaying: not news again

    def arrived(node: str, text: str):
        try:
            account = decode(text)
        except ValueError as error:
            log.warn("ignored a malformed account deletion from node {node}: {error}",
                     node=node, error=str(error))
            return None
        closed = end_deleted_sessions(sessions.resources(account))
        log.info("account {jid} deleted on node {node}: {closed} sessions ended here",
                 jid=account.full(), node=node, closed=closed)
        heard.add(account.userhost())
        try:  # every listener is called before emit returns
            return bus.emit(events.USER_DELETED, account)
        finally:
            heard.discard(account.userhost())

    news = Insistent(broadcast, TOPIC, arrived, receivers, connected, reactor, interval)

    def deleted(account: JID) -> None:
        if account.userhost() not in heard:
            news.send(account.userhost(), account.userhost())

    return [bus.on(events.USER_DELETED, deleted), news.start()]
