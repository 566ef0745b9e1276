"""Dispatch: one dictionary look-up from a stanza's key to the handlers registered for it.

Keys are ``("iq", type, target, namespace, element)`` for IQ requests and
``(kind, type, target)`` for messages and presence, where ``target`` is 'host', 'bare' or
'full' for stanzas arriving for us, 'self' for an IQ an account sends to its own bare JID (or
with no 'to', RFC 6120 §10.3.3: the server answers on the account's behalf), or 'outgoing' for
what a local client sends, whatever its recipient, before it is routed. Handlers are sorted
by priority when they register, never per stanza.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.handlers import PrioritizedHandlers
from xmppd.logs import get_logger
from xmppd.stanza import Stanza, make_iq_result

log = get_logger(__name__)

TARGETS = frozenset(("host", "bare", "self", "full", "outgoing"))
IQ_REQUEST_TYPES = frozenset(("get", "set"))


def iq_key(type: str, target: str, namespace: str | None, element: str) -> tuple:
    return ("iq", type, target, namespace, element)


def stanza_key(kind: str, type: str, target: str) -> tuple:
    return (kind, type, target)


class Dispatcher:
    """Finds and runs handlers; turns an IQ handler's return or exception into the reply."""

    def __init__(self, reply: Callable[[domish.Element], None]) -> None:
        self._reply = reply
        self._table: dict[tuple, PrioritizedHandlers] = {}

    # -- registration

    def add_iq(self, type: str, namespace: str, element: str, target: str, handler: Callable,
               priority: int = 0) -> Callable[[], None]:
        if type not in IQ_REQUEST_TYPES:
            raise ValueError(f"IQ handlers take 'get' or 'set', not {type!r}")
        return self._add(iq_key(type, _target(target), namespace, element), handler, priority)

    def add_stanza(self, kind: str, type: str, target: str, handler: Callable,
                   priority: int = 0) -> Callable[[], None]:
        if kind not in ("message", "presence"):
            raise ValueError(f"stanza handlers are for message or presence, not {kind!r}")
        return self._add(stanza_key(kind, type, _target(target)), handler, priority)

    def _add(self, key: tuple, handler: Callable, priority: int) -> Callable[[], None]:
        handlers = self._table.setdefault(key, PrioritizedHandlers())
        remove_handler = handlers.add(handler, priority)

        def remove() -> None:
            remove_handler()
            if not handlers and self._table.get(key) is handlers:
                del self._table[key]

        return remove

    def handles_iq(self, type: str, target: str, namespace: str | None, element: str) -> bool:
        return iq_key(type, target, namespace, element) in self._table

    # -- dispatch

    def dispatch_iq(self, stanza: Stanza, target: str, origin) -> bool:
        """Answer an IQ get/set; False when nobody handles it (the caller decides the error)."""
        payload = stanza.payload()
        if payload is None:
            return False
        handlers = self._table.get(iq_key(stanza.type, target, payload.uri, payload.name))
        if not handlers:
            return False
        handler = handlers.handlers[0]
        d = defer.maybeDeferred(handler, stanza, origin)
        d.addCallbacks(self._iq_result, self._iq_error, (stanza,), None, (stanza, handler))
        return True

    def dispatch(self, stanza: Stanza, target: str, origin) -> bool | defer.Deferred:
        """Offer a message or presence to its handlers until one consumes it.

        Returns False if none did, else True or the consuming handler's Deferred (which never
        errbacks: failures are logged), so the stream can wait for it.
        """
        for handler in self._table.get(stanza_key(stanza.kind, stanza.type, target), ()):
            try:
                consumed = handler(stanza, origin)
            except StanzaError as error:
                self._reply(error.to_response(stanza.element))
                return True
            except Exception:
                log.failure("handler {handler!r} failed on {stanza!r}", handler=handler,
                            stanza=stanza)
                self._reply(StanzaError("internal-server-error").to_response(stanza.element))
                return True
            if isinstance(consumed, defer.Deferred):
                return consumed.addErrback(
                    lambda f, h=handler: log.failure("{h!r} failed", f, h=h))
            if consumed:
                return True
        return False

    def _iq_result(self, payload, stanza: Stanza) -> None:
        self._reply(make_iq_result(stanza.element, payload))

    def _iq_error(self, failure, stanza: Stanza, handler: Callable) -> None:
        if failure.check(StanzaError):
            error = failure.value
        else:
            log.failure("IQ handler {handler!r} failed on {stanza!r}", failure,
                        handler=handler, stanza=stanza)
            error = StanzaError("internal-server-error")
        self._reply(error.to_response(stanza.element))


def _target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}, not {target!r}")
    return target
