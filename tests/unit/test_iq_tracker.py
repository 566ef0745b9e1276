"""IQ requests from the server (ctx.send_iq): the answer, an error, a timeout on a Clock,
answers from the wrong entity ignored (RFC 6120 §8.2.3), and cancelling on unload."""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from tests.plugin_case import PluginServerCase
from xmppd.context import PluginContext
from xmppd.errors import StanzaError
from xmppd.iq_tracker import IQTimeout


def disco_request(to: str) -> domish.Element:
    iq = domish.Element((None, "iq"))
    iq["type"], iq["to"] = "get", to
    iq.addElement(("http://jabber.org/protocol/disco#info", "query"))
    return iq


class SendIQTests(PluginServerCase):
    users = ("alice", "bob")

    async def started(self) -> None:
        self.ctx = PluginContext("asker", {}, self.server)
        self.alice = await self.client("alice", "phone")

    def outcome(self, d: defer.Deferred) -> list:
        results = []
        d.addBoth(results.append)
        return results

    def received_request(self) -> domish.Element:
        (request,) = self.alice.elements()
        self.assertEqual((request["from"], request["to"]), ("localhost", "alice@localhost/phone"))
        return request

    def test_the_clients_answer_fires_the_request(self):
        results = self.outcome(self.ctx.send_iq(disco_request("alice@localhost/phone")))
        request = self.received_request()
        self.alice.feed(f"<iq type='result' id='{request['id']}' to='localhost'>"
                        "<query xmlns='http://jabber.org/protocol/disco#info'>"
                        "<feature var='urn:xmpp:ping'/></query></iq>")
        (answer,) = results
        self.assertEqual(answer.type, "result")
        self.assertEqual(str(answer.sender), "alice@localhost/phone")
        self.assertEqual(answer.payload().firstChildElement()["var"], "urn:xmpp:ping")
        self.assertEqual(len(self.server.router.iq_tracker), 0)

    def test_an_error_answer_is_its_stanza_error(self):
        results = self.outcome(self.ctx.send_iq(disco_request("alice@localhost/phone")))
        request = self.received_request()
        self.alice.feed(f"<iq type='error' id='{request['id']}' to='localhost'><error "
                        "type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-"
                        "stanzas'/></error></iq>")
        (failure,) = results
        self.assertTrue(failure.check(StanzaError))
        self.assertEqual(failure.value.condition, "item-not-found")

    async def test_no_answer_times_out_and_a_late_one_is_dropped(self):
        results = self.outcome(self.ctx.send_iq(disco_request("alice@localhost/phone"), 10))
        request = self.received_request()
        self.clock.advance(9.9)
        self.assertEqual(results, [])
        self.clock.advance(0.1)
        (failure,) = results
        self.assertTrue(failure.check(IQTimeout))
        self.alice.feed(f"<iq type='result' id='{request['id']}' to='localhost'/>")
        self.assertEqual((self.alice.elements(), len(results)), ([], 1))

    async def test_only_the_entity_asked_may_answer(self):
        """Bob guessing the id answers nothing; the request still waits for alice."""
        results = self.outcome(self.ctx.send_iq(disco_request("alice@localhost/phone")))
        request = self.received_request()
        bob = await self.client("bob", "desk")
        bob.feed(f"<iq type='result' id='{request['id']}' to='localhost'/>")
        self.assertEqual(results, [])
        self.alice.feed(f"<iq type='result' id='{request['id']}' to='localhost'/>")
        self.assertEqual(results[0].type, "result")

    def test_a_resource_that_is_not_there_fails_at_once(self):
        results = self.outcome(self.ctx.send_iq(disco_request("alice@localhost/gone")))
        (failure,) = results
        self.assertEqual(failure.value.condition, "service-unavailable")

    def test_stopping_the_plugin_cancels_what_it_waits_for(self):
        results = self.outcome(self.ctx.send_iq(disco_request("alice@localhost/phone")))
        self.ctx.close()
        self.assertTrue(results[0].check(defer.CancelledError))
        self.assertEqual(len(self.server.router.iq_tracker), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
