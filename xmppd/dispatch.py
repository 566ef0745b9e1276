# -*- test-case-name: tests.unit.test_dispatch -*-
"""Dispatch: one dictionary look-up from a stanza's key to the handlers registered for it.

Two kinds of registration share one table:

* **Chain links**, keyed ``(kind, type, target)``, for messages, presence and IQs. ``target``
  is 'host', 'bare' or 'full' for stanzas arriving for us, 'outgoing' for the messages
  and presence a local client sends, whatever their recipient, before they are routed, or
  'remote' for every stanza about to leave for another server (clients', the server's own
  and its services'), so what the server makes for a remote JID can be held back too.
  Links run highest priority first (Prosody's ``message/full`` events); each returns what
  happens next:

  - None or False: the stanza goes on to the next link, unchanged;
  - True: the link consumed it; nothing after it runs;
  - a :class:`~xmppd.stanza.Stanza`: the stanza goes on, replaced by this one;
  - a Deferred firing one of those: the same, once the link's work is done (an archive
    write before delivery). The chain then returns a Deferred, and the stream that read the
    stanza waits for it before reading the next: the ordering guarantee covers it.

  A link raising StanzaError answers the stanza with that error; any other exception is
  logged and answered with internal-server-error; either way the stanza is consumed.
  When no link consumes it, ``otherwise(stanza, target, origin)`` runs: the end of the chain
  (for IQs, the answer by payload; the router's fallbacks).

* **IQ answerers**, keyed ``("iq", type, target, namespace, element)``: the highest-priority
  one answers an IQ get/set; its return or exception becomes the result or error reply.
  'self' is a target here too: an account's IQ to its own bare JID, or with no 'to'
  (RFC 6120 §10.3.3: the server answers on the account's behalf).

Handlers are sorted by priority when they register, never per stanza; the synchronous path
allocates nothing but the key, and returns a Deferred only when a handler went asynchronous.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.handlers import PrioritizedHandlers
from xmppd.logs import get_logger
from xmppd.stanza import IQ_TYPES, MESSAGE_TYPES, PRESENCE_TYPES, Stanza, make_iq_result

log = get_logger(__name__)

TARGETS = frozenset(("host", "bare", "self", "full", "outgoing"))
CHAIN_TARGETS = frozenset(("host", "bare", "full", "outgoing", "remote"))
IQ_REQUEST_TYPES = frozenset(("get", "set"))
CHAIN_TYPES = {"iq": IQ_TYPES, "message": MESSAGE_TYPES, "presence": PRESENCE_TYPES}

# The priority of the link that delivers (RFC 6121 §8.5): below every other link, as
# Prosody's mod_message hooks at -1. Links that archive, copy or hold stanzas sit above it.
DELIVERY_PRIORITY = -1000

Otherwise = Callable[[Stanza, str, object], object]


def iq_key(type: str, target: str, namespace: str | None, element: str) -> tuple:
    return ("iq", type, target, namespace, element)


def stanza_key(kind: str, type: str, target: str) -> tuple:
    return (kind, type, target)


def consumed(result: object = None) -> bool:
    """A callback that ends the chain after asynchronous work: ``d.addCallback(consumed)``."""
    return True


def nothing_more(stanza: Stanza, target: str, origin) -> bool:
    """The end of a chain that needs no fallback: whatever no link took is dropped."""
    return False


class Dispatcher:
    """Finds and runs handlers; turns a handler's return or exception into what follows."""

    def __init__(self, reply: Callable[[domish.Element], object]) -> None:
        self._reply = reply
        self._table: dict[tuple, PrioritizedHandlers] = {}

    # -- registration

    def add_iq(self, type: str, namespace: str, element: str, target: str, handler: Callable,
               priority: int = 0) -> Callable[[], None]:
        if type not in IQ_REQUEST_TYPES:
            raise ValueError(f"IQ handlers take 'get' or 'set', not {type!r}")
        return self._add(iq_key(type, _target(target, TARGETS), namespace, element), handler,
                         priority)

    def add_stanza(self, kind: str, type: str, target: str, handler: Callable,
                   priority: int = 0) -> Callable[[], None]:
        """Add a chain link for ``kind`` ('message', 'presence' or 'iq') of ``type``."""
        types = CHAIN_TYPES.get(kind)
        if types is None:
            raise ValueError(f"stanza handlers are for message, presence or iq, not {kind!r}")
        if type not in types:
            raise ValueError(f"{kind} has no type {type!r}")
        if kind == "iq" and target == "outgoing":
            raise ValueError("a client's IQs are routed as they are: no 'outgoing' links")
        return self._add(stanza_key(kind, type, _target(target, CHAIN_TARGETS)), handler,
                         priority)

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

    # -- the chain

    def dispatch(self, stanza: Stanza, target: str, origin,
                 otherwise: Otherwise = nothing_more):
        """Run the chain for ``stanza``; ``otherwise`` ends it when no link consumed it.

        Returns True when a link consumed it, else what ``otherwise`` returned, or a Deferred
        of either when a link went asynchronous (it never errbacks: failures are answered).
        """
        handlers = self._table.get((stanza.kind, stanza.type, target))
        if handlers is None:
            return otherwise(stanza, target, origin)
        return self._run(handlers.handlers, 0, stanza, target, origin, otherwise)

    def _run(self, handlers: tuple, index: int, stanza: Stanza, target: str, origin,
             otherwise: Otherwise):
        count = len(handlers)
        while index < count:
            handler = handlers[index]
            index += 1
            try:
                result = handler(stanza, origin)
            except Exception as error:
                self._failed(error, stanza, handler)
                return True
            if result is None or result is False:
                continue
            if result is True:
                return True
            if isinstance(result, defer.Deferred):
                return result.addCallbacks(
                    self._resume, self._async_failed,
                    (handlers, index, stanza, target, origin, otherwise), None,
                    (stanza, handler))
            if isinstance(result, Stanza):
                stanza = result
                continue
            log.error("{handler!r} returned {result!r}, not None, a bool, a Stanza or a "
                      "Deferred; taken as consumed", handler=handler, result=result)
            return True
        return otherwise(stanza, target, origin)

    def _resume(self, result, handlers: tuple, index: int, stanza: Stanza, target: str,
                origin, otherwise: Otherwise):
        if result is True:
            return True
        if isinstance(result, Stanza):
            stanza = result
        elif result is not None and result is not False:
            log.error("a Deferred fired {result!r}, not None, a bool or a Stanza; taken as "
                      "consumed", result=result)
            return True
        return self._run(handlers, index, stanza, target, origin, otherwise)

    def _async_failed(self, failure, stanza: Stanza, handler: Callable) -> bool:
        self._failed(failure.value, stanza, handler, failure)
        return True

    def _failed(self, error: BaseException, stanza: Stanza, handler: Callable,
                failure=None) -> None:
        if not isinstance(error, StanzaError):
            log.failure("handler {handler!r} failed on {stanza!r}", failure, handler=handler,
                        stanza=stanza)
            error = StanzaError("internal-server-error")
        if stanza.type != "error":  # never an error answering an error
            self._reply(error.to_response(stanza.element))

    # -- IQ answerers

    def dispatch_iq(self, stanza: Stanza, target: str, origin) -> bool | defer.Deferred:
        """Answer an IQ get/set: False when nobody handles it (the caller decides the
        error), True when answered, or the Deferred of an answer still being made (the
        stream waits for it: an IQ set is handled completely before the next stanza)."""
        payload = stanza.payload()
        if payload is None:
            return False
        handlers = self._table.get(iq_key(stanza.type, target, payload.uri, payload.name))
        if not handlers:
            return False
        handler = handlers.handlers[0]
        d = defer.maybeDeferred(handler, stanza, origin)
        d.addCallbacks(self._iq_result, self._iq_error, (stanza,), None, (stanza, handler))
        return True if d.called else d

    def _iq_result(self, payload, stanza: Stanza) -> None:
        self._reply(make_iq_result(stanza.element, payload))

    def _iq_error(self, failure, stanza: Stanza, handler: Callable) -> None:
        self._failed(failure.value, stanza, handler, failure)


def _target(target: str, allowed: frozenset[str]) -> str:
    if target not in allowed:
        raise ValueError(f"target must be one of {sorted(allowed)}, not {target!r}")
    return target
