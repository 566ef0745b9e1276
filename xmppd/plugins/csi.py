# -*- test-case-name: tests.unit.test_csi -*-
"""Client state indication (XEP-0352, ``urn:xmpp:csi:0``): a phone in a pocket says
``<inactive/>`` and the server stops waking it for every contact's status change.

While a session is inactive, and only then (an active session keeps the unfiltered, free
path), an OUT filter at priority 0 (above stream management's counter at -1000, so what is
held is not counted as sent) holds presence broadcasts, available and unavailable, keeping
only the newest per sender (a contact's full JID): what the client would have shown at the
end anyway. Everything else passes at once. A message first flushes
what is held, so the client reads presence and message in the order they happened; IQs
pass without flushing (a server ping need not wake the screen with presence). ``<active/>``
flushes and ends holding.

Subscription requests and presence errors are not held: they ask the user something.
``[plugins.csi] max_held`` (default 1000) bounds what one session holds; reaching it
flushes, so a huge roster cannot make the server keep unbounded memory per phone.

The two elements are top-level, not stanzas: claimed in the bound state (a client sends
them only after binding), with the ``<csi/>`` stream feature saying they are understood.
"""

from __future__ import annotations

from twisted.words.xish import domish
from zope.interface import implementer

from xmppd import events, ns
from xmppd.c2s import filters
from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys
from xmppd.xml.stored import stanza_from_text, stanza_to_text

FILTER_PRIORITY = 0  # agreed: stream management counts at OUT -1000, nearest the wire
HELD_TYPES = (None, "unavailable")  # presence broadcasts; not subscriptions, probes, errors


@implementer(IXmppdPlugin)
class ClientStateIndication:
    name = "csi"
    requires = ()

    def setup(self, ctx) -> None:
        reject_unknown_keys(ctx, ("max_held",))
        states = self._states = ClientStates(ctx.option_int("max_held", 1000, minimum=1))
        ctx.claim(ns.CSI, "active", states.on_active)
        ctx.claim(ns.CSI, "inactive", states.on_inactive)
        ctx.stream_feature(lambda stream: domish.Element((ns.CSI, "csi")))
        ctx.on(events.SESSION_CLOSED, states.forget)
        ctx.carry_session_state("csi", states.export, states.restore)
        ctx.bind2_feature(ns.CSI, states.inline)  # XEP-0386: the session starts in a state

    def teardown(self) -> None:
        """Stopping: what is held goes out and the filters go (the context knows nothing of
        filters added to sessions)."""
        self._states.activate_all()


class ClientStates:
    """The inactive sessions, each with its filter; an active session has none."""

    def __init__(self, max_held: int) -> None:
        self.max_held = max_held
        self._inactive: dict[object, ClientState] = {}

    def on_inactive(self, element: domish.Element, stream) -> None:
        session = stream.session
        if session is None or session in self._inactive:
            return  # saying it twice changes nothing
        state = ClientState(session, self.max_held)
        state.undo = session.filters.add(filters.OUT, state.filter, FILTER_PRIORITY)
        self._inactive[session] = state

    def on_active(self, element: domish.Element, stream) -> None:
        state = self._inactive.pop(stream.session, None)
        if state is not None:
            state.flush()  # through the filters after this one, so before removing it
            state.undo()

    def inline(self, element: domish.Element, stream) -> None:
        """Bind 2's <active/> or <inactive/>, for the session just bound."""
        if element.name == "inactive":
            self.on_inactive(element, stream)
        elif element.name == "active":
            self.on_active(element, stream)

    def export(self, session) -> dict | None:
        """An inactive session moving to another node: inactive there too, holding what it
        held here (stream management never saw it: this filter is above its counter)."""
        state = self._inactive.get(session)
        if state is None:
            return None
        return {"held": [stanza_to_text(element) for element in state.held.values()]}

    def restore(self, session, data: dict) -> None:
        if session in self._inactive:
            return
        state = ClientState(session, self.max_held)
        for text in data.get("held", ()):
            element = stanza_from_text(str(text))
            if element is not None:
                state.held[element.getAttribute("from")] = element
        state.undo = session.filters.add(filters.OUT, state.filter, FILTER_PRIORITY)
        self._inactive[session] = state

    def forget(self, session, *ignored) -> None:
        self._inactive.pop(session, None)  # what it held goes with it: nobody to read it

    def activate_all(self) -> None:
        while self._inactive:
            _, state = self._inactive.popitem()
            state.flush()
            state.undo()


class ClientState:
    """An inactive session's filter and what it holds."""

    __slots__ = ("session", "max_held", "held", "undo")

    def __init__(self, session, max_held: int) -> None:
        self.session = session
        self.max_held = max_held
        self.held: dict[str | None, domish.Element] = {}  # sender -> newest presence
        self.undo = None  # removes the filter

    def filter(self, element: domish.Element, session) -> domish.Element | None:
        name = element.name
        if name == "presence":
            if element.getAttribute("type") not in HELD_TYPES:
                return element
            held = self.held
            sender = element.getAttribute("from")
            held.pop(sender, None)  # the newest goes last: flushed in the order of change
            held[sender] = element
            if len(held) >= self.max_held:
                self.flush()
            return None
        if name == "message" and self.held:
            self.flush()
        return element

    def flush(self) -> None:
        """Send on what is held, through the filters after this one (stream management)."""
        held, self.held = self.held, {}
        pass_on = self.session.filters.pass_on
        for element in held.values():
            pass_on(filters.OUT, element, after=self.filter)


csi = ClientStateIndication()
