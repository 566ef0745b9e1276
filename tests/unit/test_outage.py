"""XEP-0455 outage status on a real server: the sos form in the host's disco#info, the admin
commands writing the status file (and refusing bad input), the file written again at start
from the store, and the options checked before start-up."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.devices_case import DevicesCase
from tests.sample_examples import sample_section
from xmppd.forms import extended_info
from xmppd.options import PluginOptions
from xmppd.plugins.outage import NS_SOS, OutageStatus, status_document

ADDRESS = "https://status.example.org/xmpp.json"
DISCO = "<query xmlns='http://jabber.org/protocol/disco#info'/>"


class OutageServerTests(DevicesCase):
    enabled = ("outage",)
    users = ("alice",)

    def setUp(self):
        self.status = Path(self.mktemp())
        self.status.parent.mkdir(parents=True, exist_ok=True)
        self.sections = {"outage": {"addresses": [ADDRESS, "http://backup.example.net/s.json"],
                                    "status_file": str(self.status)}}
        return super().setUp()

    def command(self, name: str, *words: str):
        return self.server.admin_commands.get(name).handler(*words)

    def published(self) -> dict:
        return json.loads(self.status.read_text())

    async def test_the_form_in_the_host_disco(self):
        alice = await self.online("alice", "phone")
        answer = await self.ask(alice, "get", DISCO, to="localhost")
        self.assertEqual(answer["type"], "result")
        forms = [form for form in extended_info(next(answer.elements()))
                 if form.form_type == NS_SOS]
        self.assertEqual(len(forms), 1)
        self.assertEqual(forms[0].fields["external-status-addresses"].type, "list-multi")
        self.assertEqual(forms[0].get_values("external-status-addresses"),
                         (ADDRESS, "http://backup.example.net/s.json"))

    async def test_the_file_is_empty_at_start(self):
        self.assertEqual(self.published(), {})

    async def test_set_then_clear(self):
        shown = await self.command("outage set", "planned", "Upgrade to the new version",
                                   "2026-12-06T08:00:00Z", "2026-12-06T09:30:00Z")
        expected = {"planned": True, "beginning": "2026-12-06T08:00:00Z",
                    "expected_end": "2026-12-06T09:30:00Z",
                    "message": {"default": "Upgrade to the new version"}}
        self.assertEqual(shown, expected)
        self.assertEqual(self.published(), expected)
        self.assertEqual(await self.command("outage show"), expected)
        await self.command("outage clear")
        self.assertEqual(self.published(), {})
        self.assertEqual(await self.command("outage show"), "no outage published")

    async def test_unplanned_from_now_without_an_end(self):
        self.clock.advance(1_800_000_000)
        await self.command("outage set", "unplanned", "Database trouble")
        self.assertEqual(self.published(), {"planned": False,
                                            "beginning": "2027-01-15T08:00:00Z",
                                            "message": {"default": "Database trouble"}})

    async def test_bad_words_are_the_operators_mistake(self):
        for words in (("soon", "x"), ("planned", "  "), ("planned", "x", "tomorrow"),
                      ("planned", "x", "2026-12-06T08:00:00"),
                      ("planned", "x", "2026-12-06T08:00:00Z", "2026-12-06T07:00:00Z")):
            with self.assertRaises(ValueError):
                await self.command("outage set", *words)
        self.assertEqual(self.published(), {})

    async def test_a_restart_writes_the_stored_outage_again(self):
        await self.command("outage set", "planned", "Moving", "2026-12-06T08:00:00Z")
        self.status.unlink()
        plugin = self.fixture.registry
        await plugin.reload("outage")
        self.assertEqual(self.published()["message"], {"default": "Moving"})


class OutageOptionTests(SynchronousTestCase):
    def configure(self, **section):
        return OutageStatus().configure(PluginOptions("outage", section))

    def test_the_sample_config_example(self):
        # /var/www/status need not exist on the test machine: the rest is checked.
        settings = self.configure(**dict(sample_section("outage"), status_file=""))
        self.assertEqual(settings.addresses, ("https://status.example.org/xmpp.json",))

    def test_addresses_are_required_http_urls(self):
        for bad in (None, [], "https://a.example/s.json", ["ftp://a.example/s.json"],
                    ["https://"], [3]):
            with self.assertRaises(ValueError) as caught:
                self.configure(addresses=bad)
            self.assertIn("[plugins.outage] addresses", str(caught.exception))

    def test_unknown_key_and_missing_directory(self):
        with self.assertRaises(ValueError):
            self.configure(addresses=[ADDRESS], color="red")
        with self.assertRaises(ValueError) as caught:
            self.configure(addresses=[ADDRESS], status_file="/nonexistent/dir/s.json")
        self.assertIn("status_file", str(caught.exception))

    def test_defaults(self):
        settings = self.configure(addresses=[ADDRESS])
        self.assertEqual((settings.addresses, settings.status_file), ((ADDRESS,), None))

    def test_without_a_status_file_the_commands_refuse(self):
        plugin = OutageStatus()
        plugin.settings = self.configure(addresses=[ADDRESS])
        for command, words in ((plugin.set_outage, ("planned", "x")), (plugin.clear_outage, ())):
            failure = self.failureResultOf(command(*words), ValueError)
            self.assertIn("status_file", str(failure.value))

    def test_no_outage_is_an_empty_object(self):
        self.assertEqual(status_document(None), {})
