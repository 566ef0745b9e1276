# -*- test-case-name: tests.unit.test_cluster_resumption -*-
"""XEP-0198 resumption of a session that hibernates on another node of the cluster.

A client whose connection dropped reconnects wherever the load balancer sends it. The node
that gets its ``<resume previd h/>`` and holds no such session asks the others, as news on
the cluster's broadcast channel (``sm-resume NODE\\n{"ask", "previd", "account"}``: one
PUBLISH, whatever the number of nodes, and the SM-ID stays the opaque token it was, also
after the session has moved more than once). Each other node answers on the asking node's
own channel (``sm-handed\\n{"ask", "state"}``): the node that holds a resumable session of
that id and account hands it over (xmppd.sm.manager ``hand_over``: its state, and the session
forgotten there, no unavailable presence, no offline storage) and the others say
``"state": null``. The asking node adopts the session (hibernated, its registry entry
written: the cluster routes to it from now on) and resumes it on the waiting stream as a
local resumption.

Failures, and why nothing is lost or doubled:

- no node has it (unknown, expired, another account's): every node said null, or the wait
  (``ANSWER_TIMEOUT``) ended: ``<failed><item-not-found/></failed>``, as on one node;
- the holder died: nobody answers for it; its session is gone with it, and its inbox is
  rescued as for any dead node (xmppd.cluster.rescue);
- the answer came too late (the client was told ``<failed/>``, or left): the session is
  adopted all the same and hibernates here, resumable here, and its timeout ends it as
  anywhere (unacknowledged messages to offline storage);
- the asking node is not listening when the holder answers (PUBLISH reached nobody): the
  holder adopts the session back, as it was;
- two resumes at once: the holder hands the session to the first asker only (it is gone
  from it then); the second hears null from everyone, or, on the same node, takes it over
  from the first stream as a local resumption does (``<conflict/>`` there).

Stanzas for the session that reach the old node after the hand-over and before the
registry says where it went are delivered there as for a session that ended: to the
account's other resources or offline storage (xmppd.cluster.delivery), never dropped.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable

from twisted.internet import defer
from zope.interface import implementer

from xmppd.cluster.broadcast import Broadcast
from xmppd.cluster.directory import stanza_channel
from xmppd.cluster.redis import log_failure
from xmppd.interfaces import IRemoteResumption, IResumableSessions
from xmppd.jid import JID, InvalidJID, parse_jid
from xmppd.logs import get_logger

log = get_logger(__name__)

TOPIC = "sm-resume"  # on the broadcast channel: a node asks who holds a session
ANSWER = "sm-handed"  # on the asking node's channel: "sm-handed\nJSON"
ANSWER_TIMEOUT = 5.0  # seconds a <resume/> waits for the other nodes at most


class Ask:
    """One question to the cluster: how many answers are still due, and its Deferred."""

    __slots__ = ("due", "result", "timer")

    def __init__(self) -> None:
        self.result: defer.Deferred = defer.Deferred()
        self.due: int | None = None  # unknown until the PUBLISH says how many heard it
        self.timer = None


@implementer(IRemoteResumption)
class RemoteResumption:
    """``publish(channel, text)`` is the node's Redis PUBLISH (a Deferred of the number of
    subscribers reached); ``sessions()`` the smacks plugin's IResumableSessions or None."""

    def __init__(self, node: str, broadcast: Broadcast, publish: Callable,
                 sessions: Callable[[], IResumableSessions | None], reactor) -> None:
        self.node = node
        self.broadcast = broadcast
        self.publish = publish
        self.sessions = sessions
        self.reactor = reactor
        self.asks: dict[str, Ask] = {}

    def start(self) -> Callable[[], None]:
        """Answer the other nodes' questions; returns the undo."""
        return self.broadcast.on(TOPIC, self.asked)

    # -- asking

    def fetch(self, previd: str, account: JID) -> defer.Deferred:
        """A Deferred of True once the session ``previd`` of ``account`` is adopted here,
        False when no other node hands it over within ``ANSWER_TIMEOUT``."""
        ask_id = secrets.token_hex(8)
        ask = self.asks[ask_id] = Ask()
        ask.timer = self.reactor.callLater(ANSWER_TIMEOUT, self._done, ask_id, False)
        question = json.dumps({"ask": ask_id, "previd": previd, "account": account.full()})
        d = self.broadcast.send(TOPIC, question)

        def heard(listeners) -> None:
            # every subscriber of the channel heard it, this node too; a failure is None
            others = (listeners if isinstance(listeners, int) else 1) - 1
            if ask_id not in self.asks:
                return
            ask.due = others if ask.due is None else ask.due + others
            if ask.due <= 0:
                self._done(ask_id, False)

        d.addCallback(heard)
        return ask.result

    def answered(self, text: str) -> None:
        """A node's answer (``sm-handed``): a session it handed over is adopted here even if
        nobody waits for it any more (it must live somewhere: it hibernates here)."""
        try:
            answer = json.loads(text)
            ask_id, state = str(answer["ask"]), answer["state"]
        except (ValueError, KeyError, TypeError):
            log.warn("ignored a malformed resumption answer: {text!r}", text=text[:200])
            return
        if state is not None:
            self._done(ask_id, self._adopt(state))
            return
        ask = self.asks.get(ask_id)
        if ask is None:
            return
        ask.due = (ask.due if ask.due is not None else 0) - 1
        if ask.due == 0:
            self._done(ask_id, False)

    def _done(self, ask_id: str, adopted: bool) -> None:
        ask = self.asks.pop(ask_id, None)
        if ask is None:
            return
        if ask.timer is not None and ask.timer.active():
            ask.timer.cancel()
        ask.result.callback(adopted)

    def _adopt(self, state: dict) -> bool:
        sessions = self.sessions()
        if sessions is None:
            log.error("a session handed over to this node is lost: no smacks plugin here")
            return False
        try:
            return sessions.adopt(state) is not None
        except ValueError as error:
            log.error("ignored an unreadable session handed over: {error}", error=str(error))
            return False

    # -- answering

    def asked(self, node: str, text: str) -> None:
        """Another node asks for a session: handed over if it is here and of that account,
        and null otherwise (the same answer for unknown and not yours)."""
        try:
            question = json.loads(text)
            ask_id, previd = str(question["ask"]), str(question["previd"])
            account = parse_jid(str(question["account"]))
        except (ValueError, KeyError, TypeError, InvalidJID):
            log.warn("ignored a malformed resumption question from {node}", node=node)
            return
        sessions = self.sessions()
        state = sessions.hand_over(previd, account) if sessions is not None else None
        d = self.publish(stanza_channel(node), f"{ANSWER}\n"
                                               f"{json.dumps({'ask': ask_id, 'state': state})}")
        if state is None:
            d.addErrback(log_failure, f"a resumption answer to {node} not sent")
            return

        def sent(listeners) -> None:
            if not listeners:
                self._taken_back(state, node)

        def failed(failure) -> None:
            log_failure(failure, f"a session handed over to {node} not sent")
            self._taken_back(state, node)

        d.addCallbacks(sent, failed)

    def _taken_back(self, state: dict, node: str) -> None:
        """The asking node did not hear the hand-over: the session stays here, as it was."""
        log.warn("cluster node {node} did not take session {jid}: kept here", node=node,
                 jid=state.get("jid"))
        self._adopt(state)

    def takes(self, channel: str, message: str) -> bool:
        """Whether a message on this node's channel is an answer, and if so handle it."""
        kind, _, text = message.partition("\n")
        if channel != stanza_channel(self.node) or kind != ANSWER:
            return False
        self.answered(text)
        return True
