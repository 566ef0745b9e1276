"""XEP-0357 push on a real server (real streams, real SQLite, a Clock): enable and disable
with their errors, when a notification goes out (no session, or only hibernated ones; not
with a live one), what it says (summary, no body unless configured, the stored publish
options), the rate limit, an app server's error disabling the registration, and the
registrations surviving a reload of the plugin.

The app server is a client of another local account, ``app@localhost/pushd``, that reads
the publish IQ and answers it as a test decides."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from tests.devices_case import DevicesCase, error_condition
from tests.helpers import StreamHarness
from xmppd import ns
from xmppd.forms import find_form
from xmppd.options import PluginOptions
from xmppd.plugins.push import STORE, PushSettings, push, registration_key

APP = "app@localhost/pushd"
ENABLE = f"<enable xmlns='{ns.PUSH}' jid='{APP}' node='n1'/>"
OPTIONS = (f"<x xmlns='jabber:x:data' type='submit'>"
           f"<field var='FORM_TYPE'><value>{ns.PUBSUB_PUBLISH_OPTIONS}</value></field>"
           f"<field var='secret'><value>s3cr3t</value></field></x>")
ENABLE_WITH_OPTIONS = f"<enable xmlns='{ns.PUSH}' jid='{APP}' node='n1'>{OPTIONS}</enable>"


def publishes(elements: list) -> list[domish.Element]:
    return [e for e in elements if e.name == "iq" and e.getAttribute("type") == "set"
            and any(c.uri == ns.PUBSUB for c in e.elements())]


def summary(iq: domish.Element) -> dict[str, tuple[str, ...]]:
    (pubsub,) = iq.elements(ns.PUBSUB, "pubsub")
    (publish,) = pubsub.elements(ns.PUBSUB, "publish")
    (item,) = publish.elements(ns.PUBSUB, "item")
    (notification,) = item.elements(ns.PUSH, "notification")
    form = find_form(notification)
    assert form.form_type == ns.PUSH_SUMMARY and form.type == "submit"
    return {var: field.values for var, field in form.fields.items() if var != "FORM_TYPE"}


def publish_options(iq: domish.Element) -> dict[str, tuple[str, ...]] | None:
    (pubsub,) = iq.elements(ns.PUBSUB, "pubsub")
    found = list(pubsub.elements(ns.PUBSUB, "publish-options"))
    if not found:
        return None
    form = find_form(found[0])
    assert form.form_type == ns.PUBSUB_PUBLISH_OPTIONS
    return {var: field.values for var, field in form.fields.items() if var != "FORM_TYPE"}


def chat(to: str, body: str, id: str = "m1") -> str:
    return f"<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>"


class PushCase(DevicesCase):
    enabled = ("push",)
    users = ("alice", "bob", "app")
    sections = {"push": {"min_interval": 60}}

    async def started(self) -> None:
        await super().started()
        self.app = await self.online("app", "pushd")
        self.bob = await self.online("bob", "desk")

    async def register(self, payload: str = ENABLE, resource: str = "phone") -> StreamHarness:
        phone = await self.online("alice", resource)
        answer = await self.ask(phone, "set", payload)
        self.assertEqual(answer["type"], "result", answer.toXml())
        return phone

    async def hibernate(self, phone: StreamHarness) -> None:
        """XEP-0198 on, then the connection lost: the session stays, hibernating."""
        phone.feed(f"<enable xmlns='{ns.SM}' resume='true'/>")
        await phone.wait_for_element("enabled")
        session = phone.stream.session
        phone.stream.connectionLost(None)
        self.assertTrue(session.hibernating)
        self.clients.remove(phone)

    async def registered_offline(self, payload: str = ENABLE) -> None:
        phone = await self.register(payload)
        phone.feed("</stream:stream>")
        self.clients.remove(phone)
        await self.settle(self.bob)

    async def next_publish(self) -> domish.Element:
        got = await self.wait(self.app, lambda e: bool(publishes([e])))
        (iq,) = publishes(got)
        return iq

    async def answer(self, iq: domish.Element, error: str | None = None) -> None:
        if error is None:
            self.app.feed(f"<iq type='result' id='{iq['id']}' to='{iq['from']}'/>")
        else:
            self.app.feed(f"<iq type='error' id='{iq['id']}' to='{iq['from']}'>"
                          f"<error type='cancel'><{error} xmlns='{ns.STANZA_ERRORS}'/>"
                          f"</error></iq>")
        await self.settle(self.app)

    async def stored(self) -> dict:
        return await self.fixture.storage.open_store(STORE, "map").items("alice@localhost")


class EnableTests(PushCase):
    async def test_enable_stores_the_registration_with_its_options(self):
        await self.register(ENABLE_WITH_OPTIONS)
        self.assertEqual(await self.stored(), {registration_key(APP, "n1"): {
            "jid": APP, "node": "n1", "options": [["secret", ["s3cr3t"]]]}})

    async def test_enable_again_replaces_and_another_node_adds(self):
        phone = await self.register(ENABLE_WITH_OPTIONS)
        for payload in (ENABLE, ENABLE.replace("n1", "n2")):
            self.assertEqual((await self.ask(phone, "set", payload))["type"], "result")
        stored = await self.stored()
        self.assertEqual(sorted(stored), [registration_key(APP, "n1"),
                                          registration_key(APP, "n2")])
        self.assertIsNone(stored[registration_key(APP, "n1")]["options"])

    async def test_malformed_jid_missing_jid_missing_node_and_a_bad_form(self):
        phone = await self.online("alice", "phone")
        cases = {
            f"<enable xmlns='{ns.PUSH}' jid='@@bad@' node='n1'/>": "jid-malformed",
            f"<enable xmlns='{ns.PUSH}' node='n1'/>": "bad-request",
            f"<enable xmlns='{ns.PUSH}' jid='{APP}'/>": "bad-request",
            f"<enable xmlns='{ns.PUSH}' jid='{APP}' node='n1'>"
            f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
            f"<value>urn:other</value></field></x></enable>": "bad-request",
            f"<disable xmlns='{ns.PUSH}' node='n1'/>": "bad-request",
            f"<disable xmlns='{ns.PUSH}' jid='@@bad@'/>": "jid-malformed",
        }
        for payload, condition in cases.items():
            self.assertEqual(error_condition(await self.ask(phone, "set", payload)),
                             condition, payload)
        self.assertEqual(await self.stored(), {})

    async def test_for_another_account_is_not_allowed(self):
        phone = await self.online("alice", "phone")
        answer = await self.ask(phone, "set", ENABLE, to="bob@localhost")
        self.assertEqual(error_condition(answer), "not-allowed")

    async def test_disable_one_node_or_every_node_of_the_app_server(self):
        phone = await self.register()
        for node in ("n2", "n3"):
            await self.ask(phone, "set", ENABLE.replace("n1", node))
        await self.ask(phone, "set", f"<disable xmlns='{ns.PUSH}' jid='{APP}' node='n2'/>")
        self.assertEqual(sorted(await self.stored()), [registration_key(APP, "n1"),
                                                       registration_key(APP, "n3")])
        answer = await self.ask(phone, "set", f"<disable xmlns='{ns.PUSH}' jid='{APP}'/>")
        self.assertEqual(answer["type"], "result")
        self.assertEqual(await self.stored(), {})

    async def test_advertised_on_the_account(self):
        phone = await self.online("alice", "phone")
        answer = await self.ask(phone, "get", f"<query xmlns='{ns.DISCO_INFO}'/>",
                                to="alice@localhost")
        (query,) = answer.elements(ns.DISCO_INFO, "query")
        self.assertIn(ns.PUSH, {f["var"] for f in query.elements() if f.name == "feature"})


class NotifyTests(PushCase):
    async def test_no_session_pushes_a_summary_without_body_and_the_message_is_kept(self):
        await self.registered_offline(ENABLE_WITH_OPTIONS)
        self.bob.feed(chat("alice@localhost", "a secret body"))
        iq = await self.next_publish()
        self.assertEqual((iq["from"], iq["to"]), ("alice@localhost", APP))
        (publish,) = next(iq.elements(ns.PUBSUB, "pubsub")).elements(ns.PUBSUB, "publish")
        self.assertEqual(publish["node"], "n1")
        self.assertEqual(summary(iq), {"message-count": ("1",),
                                       "last-message-sender": ("bob@localhost/desk",)})
        self.assertNotIn("a secret body", iq.toXml())
        self.assertEqual(publish_options(iq), {"secret": ("s3cr3t",)})
        await self.answer(iq)
        self.assertEqual(len(await self.stored()), 1)
        count = await self.fixture.storage.offline.count("alice", "localhost")
        self.assertEqual(count, 1)  # delivery went on: kept offline

    async def test_only_hibernated_sessions_push_and_still_get_the_message(self):
        phone = await self.register()
        await self.hibernate(phone)
        self.bob.feed(chat("alice@localhost/phone", "hi"))
        iq = await self.next_publish()
        self.assertEqual(summary(iq)["message-count"], ("1",))
        self.assertIsNone(publish_options(iq))

    async def test_a_rooms_message_to_a_hibernated_resource_pushes(self):
        phone = await self.register()
        await self.hibernate(phone)
        self.bob.feed("<message to='alice@localhost/phone' type='groupchat' id='g1'>"
                      "<subject>no content: no push</subject></message>")
        await self.settle(self.bob)
        self.assertEqual(publishes(self.app.elements()), [])
        self.bob.feed("<message to='alice@localhost/phone' type='groupchat' id='g2'>"
                      "<body>in the room</body></message>")
        iq = await self.next_publish()
        self.assertEqual(summary(iq)["message-count"], ("1",))

    async def test_a_rooms_message_to_a_live_resource_does_not_push(self):
        await self.register()
        self.bob.feed("<message to='alice@localhost/phone' type='groupchat' id='g1'>"
                      "<body>in the room</body></message>")
        await self.settle(self.bob)
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])

    async def test_a_live_session_means_no_push(self):
        phone = await self.register()
        await self.hibernate(phone)
        await self.online("alice", "laptop")
        self.bob.feed(chat("alice@localhost", "hi"))
        await self.settle(self.bob)
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])

    async def test_chat_states_are_not_worth_a_push(self):
        await self.registered_offline()
        self.bob.feed("<message to='alice@localhost' type='chat'>"
                      "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        await self.settle(self.bob)
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])

    async def test_a_burst_makes_one_push_and_one_more_at_the_end_of_the_interval(self):
        await self.registered_offline()
        self.bob.feed(chat("alice@localhost", "one", "m1"))
        await self.answer(await self.next_publish())
        for n in range(2, 5):
            self.bob.feed(chat("alice@localhost", str(n), f"m{n}"))
        await self.settle(self.bob)
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])
        self.clock.advance(59)
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])
        self.clock.advance(1)
        iq = await self.next_publish()
        self.assertEqual(summary(iq)["message-count"], ("4",))  # all since alice left
        self.assertEqual(summary(iq)["last-message-sender"], ("bob@localhost/desk",))
        await self.answer(iq)
        self.clock.advance(120)  # nothing new: nothing more
        await self.settle(self.bob)
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])
        self.bob.feed(chat("alice@localhost", "five", "m5"))
        self.assertEqual(summary(await self.next_publish())["message-count"], ("5",))

    async def test_a_session_back_online_starts_the_count_and_the_limit_over(self):
        await self.registered_offline()
        self.bob.feed(chat("alice@localhost", "one", "m1"))
        await self.answer(await self.next_publish())
        self.bob.feed(chat("alice@localhost", "two", "m2"))  # waits for the interval's end
        await self.settle(self.bob)
        phone = await self.online("alice", "phone")
        phone.feed("</stream:stream>")
        self.clients.remove(phone)
        self.clock.advance(60)  # alice read them: the push due now is not sent
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])
        self.bob.feed(chat("alice@localhost", "three", "m3"))
        iq = await self.next_publish()  # within min_interval of the first: a new wake-up
        self.assertEqual(summary(iq)["message-count"], ("1",))

    async def test_an_error_from_the_app_server_disables_the_registration(self):
        await self.registered_offline()
        self.bob.feed(chat("alice@localhost", "one"))
        await self.answer(await self.next_publish(), "item-not-found")
        for _ in range(100):
            if not await self.stored():
                break
            await self.settle(self.app)
        self.assertEqual(await self.stored(), {})
        self.clock.advance(60)
        self.bob.feed(chat("alice@localhost", "two", "m2"))
        await self.settle(self.bob)
        await self.settle(self.app)
        self.assertEqual(publishes(self.app.elements()), [])

    async def test_a_timeout_keeps_the_registration(self):
        await self.registered_offline()
        self.bob.feed(chat("alice@localhost", "one"))
        await self.next_publish()
        self.clock.advance(31)
        await self.settle(self.app)
        self.assertEqual(len(await self.stored()), 1)

    async def test_registrations_survive_a_reload(self):
        await self.registered_offline()
        await self.fixture.registry.reload("push")
        self.bob.feed(chat("alice@localhost", "one"))
        iq = await self.next_publish()
        self.assertEqual(iq["to"], APP)

    async def test_a_stopped_plugin_sends_no_push_left_for_the_interval_end(self):
        await self.registered_offline()
        self.bob.feed(chat("alice@localhost", "one", "m1"))
        await self.answer(await self.next_publish())
        self.bob.feed(chat("alice@localhost", "two", "m2"))
        await self.settle(self.bob)
        due = [call for call in self.clock.getDelayedCalls()
               if getattr(call.func, "__name__", "") == "_interval_over"]
        self.assertEqual(len(due), 1)
        self.fixture.registry.stop("push")
        self.assertFalse(due[0].active())


class LimitTests(PushCase):
    sections = {"push": {"max_registrations": 1}}

    async def test_at_most_max_registrations_but_one_may_be_enabled_again(self):
        phone = await self.register()
        answer = await self.ask(phone, "set", ENABLE.replace("n1", "n2"))
        self.assertEqual(error_condition(answer), "resource-constraint")
        self.assertEqual((await self.ask(phone, "set", ENABLE_WITH_OPTIONS))["type"], "result")
        self.assertEqual(len(await self.stored()), 1)


class BodyTests(PushCase):
    sections = {"push": {"include_body": True}}

    async def test_the_body_when_configured(self):
        await self.registered_offline()
        self.bob.feed(chat("alice@localhost", "hello there"))
        iq = await self.next_publish()
        self.assertEqual(summary(iq)["last-message-body"], ("hello there",))


class ConfigureTests(SynchronousTestCase):
    def test_defaults_and_bad_values_stop_start_up(self):
        self.assertEqual(push.configure(PluginOptions("push", {})),
                         PushSettings(include_body=False, min_interval=30, timeout=30,
                                      max_registrations=10))
        for section in ({"include_body": "yes"}, {"min_interval": -1}, {"timeout": 0},
                        {"max_registrations": 0}, {"body": True}):
            with self.assertRaises(ValueError, msg=section):
                push.configure(PluginOptions("push", section))
