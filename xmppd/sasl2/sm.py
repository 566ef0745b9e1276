# -*- test-case-name: tests.unit.test_sasl2 -*-
"""Stream management (XEP-0198 §7) inline in SASL2: <resume/> in <authenticate/>, <enable/>
in Bind 2's <bind/>. The protocol is xmppd.sm's, and so is asking the other nodes of a
cluster for a session not held here (``prepare``, before <success/>); this only carries it."""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.jid import jid_from_parts
from xmppd.sasl2 import Resumption, Sasl2Extension
from xmppd.sm.elements import sm_element


class InlineStreamManagement(Sasl2Extension):
    """``manager`` is the smacks plugin's xmppd.sm.manager.StreamManagement."""

    def __init__(self, manager) -> None:
        self.manager = manager

    def feature(self, stream) -> domish.Element:
        return sm_element("sm")  # resumption can be inlined

    def prepare(self, attempt, stream) -> defer.Deferred | None:
        """In a cluster, a session held by another node is handed over before ``resume``
        (as for a classic <resume/>); None on one node, or when it is here."""
        element = attempt.child(ns.SM, "resume")
        if element is None:
            return None
        account = jid_from_parts(attempt.localpart, stream.domain, None)
        return self.manager.fetch(element, stream, account)

    def resume(self, attempt, stream) -> Resumption | None:
        element = attempt.child(ns.SM, "resume")
        if element is None:
            return None
        answer, replay = self.manager.resume(element, stream)
        return Resumption(answer, replay is not None, replay)

    def enable(self, element: domish.Element, stream) -> domish.Element | None:
        """Bind 2's handler for children in the SM namespace: <enable/>'s answer."""
        if element.name != "enable":
            return None
        return self.manager.enable(element, stream)
