# -*- test-case-name: tests.unit.test_iq_tracker -*-
"""IQ requests the server sends, each waiting for its answer (RFC 6120 §8.2.3).

As Twisted's ``jabber.xmlstream.IQ.send``: a Deferred kept under the request's id, a
``callLater`` timeout that forgets it and errbacks, the timer cancelled when the answer
comes. An answer counts only when it comes from the entity asked and is addressed to the
one that asked: anyone else's result with a guessed id is not the answer (the ids are
random too). PEP asking a client's disco#info for its caps, MUC self-pings and s2s checks
wait this way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.stanza import Stanza, parse_address, stanza_error

log = get_logger(__name__)

DEFAULT_TIMEOUT = 30.0


class IQTimeout(defer.TimeoutError):
    """No answer came in time; the request is forgotten (a late answer is dropped)."""


@dataclass(slots=True)
class _Pending:
    deferred: defer.Deferred
    responder: JID  # the request's 'to': only it may answer
    requester: JID  # the request's 'from': the answer must be addressed to it
    timer: object  # IDelayedCall


class IQTracker:
    """Sends IQ requests for the server and matches the answers the router hands back."""

    def __init__(self, send: Callable[[domish.Element], object], reactor,
                 default_timeout: float = DEFAULT_TIMEOUT) -> None:
        self._send = send
        self._reactor = reactor
        self.default_timeout = default_timeout
        self._pending: dict[str, _Pending] = {}

    def request(self, element: domish.Element, timeout: float | None = None) -> defer.Deferred:
        """Send an IQ get/set with 'from' and 'to' set; fires with the result Stanza,
        errbacks with the StanzaError of an error answer, or IQTimeout. Cancelling the
        Deferred forgets the request. A missing id is made; a given one must be unused."""
        if element.name != "iq" or element.getAttribute("type") not in ("get", "set"):
            raise ValueError("only IQ get and set requests wait for an answer")
        responder, requester = parse_address(element, "to"), parse_address(element, "from")
        if responder is None or requester is None:
            raise ValueError("a request from the server needs a 'from' and a 'to'")
        id = element.getAttribute("id")
        if id is None:
            id = element["id"] = "xmppd-" + secrets.token_hex(8)
        elif id in self._pending:
            raise ValueError(f"an IQ with id {id!r} is already waiting for its answer")
        d = defer.Deferred(lambda _: self._forget(id))
        delay = self.default_timeout if timeout is None else timeout
        timer = self._reactor.callLater(delay, self._timed_out, id, delay)
        self._pending[id] = _Pending(d, responder, requester, timer)
        self._send(element)  # registered first: a bounce may come back before this returns
        return d

    def answer(self, stanza: Stanza) -> bool:
        """Give an IQ result or error to the request it answers; False when it answers
        nothing we asked (unknown id, or from someone other than the one asked)."""
        pending = self._pending.get(stanza.id)
        if (pending is None or stanza.sender != pending.responder
                or stanza.recipient != pending.requester):
            return False
        del self._pending[stanza.id]
        if pending.timer.active():
            pending.timer.cancel()
        if stanza.type == "result":
            pending.deferred.callback(stanza)
        else:
            pending.deferred.errback(stanza_error(stanza.element))
        return True

    def __len__(self) -> int:
        return len(self._pending)

    def _timed_out(self, id: str, delay: float) -> None:
        pending = self._pending.pop(id, None)
        if pending is not None:
            pending.deferred.errback(IQTimeout(f"no answer to IQ {id!r} in {delay:g}s"))

    def _forget(self, id: str) -> None:
        pending = self._pending.pop(id, None)
        if pending is not None and pending.timer.active():
            pending.timer.cancel()


