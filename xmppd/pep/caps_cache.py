# -*- test-case-name: tests.unit.test_pep_caps -*-
"""What each entity's ``<c/>`` (XEP-0115) stands for, learned once per ``ver``.

PEP sends a contact only the notifications its caps ask for (``NODE+notify``, XEP-0163
§4.2), so it needs the features behind each contact's ``ver``. Asking every resource would
cost one disco#info per presence; a verified ``ver`` (§5.4: the disco#info fetched for it
hashes to it again) is kept for every JID that sends it, an unverifiable one (legacy format,
unknown hash, a mismatch, ambiguous text) only for the JID that answered.

Look-ups (``features``) are synchronous and never touch storage; ``resolve`` is the one
that asks, and callers run it in the background: a presence never waits for a disco#info.
Both maps are bounded (oldest entries go first), so a flood of made-up ``ver``s cannot grow
memory without end.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import Caps, parse_disco_info, verify
from xmppd.errors import StanzaError
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.stanza import Stanza

log = get_logger(__name__)

Features = frozenset[str]
# Sends a disco#info get to a JID, fires with the result Stanza (ctx.send_iq's contract).
Ask = Callable[[domish.Element], defer.Deferred]

NOTIFY_SUFFIX = "+notify"


def notify_nodes(features: Features) -> frozenset[str]:
    """The nodes whose notifications an entity with these features wants (XEP-0163 §4.2)."""
    return frozenset(feature[: -len(NOTIFY_SUFFIX)] for feature in features
                     if feature.endswith(NOTIFY_SUFFIX) and len(feature) > len(NOTIFY_SUFFIX))


class _Bounded(OrderedDict):
    """A dict that forgets its oldest entries past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Hashable, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class CapsCache:
    """Features per verified ``ver`` (shared by all who send it) and per JID otherwise."""

    def __init__(self, ask: Ask, timeout: float = 5.0, max_vers: int = 10000,
                 max_jids: int = 10000) -> None:
        self._ask = ask
        self._timeout = timeout
        self._by_ver: _Bounded = _Bounded(max_vers)  # (hash, ver) -> Features
        self._by_jid: _Bounded = _Bounded(max_jids)  # full JID -> (ver, Features)
        self._resolving: dict[tuple, defer.Deferred] = {}  # (hash, ver) -> Features | None

    @property
    def timeout(self) -> float:
        return self._timeout

    def features(self, jid: JID, caps: Caps) -> Features | None:
        """What ``caps`` of ``jid`` stands for, if known: no I/O."""
        known = self._by_ver.get((caps.hash, caps.ver)) if caps.is_verifiable else None
        if known is None:
            ver, features = self._by_jid.get(jid, (None, None))
            known = features if ver == caps.ver else None
        return known

    def learn(self, caps: Caps, features: Features) -> None:
        """Cache a verified ``ver`` (the server's own caps, tests)."""
        self._by_ver.put((caps.hash, caps.ver), frozenset(features))

    async def resolve(self, jid: JID, caps: Caps, sender: str | None = None) -> Features:
        """The features behind ``caps``, asking ``jid`` when they are unknown; an empty set
        when it does not answer, or answers with ill-formed disco#info (then nothing is
        cached, and the next presence asks again). ``sender``: the request's 'from' (the
        domain of the account that heard the presence)."""
        known = self.features(jid, caps)
        if known is not None:
            return known
        key = (caps.hash, caps.ver)
        if caps.is_verifiable:
            pending = self._resolving.get(key)
            if pending is not None:  # another JID asks for this ver: wait for its answer
                shared = await _waiting_on(pending)
                if shared is not None:
                    return shared
                # it was unverifiable for that JID: ask this one itself
            else:
                d = defer.ensureDeferred(self._fetch(jid, caps, sender))
                self._resolving[key] = d
                try:
                    result = await _waiting_on(d)
                finally:
                    self._resolving.pop(key, None)
                if result is not None:
                    return result
                return self.features(jid, caps) or frozenset()
        await self._fetch(jid, caps, sender)
        return self.features(jid, caps) or frozenset()

    async def _fetch(self, jid: JID, caps: Caps, sender: str | None) -> Features | None:
        """Ask ``jid``; cache the answer. Returns the features when they are verified for
        every JID sending this ``ver``, None otherwise."""
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["to"] = jid.full()
        if sender is not None:
            iq["from"] = sender
        iq.addElement((ns.DISCO_INFO, "query"))["node"] = caps.disco_node
        try:
            result: Stanza = await self._ask(iq)
            query = result.payload()
            if query is None:
                raise StanzaError("bad-request", "an empty disco#info result")
            info = parse_disco_info(query)
        except defer.CancelledError:
            raise
        except Exception as failure:  # no answer, an error, ill-formed: nothing to learn
            log.debug("caps of {jid} unresolved: {why}", jid=jid.full(), why=failure)
            return None
        features = frozenset(info.features)
        if verify(caps, info):
            self._by_ver.put((caps.hash, caps.ver), features)
            return features
        self._by_jid.put(jid, (caps.ver, features))
        return None

    def forget_jid(self, jid: JID) -> None:
        """Drop what was kept for one JID only (it went unavailable)."""
        self._by_jid.pop(jid, None)


def _waiting_on(d: defer.Deferred) -> defer.Deferred:
    """A Deferred of ``d``'s result that leaves ``d`` itself to its other waiters."""
    mirror: defer.Deferred = defer.Deferred()

    def passed(result):
        mirror.callback(result)
        return result

    def failed(failure):
        mirror.callback(None)
        return None

    d.addCallbacks(passed, failed)
    return mirror
