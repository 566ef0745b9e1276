"""XEP-0077 in-band registration (xmppd.plugins.register) over in-memory streams: the
pre-auth seam of the client stream, invitations (XEP-0401/0445), the per-IP limit, and the
owner's password change and removal."""

from __future__ import annotations

from twisted.internet import defer

from tests.helpers import StreamHarness
from tests.plugin_case import PASSWORD, PluginServerCase
from xmppd import events, ns
from xmppd.plugins.register import RateLimiter, _host

NEW_PASSWORD = "a brand new passphrase"
REG_NS = ns.REGISTER


def register_iq(username: str, password: str, token: str | None = None,
                iq_id: str = "reg1") -> str:
    token_xml = f"<token>{token}</token>" if token is not None else ""
    return (f"<iq type='set' id='{iq_id}'><query xmlns='{REG_NS}'><username>{username}"
            f"</username><password>{password}</password>{token_xml}</query></iq>")


class RegisterCase(PluginServerCase):
    enabled = ("register",)
    sections = {"register": {"open": True, "per_ip": 3, "period": 600}}

    def stream(self, secure: bool = True) -> StreamHarness:
        """A fresh stream, header sent and its features read."""
        harness = StreamHarness(self.server, direct_tls=secure)
        harness.header()
        harness.features = [v for k, v in harness.events() if k == "element"][0]
        return harness

    async def answer(self, harness: StreamHarness, xml: str):
        harness.feed(xml)
        return await harness.wait_for_element("iq")

    async def register(self, username: str, password: str = PASSWORD,
                       token: str | None = None):
        harness = self.stream()
        return await self.answer(harness, register_iq(username, password, token))

    async def login_works(self, username: str, password: str) -> bool:
        harness = StreamHarness(self.server, direct_tls=True)
        try:
            await harness.login(username, password)
        except AssertionError:
            return False
        return True


def condition(iq) -> str | None:
    if iq["type"] != "error":
        return None
    error = next(child for child in iq.elements() if child.name == "error")
    return next(error.elements()).name


def feature_names(features) -> set[tuple[str, str]]:
    return {(child.uri, child.name) for child in features.elements()}


