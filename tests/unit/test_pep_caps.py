"""The caps cache of PEP (XEP-0115 §5.4): a verified ver is asked once for every JID, an
unverifiable one is kept for its JID only, failures cache nothing; and the interest table."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from xmppd import ns
from xmppd.caps import Caps, DiscoInfo, Identity
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.pep.caps_cache import CapsCache, notify_nodes
from xmppd.pep.interest import Interests
from xmppd.stanza import Stanza

TUNE = "http://jabber.org/protocol/tune"
INFO = DiscoInfo((Identity("client", "pc"),), (ns.DISCO_INFO, TUNE + "+notify"))
CAPS = Caps.of(INFO, "https://example.org/client")
ONE = parse_jid("bob@example.org/one")
TWO = parse_jid("carol@example.org/two")


def result_for(request: domish.Element, info: DiscoInfo) -> Stanza:
    iq = domish.Element((None, "iq"))
    iq["type"] = "result"
    query = iq.addElement((ns.DISCO_INFO, "query"))
    query["node"] = request.children[0]["node"]
    for identity in info.identities:
        query.addChild(identity.to_element())
    for feature in info.features:
        query.addElement("feature")["var"] = feature
    return Stanza(iq, None, None)


class FakeAsk:
    """Records requests; the test answers each Deferred."""

    def __init__(self) -> None:
        self.requests: list[tuple[domish.Element, defer.Deferred]] = []

    def __call__(self, iq: domish.Element) -> defer.Deferred:
        d = defer.Deferred()
        self.requests.append((iq, d))
        return d


class CapsCacheTest(TestCase):
    def setUp(self):
        self.ask = FakeAsk()
        self.cache = CapsCache(self.ask)

    def test_verified_ver_is_asked_once_for_all(self):
        first = defer.ensureDeferred(self.cache.resolve(ONE, CAPS, sender="example.net"))
        second = defer.ensureDeferred(self.cache.resolve(TWO, CAPS))
        self.assertEqual(len(self.ask.requests), 1)
        request, d = self.ask.requests[0]
        self.assertEqual((request["to"], request["from"]), (ONE.full(), "example.net"))
        self.assertEqual(request.children[0]["node"], CAPS.disco_node)
        d.callback(result_for(request, INFO))
        features = self.successResultOf(first)
        self.assertEqual(self.successResultOf(second), features)
        self.assertEqual(notify_nodes(features), {TUNE})
        self.assertEqual(self.cache.features(parse_jid("dan@x.example/y"), CAPS), features)

    def test_unverifiable_answer_is_kept_for_that_jid_only(self):
        lying = DiscoInfo(INFO.identities, (*INFO.features, "urn:extra"))
        first = defer.ensureDeferred(self.cache.resolve(ONE, CAPS))
        request, d = self.ask.requests[0]
        d.callback(result_for(request, lying))
        self.assertIn("urn:extra", self.successResultOf(first))
        self.assertIn("urn:extra", self.cache.features(ONE, CAPS))
        self.assertIsNone(self.cache.features(TWO, CAPS))
        self.cache.forget_jid(ONE)
        self.assertIsNone(self.cache.features(ONE, CAPS))

    def test_an_error_or_timeout_caches_nothing(self):
        first = defer.ensureDeferred(self.cache.resolve(ONE, CAPS))
        self.ask.requests[0][1].errback(StanzaError("service-unavailable"))
        self.assertEqual(self.successResultOf(first), frozenset())
        self.assertIsNone(self.cache.features(ONE, CAPS))
        defer.ensureDeferred(self.cache.resolve(ONE, CAPS))
        self.assertEqual(len(self.ask.requests), 2)

    def test_legacy_caps_are_asked_per_jid(self):
        legacy = Caps("https://example.org/client", "1.0", None)
        defer.ensureDeferred(self.cache.resolve(ONE, legacy))
        defer.ensureDeferred(self.cache.resolve(TWO, legacy))
        self.assertEqual(len(self.ask.requests), 2)


class InterestsTest(TestCase):
    def test_new_nodes_and_removal(self):
        interests = Interests(max_per_account=2)
        alice = parse_jid("alice@example.net")
        self.assertEqual(interests.set(alice, ONE, frozenset({"a"})), {"a"})
        self.assertEqual(interests.set(alice, ONE, frozenset({"a", "b"})), {"b"})
        self.assertEqual(interests.wanting(alice, "b"), [ONE])
        interests.set(alice, TWO, frozenset({"b"}))
        self.assertEqual(interests.set(alice, parse_jid("x@y.example/z"), frozenset({"b"})),
                         frozenset())  # over the limit
        interests.forget_domain("example.org")
        self.assertEqual(interests.wanting(alice, "b"), [])
        self.assertFalse(interests.present(alice, ONE))
        self.assertEqual(len(interests), 0)

    def test_the_total_is_bounded(self):
        interests = Interests(max_total=2)
        for name in ("a", "b", "c"):
            interests.set(parse_jid(f"{name}@example.net"), ONE, frozenset({"n"}))
        self.assertEqual(len(interests), 2)
        interests.forget_account(parse_jid("a@example.net"))
        interests.remove(parse_jid("b@example.net"), ONE)
        self.assertEqual(len(interests), 0)
