"""Services on subdomains and disco from providers: the echo drop-in on echo.localhost
reached by a local client, its own disco, the host's disco#items listing it, a component-
style service taking everything, IQ requests from a service, and disco nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.words.xish import domish

from tests.plugin_case import PluginServerCase
from xmppd import ns
from xmppd.caps import DiscoInfo, Identity
from xmppd.context import PluginContext
from xmppd.disco import DiscoItem

ECHO = Path(__file__).parent.parent / "integration" / "dropins" / "echo_service.py"


class ServiceTestCase(PluginServerCase):
    drop_ins = {ECHO.name: ECHO.read_text()}
    enabled = ("echo",)
    # their identities, features, service and presence links would show here
    without = ("pep", "pubsub", "vcard", "avatar_hash", "private", "bookmarks",
               "vcard_conversion", "push", "muc")

    async def started(self) -> None:
        self.alice = await self.client("alice", "phone")

    def ask(self, to: str, namespace: str, node: str | None = None, type: str = "get"):
        node_attribute = f" node='{node}'" if node else ""
        self.alice.feed(f"<iq type='{type}' id='q' to='{to}'><query xmlns='{namespace}'"
                        f"{node_attribute}/></iq>")
        (answer,) = self.alice.elements()
        return answer

    def context(self) -> PluginContext:
        ctx = PluginContext("test", {}, self.server)
        self.addCleanup(ctx.close)
        return ctx


def error_condition(stanza: domish.Element) -> str:
    error = next(e for e in stanza.elements() if e.name == "error")
    return error.firstChildElement().name


class EchoTests(ServiceTestCase):
    def test_a_message_to_the_service_comes_back_from_it(self):
        self.alice.feed("<message type='chat' to='room@echo.localhost' id='m'>"
                        "<body>ping?</body></message>")
        (echoed,) = self.alice.elements()
        self.assertEqual((echoed["from"], echoed["to"], str(echoed.body)),
                         ("room@echo.localhost", "alice@localhost/phone", "ping?"))

    def test_the_service_answers_its_own_disco_and_refuses_the_rest(self):
        info = self.ask("echo.localhost", ns.DISCO_INFO).firstChildElement()
        identities = [(i["category"], i["type"], i["name"]) for i in info.elements()
                      if i.name == "identity"]
        features = {f["var"] for f in info.elements() if f.name == "feature"}
        self.assertEqual(identities, [("component", "generic", "Echo")])
        self.assertEqual(features, {"urn:example:echo", ns.DISCO_INFO, ns.DISCO_ITEMS})
        self.assertEqual(error_condition(self.ask("echo.localhost", ns.VERSION)),
                         "service-unavailable")
        self.alice.feed("<message type='groupchat' to='echo.localhost'><body>x</body></message>")
        self.assertEqual(error_condition(self.alice.elements()[0]), "service-unavailable")

    def test_the_host_lists_its_services_and_federation_sees_them_as_ours(self):
        items = self.ask("localhost", ns.DISCO_ITEMS).firstChildElement()
        self.assertEqual([(i["jid"], i["name"]) for i in items.elements()],
                         [("echo.localhost", "Echo")])
        self.assertIn("echo.localhost", self.server.router.served)
        self.assertIn("localhost", self.server.router.served)
        self.assertNotIn("elsewhere.example", self.server.router.served)

    def test_unloading_removes_the_service(self):
        self.fixture.registry.loaded.pop("echo").close()
        self.assertNotIn("echo.localhost", self.server.router.served)
        self.alice.feed("<message type='chat' to='echo.localhost'><body>x</body></message>")
        self.assertEqual(error_condition(self.alice.elements()[0]), "remote-server-not-found")
        items = self.ask("localhost", ns.DISCO_ITEMS).firstChildElement()
        self.assertEqual(list(items.elements()), [])

    def test_a_served_domain_cannot_be_taken_twice(self):
        for name in ("echo", "echo.localhost", "localhost"):
            with pytest.raises(ValueError, match="already served"):
                self.context().service(name)


class ComponentTests(ServiceTestCase):
    def test_a_service_with_a_handler_gets_everything_it_did_not_register(self):
        got = []
        service = self.context().service("component.example.net",
                                         lambda stanza, origin: got.append(stanza) or True)
        service.iq("get", ns.PING, "ping", lambda stanza, origin: None)
        self.alice.feed("<iq type='get' id='p' to='component.example.net'>"
                        "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(self.alice.elements()[0]["type"], "result")  # registered: answered
        self.alice.feed("<iq type='get' id='d' to='component.example.net'><query xmlns='"
                        f"{ns.DISCO_INFO}'/></iq>")
        self.assertEqual(self.alice.elements(), [])  # the component's to answer, not ours
        self.alice.feed("<presence to='room@component.example.net/nick'/>")
        self.assertEqual([(s.kind, s.recipient.full()) for s in got],
                         [("iq", "component.example.net"),
                          ("presence", "room@component.example.net/nick")])

    def test_a_service_asks_a_client_and_gets_the_answer(self):
        self.context().service("asker")
        results = []
        request = domish.Element((None, "iq"))
        request["type"], request["from"], request["to"] = ("get", "asker.localhost",
                                                           "alice@localhost/phone")
        request.addElement((ns.PING, "ping"))
        self.context().send_iq(request).addBoth(results.append)
        (received,) = self.alice.elements()
        self.alice.feed(f"<iq type='result' id='{received['id']}' to='asker.localhost'/>")
        self.assertEqual(str(results[0].sender), "alice@localhost/phone")


class DiscoProviderTests(ServiceTestCase):
    def test_nodes_are_answered_by_their_providers_and_others_are_not_found(self):
        ctx = self.context()
        ctx.disco_info(lambda stanza, node: DiscoInfo(
            (Identity("automation", "command-list"),), ("urn:example:node",))
            if node == "commands" else None)
        ctx.disco_items(lambda stanza, node: [DiscoItem("localhost", "commands", "Commands")]
                        if node is None else None)
        info = self.ask("localhost", ns.DISCO_INFO, "commands").firstChildElement()
        self.assertEqual(info["node"], "commands")
        self.assertEqual([(c.name, c.getAttribute("var")) for c in info.elements()],
                         [("identity", None), ("feature", "urn:example:node")])
        self.assertEqual(error_condition(self.ask("localhost", ns.DISCO_INFO, "nope")),
                         "item-not-found")
        items = self.ask("localhost", ns.DISCO_ITEMS).firstChildElement()
        self.assertEqual([(i["jid"], i.getAttribute("node")) for i in items.elements()],
                         [("echo.localhost", None), ("localhost", "commands")])
        ctx.close()
        self.assertEqual(error_condition(self.ask("localhost", ns.DISCO_INFO, "commands")),
                         "item-not-found")

    def test_an_account_asking_about_itself_gets_the_account_entity(self):
        ctx = self.context()
        ctx.feature("urn:example:account", to="account")
        info = self.ask("alice@localhost", ns.DISCO_INFO).firstChildElement()
        identities = [(i["category"], i["type"]) for i in info.elements() if i.name == "identity"]
        features = {f["var"] for f in info.elements() if f.name == "feature"}
        self.assertEqual(identities, [("account", "registered")])
        self.assertEqual(features, {ns.DISCO_INFO, ns.DISCO_ITEMS, "urn:example:account"})

    async def test_a_provider_may_answer_later(self):
        later = defer.Deferred()
        self.context().disco_info(lambda stanza, node: later, to="account")
        self.alice.feed("<iq type='get' id='q'><query xmlns='"
                        f"{ns.DISCO_INFO}'/></iq>")
        self.assertEqual(self.alice.elements(), [])
        later.callback(DiscoInfo((), ("urn:example:late",)))
        (answer,) = self.alice.elements()
        self.assertIn("urn:example:late", [f.getAttribute("var")
                                           for f in answer.firstChildElement().elements()])
