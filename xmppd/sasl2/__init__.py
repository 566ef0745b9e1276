# -*- test-case-name: tests.unit.test_sasl2 -*-
"""Extensible SASL (XEP-0388) and Bind 2 (XEP-0386): one round trip from TLS to a session.

The SASL mechanisms are xmppd.sasl's, the same objects the legacy profile runs; SASL2 only
changes how they are carried (``elements``) and what follows success (``completion``): no
stream restart, the session resumed (XEP-0198) or bound (Bind 2) with carbons, stream
management and client state enabled inline, a FAST token (XEP-0484) in the <success/>.

What is inline is what plugins register here (through the plugin context), so the
<inline/> lists in the stream features name only what a loaded plugin does:

- ``Sasl2Extension`` objects: an element in SASL2's <inline/> (``feature``), mechanisms of
  their own (``mechanism``: FAST's HT-*), work once the mechanism succeeded and before a
  session exists (``authenticated``: FAST's tokens), and resumption (``resume``: XEP-0198,
  after ``prepare`` brought the session from another node of a cluster);
- Bind 2 features: ``handler(child, stream)`` for a child of <bind/> in a namespace, run
  once the session is bound; what it returns goes into <bound/>.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.handlers import PrioritizedHandlers

SASL2 = "urn:xmpp:sasl:2"  # XEP-0388
BIND2 = "urn:xmpp:bind:0"  # XEP-0386
FAST = "urn:xmpp:fast:0"  # XEP-0484


@dataclass
class UserAgent:
    """The SASL2 <user-agent/>: ``id`` names the installation (FAST binds tokens to it)."""

    id: str | None = None
    software: str | None = None
    device: str | None = None


@dataclass
class Resumption:
    """What ``Sasl2Extension.resume`` did: ``element`` goes into <success/> (<resumed/> or
    <failed/>); when ``resumed``, no bind follows and ``after()`` runs once <success/> is out
    (to send what the client missed)."""

    element: domish.Element
    resumed: bool
    after: Callable[[], None] | None = None


class Sasl2Extension:
    """What a plugin adds to SASL2; every method is optional (these defaults do nothing)."""

    def feature(self, stream) -> domish.Element | None:
        """A child for SASL2's <inline/> in the stream features of ``stream``."""
        return None

    def mechanism(self, name: str, stream, attempt):
        """An ISASLMechanism for ``name`` in the <authenticate/> ``attempt``, or None."""
        return None

    def authenticated(self, attempt, stream):
        """The mechanism succeeded (``attempt.mechanism``, ``attempt.localpart``); nothing is
        bound yet. Returns elements for <success/> (or a Deferred of them), or None."""
        return None

    def prepare(self, attempt, stream) -> defer.Deferred | None:
        """Every extension's ``authenticated`` succeeded (``attempt.localpart`` is the
        account's); the stream is not authenticated yet. A Deferred to wait for what
        ``resume`` needs that may be elsewhere (a session another node of a cluster holds),
        or None: nothing to wait for, and <success/> goes out in this same turn."""
        return None

    def resume(self, attempt, stream) -> Resumption | None:
        """Resume the session ``attempt`` asks for (``stream.account`` is set), or None when
        it asks for none."""
        return None


class Sasl2Registry:
    """The server's SASL2 extensions and Bind 2 features; each registration returns its
    undo, for the plugin context."""

    def __init__(self) -> None:
        self.extensions = PrioritizedHandlers()
        self._bind2: dict[str, Callable] = {}

    def add_extension(self, extension: Sasl2Extension, priority: int = 0
                      ) -> Callable[[], None]:
        return self.extensions.add(extension, priority)

    def add_bind2_feature(self, namespace: str, handler: Callable) -> Callable[[], None]:
        """``handler(child, stream)`` for children of <bind/> in ``namespace``, once bound;
        advertised as <feature var=namespace/> in Bind 2's <inline/>."""
        if namespace in self._bind2:
            raise ValueError(f"Bind 2 feature {namespace} is already registered")
        self._bind2[namespace] = handler

        def undo() -> None:
            if self._bind2.get(namespace) is handler:
                del self._bind2[namespace]

        return undo

    def bind2_features(self) -> list[str]:
        return sorted(self._bind2)

    def bind2_handler(self, namespace: str) -> Callable | None:
        return self._bind2.get(namespace)

    def inline_features(self, stream) -> list[domish.Element]:
        """SASL2's <inline/> children: Bind 2's, then the extensions'."""
        bind = domish.Element((BIND2, "bind"))
        features = bind.addElement("inline")
        for namespace in self.bind2_features():
            features.addElement("feature")["var"] = namespace
        result = [bind]
        for extension in self.extensions.handlers:
            element = extension.feature(stream)
            if element is not None:
                result.append(element)
        return result

    def mechanism(self, name: str, stream, attempt):
        for extension in self.extensions.handlers:
            mechanism = extension.mechanism(name, stream, attempt)
            if mechanism is not None:
                return mechanism
        return None