class OpenRegistrationTests(RegisterCase):
    def test_feature_offered_only_on_encrypted_streams(self):
        secure = self.stream(secure=True)
        self.assertIn((ns.REGISTER_FEATURE, "register"), feature_names(secure.features))
        plain = self.stream(secure=False)
        self.assertNotIn((ns.REGISTER_FEATURE, "register"), feature_names(plain.features))

    async def test_iq_before_auth_on_plain_stream_is_refused(self):
        plain = self.stream(secure=False)
        plain.feed(register_iq("bob", PASSWORD))
        self.assertEqual(plain.stream_error(), "not-authorized")

    async def test_form(self):
        harness = self.stream()
        iq = await self.answer(harness, f"<iq type='get' id='f'><query xmlns='{REG_NS}'/></iq>")
        self.assertEqual(iq["type"], "result")
        query = next(iq.elements())
        names = {child.name for child in query.elements()}
        self.assertTrue({"username", "password", "x"} <= names)
        form = next(child for child in query.elements() if child.name == "x")
        self.assertNotIn("token", {field.getAttribute("var") for field in form.elements()})

    async def test_register_then_log_in_with_scram(self):
        created = []
        self.server.events.on(events.USER_CREATED, created.append)
        iq = await self.register("Bob")
        self.assertEqual(iq["type"], "result", iq.toXml())
        self.assertTrue(await self.server.storage.users.user_exists("bob", "localhost"))
        self.assertEqual([jid.full() for jid in created], ["bob@localhost"])
        self.assertTrue(await self.login_works("bob", PASSWORD))

    async def test_register_with_a_data_form(self):
        harness = self.stream()
        iq = await self.answer(harness, (
            f"<iq type='set' id='r'><query xmlns='{REG_NS}'><x xmlns='jabber:x:data' "
            f"type='submit'><field var='FORM_TYPE'><value>{REG_NS}</value></field>"
            f"<field var='username'><value>carol</value></field><field var='password'>"
            f"<value>{PASSWORD}</value></field></x></query></iq>"))
        self.assertEqual(iq["type"], "result", iq.toXml())
        self.assertTrue(await self.login_works("carol", PASSWORD))

    async def test_conflict(self):
        iq = await self.register("alice")
        self.assertEqual(condition(iq), "conflict")

    async def test_bad_username(self):
        for username in ("", "bad@name", "spa ce"):
            iq = await self.register(username)
            self.assertEqual(condition(iq), "not-acceptable", username)

    async def test_short_or_empty_password(self):
        for password in ("", "short"):
            iq = await self.register("dave", password)
            self.assertEqual(condition(iq), "not-acceptable", password)

    async def test_rate_limit_from_one_address(self):
        for number in range(3):
            iq = await self.register(f"user{number}")
            self.assertEqual(iq["type"], "result", iq.toXml())
        flood = await self.register("user3")
        self.assertEqual(condition(flood), "policy-violation")
        self.assertFalse(await self.server.storage.users.user_exists("user3", "localhost"))
        self.clock.advance(601)
        iq = await self.register("user3")
        self.assertEqual(iq["type"], "result", iq.toXml())

    async def test_password_change_then_old_password_fails(self):
        harness = StreamHarness(self.server, direct_tls=True)
        await harness.login("alice", PASSWORD)
        iq = await self.answer(harness, (
            f"<iq type='set' id='pw'><query xmlns='{REG_NS}'><username>alice</username>"
            f"<password>{NEW_PASSWORD}</password></query></iq>"))
        self.assertEqual(iq["type"], "result", iq.toXml())
        self.assertFalse(await self.login_works("alice", PASSWORD))
        self.assertTrue(await self.login_works("alice", NEW_PASSWORD))

    async def test_password_change_for_another_user_is_refused(self):
        harness = StreamHarness(self.server, direct_tls=True)
        await harness.login("alice", PASSWORD)
        iq = await self.answer(harness, (
            f"<iq type='set' id='pw'><query xmlns='{REG_NS}'><username>bob</username>"
            f"<password>{NEW_PASSWORD}</password></query></iq>"))
        self.assertEqual(condition(iq), "not-allowed")

    async def test_remove_deletes_the_account_and_closes_the_stream(self):
        deleted = []
        self.server.events.on(events.USER_DELETED, deleted.append)
        harness = StreamHarness(self.server, direct_tls=True)
        await harness.login("alice", PASSWORD)
        iq = await self.answer(harness, (
            f"<iq type='set' id='rm'><query xmlns='{REG_NS}'><remove/></query></iq>"))
        self.assertEqual(iq["type"], "result", iq.toXml())
        self.clock.advance(0)
        for _ in range(500):
            if deleted:
                break
            await _tick()
        self.assertEqual([jid.full() for jid in deleted], ["alice@localhost"])
        self.assertFalse(await self.server.storage.users.user_exists("alice", "localhost"))
        self.assertTrue(harness.closed)
        self.assertFalse(await self.login_works("alice", PASSWORD))


class InvitationTests(RegisterCase):
    sections = {"register": {"per_ip": 100}}  # closed: the default

    def invite(self, user: str | None = None) -> defer.Deferred:
        command = self.server.admin_commands.get("invite")
        return defer.maybeDeferred(command.handler, *((user,) if user else ()))

    def test_feature_hidden_when_closed_but_token_feature_offered(self):
        names = feature_names(self.stream().features)
        self.assertNotIn((ns.REGISTER_FEATURE, "register"), names)
        self.assertIn((ns.IBR_TOKEN, "register"), names)

    async def test_form_asks_for_a_token(self):
        harness = self.stream()
        iq = await self.answer(harness, f"<iq type='get' id='f'><query xmlns='{REG_NS}'/></iq>")
        form = next(child for child in next(iq.elements()).elements() if child.name == "x")
        self.assertIn("token", {field.getAttribute("var") for field in form.elements()})

    async def test_closed_without_token(self):
        iq = await self.register("bob")
        self.assertEqual(condition(iq), "not-allowed")
        iq = await self.register("bob", token="not-a-token")
        self.assertEqual(condition(iq), "not-allowed")

    async def test_token_works_once(self):
        invitation = await self.invite()
        self.assertTrue(invitation["uri"].startswith("xmpp:localhost?register;preauth="))
        self.assertIn(invitation["token"], invitation["uri"])
        iq = await self.register("bob", token=invitation["token"])
        self.assertEqual(iq["type"], "result", iq.toXml())
        again = await self.register("carol", token=invitation["token"])
        self.assertEqual(condition(again), "not-allowed")

    async def test_token_is_stored_hashed(self):
        invitation = await self.invite()
        store = self.server.storage.open_store("register_invites", "map")
        keys = await store.keys("localhost")
        self.assertEqual(len(keys), 1)
        self.assertNotIn(invitation["token"], keys[0])

    async def test_token_expired(self):
        invitation = await self.invite()
        self.clock.advance(7 * 24 * 3600 + 1)
        iq = await self.register("bob", token=invitation["token"])
        self.assertEqual(condition(iq), "not-allowed")

    async def test_failed_attempt_keeps_the_token(self):
        invitation = await self.invite()
        bad = await self.register("bob", "short", token=invitation["token"])
        self.assertEqual(condition(bad), "not-acceptable")
        iq = await self.register("bob", token=invitation["token"])
        self.assertEqual(iq["type"], "result", iq.toXml())

    async def test_preauth_then_register(self):
        invitation = await self.invite()
        harness = self.stream()
        iq = await self.answer(harness, (
            f"<iq type='set' id='pa'><preauth xmlns='{ns.PARS}' "
            f"token='{invitation['token']}'/></iq>"))
        self.assertEqual(iq["type"], "result", iq.toXml())
        iq = await self.answer(harness, register_iq("bob", PASSWORD))
        self.assertEqual(iq["type"], "result", iq.toXml())
        self.assertTrue(await self.login_works("bob", PASSWORD))

    async def test_preauth_with_unknown_token(self):
        harness = self.stream()
        iq = await self.answer(harness, (
            f"<iq type='set' id='pa'><preauth xmlns='{ns.PARS}' token='nope'/></iq>"))
        self.assertEqual(condition(iq), "item-not-found")

    async def test_invitation_for_a_username_reserves_it(self):
        invitation = await self.invite("bob")
        self.assertTrue(invitation["uri"].startswith("xmpp:bob@localhost?register;preauth="))
        other = await self.invite()
        taken = await self.register("bob", token=other["token"])
        self.assertEqual(condition(taken), "conflict")
        wrong = await self.register("carol", token=invitation["token"])
        self.assertEqual(condition(wrong), "not-allowed")
        iq = await self.register("bob", token=invitation["token"])
        self.assertEqual(iq["type"], "result", iq.toXml())

    async def test_invite_for_an_existing_account_is_refused(self):
        with self.assertRaises(ValueError):
            await self.invite("alice")


class SeamTests(RegisterCase):
    """The c2s pre-auth seam the plugin uses: claimed only while it is loaded, one plugin
    per namespace, features only before authentication."""

    def test_stopping_the_plugin_removes_its_features_and_claims(self):
        self.fixture.registry.stop("register")
        names = feature_names(self.stream().features)
        self.assertNotIn((ns.REGISTER_FEATURE, "register"), names)
        self.assertNotIn((ns.IBR_TOKEN, "register"), names)
        harness = self.stream()
        harness.feed(register_iq("bob", PASSWORD))
        self.assertEqual(harness.stream_error(), "not-authorized")

    def test_a_namespace_is_claimed_once(self):
        with self.assertRaises(ValueError):
            self.server.c2s_hooks.claim_iq_before_auth(ns.REGISTER, lambda element, stream: None)

    async def test_features_after_authentication_do_not_offer_registration(self):
        harness = StreamHarness(self.server, direct_tls=True)
        await harness.authenticate("alice", PASSWORD)
        names = feature_names(harness.bind_features)
        self.assertNotIn((ns.REGISTER_FEATURE, "register"), names)
        self.assertNotIn((ns.IBR_TOKEN, "register"), names)

    async def test_registration_get_after_login_says_registered(self):
        harness = StreamHarness(self.server, direct_tls=True)
        await harness.login("alice", PASSWORD)
        iq = await self.answer(harness, f"<iq type='get' id='g'><query xmlns='{REG_NS}'/></iq>")
        names = {child.name: str(child) for child in next(iq.elements()).elements()}
        self.assertEqual(names, {"registered": "", "username": "alice"})


class HelperTests(PluginServerCase):
    users = ()

    def test_rate_limiter_window(self):
        limiter = RateLimiter(self.clock, 2, 10)
        for _ in range(2):
            self.assertTrue(limiter.allowed("a"))
            limiter.record("a")
        self.assertFalse(limiter.allowed("a"))
        self.assertTrue(limiter.allowed("b"))
        self.clock.advance(10)
        self.assertTrue(limiter.allowed("a"))

    def test_host_of_peer_address(self):
        self.assertEqual(_host("203.0.113.5:40000"), "203.0.113.5")
        self.assertEqual(_host("2001:db8::1:40000"), "2001:db8::1")

    def test_plugin_is_not_loaded_by_default(self):
        self.assertNotIn("register", self.server.config.plugins.enabled)


async def _tick() -> None:
    from twisted.internet import reactor, task

    await task.deferLater(reactor, 0.01, lambda: None)
