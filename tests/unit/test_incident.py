"""Incident reports (XEP-0268): the IODEF report format, and the incident plugin sharing reports
only with trusted server buddies and accepting them only from those."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from tests.trust_helpers import LOCAL, TrustFixture
from tests.unit.test_server_trust import logged_texts
from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IIncidentReports, IServerTrust, IXmppdPlugin
from xmppd.jid import parse_jid
from xmppd.plugins.incident import incident
from xmppd.trust.incidents import build_report, read_report
from xmppd.xml.stored import stanza_from_text, stanza_to_text

# XEP-0268 §3's example, shortened: what another server's report looks like.
SPEC_REPORT = """<report xmlns='urn:xmpp:incident:2'>
    <Incident xmlns='urn:ietf:params:xml:ns:iodef-1.0' purpose='reporting'>
      <IncidentID name='jabber.org'>4BF5D2CE-7C90-4860-BEF2-43A7D777D5FF</IncidentID>
      <StartTime>2009-04-13T19:05:20Z</StartTime>
      <ReportTime>2009-04-13T19:31:07Z</ReportTime>
      <Description xml:lang='en'>lots of MUC spammers from clueless.lit!</Description>
      <Assessment><Impact lang='en' severity='medium' completion='succeeded' type='dos'/>
      </Assessment>
    </Incident>
  </report>"""


def element(xml: str) -> domish.Element:
    parsed = stanza_from_text(xml)
    assert parsed is not None, xml
    return parsed


def iodef(parent: domish.Element, *path: str) -> list[domish.Element]:
    """The IODEF descendants of ``parent`` along ``path`` of element names."""
    found = [parent]
    for name in path:
        found = [c for e in found for c in e.elements() if (c.uri, c.name) == (ns.IODEF, name)]
    return found


def text(e: domish.Element) -> str:
    return "".join(c for c in e.children if isinstance(c, str))


class ReportFormatTests(TestCase):
    def test_the_spec_example_reads(self):
        summary = read_report(element(SPEC_REPORT))
        self.assertEqual(summary.incident_id, "4BF5D2CE-7C90-4860-BEF2-43A7D777D5FF")
        self.assertEqual(summary.description, "lots of MUC spammers from clueless.lit!")

    def test_what_we_build_is_the_spec_format_and_reads_back(self):
        report = build_report("example.org", "ID-1", "spam <again>", 1239650000.0,
                              [parse_jid("admin@example.org")],
                              [parse_jid("abuser@clueless.lit"), parse_jid("luser@clueless.lit")],
                              "high")
        # The way it goes over the wire and comes back: through our own parser.
        again = element(stanza_to_text(report))
        self.assertEqual((again.uri, again.name), (ns.INCIDENT, "report"))
        (incident_element,) = iodef(again, "Incident")
        self.assertEqual(incident_element["purpose"], "reporting")
        (incident_id,) = iodef(incident_element, "IncidentID")
        self.assertEqual((incident_id["name"], text(incident_id)), ("example.org", "ID-1"))
        self.assertEqual(text(iodef(incident_element, "ReportTime")[0]), "2009-04-13T19:13:20Z")
        (impact,) = iodef(incident_element, "Assessment", "Impact")
        self.assertEqual((impact["type"], impact["severity"]), ("unknown", "high"))
        contacts = iodef(incident_element, "Contact")
        self.assertEqual([(c["role"], c["type"]) for c in contacts],
                         [("creator", "organization"), ("admin", "person")])
        jid = next(next(contacts[1].elements()).elements())
        self.assertEqual((jid.uri, jid.name, text(jid)), (ns.XMPP_JID, "jid", "admin@example.org"))
        addresses = iodef(incident_element, "EventData", "Flow", "System", "Node", "Address")
        self.assertEqual([(a["ext-category"], text(a)) for a in addresses],
                         [("xmpp", "abuser@clueless.lit"), ("xmpp", "luser@clueless.lit")])
        self.assertEqual(read_report(again).description, "spam <again>")

    def test_bad_reports_are_bad_requests(self):
        for xml in ["<report xmlns='urn:xmpp:incident:2'/>",
                    "<report xmlns='urn:xmpp:incident:2'><Incident/></report>",
                    "<report xmlns='urn:xmpp:incident:2'>"
                    "<Incident xmlns='urn:ietf:params:xml:ns:iodef-1.0'/></report>",
                    "<report xmlns='urn:xmpp:incident:2'>"
                    "<Incident xmlns='urn:ietf:params:xml:ns:iodef-1.0'><IncidentID> </IncidentID>"
                    "</Incident></report>",
                    SPEC_REPORT.replace("</report>", SPEC_REPORT[SPEC_REPORT.index("<Incident"):
                                                                 SPEC_REPORT.index("</report>")]
                                        + "</report>")]:
            with self.assertRaises(StanzaError) as caught:
                read_report(element(xml))
            self.assertEqual(caught.exception.condition, "bad-request")

    def test_bad_arguments_are_value_errors(self):
        for description, severity in [("", None), ("  ", None), ("x" * 4001, None),
                                      ("spam", "catastrophic")]:
            with self.assertRaises(ValueError):
                build_report("example.org", "ID", description, 0.0, severity=severity)


class IncidentTestCase(TestCase):
    def setUp(self):
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        self.fixture = TrustFixture(directory, sections=getattr(self, "SECTIONS", ""))
        self.addCleanup(lambda: defer.ensureDeferred(self.fixture.stop()))
        return defer.ensureDeferred(self.fixture.start())

    @property
    def reports(self) -> IIncidentReports:
        return self.fixture.server.query(IIncidentReports)

    async def roster(self) -> None:
        """buddy.example is mutual; to/from/pending ones are not."""
        await self.fixture.make_buddy("buddy.example")
        await self.fixture.admin.trust_request("to.example")
        await self.fixture.receive("subscribed", "to.example")
        await self.fixture.receive("subscribe", "from.example")
        await self.fixture.admin.trust_approve("from.example")
        await self.fixture.receive("subscribe", "pending.example")
        self.fixture.remote.sent.clear()

    def iq_from(self, payload: str, sender: str, type: str = "set"):
        return self.fixture.inject(f"<iq type='{type}' id='r1'>{payload}</iq>", sender)

    def answers_to(self, domain: str) -> list[domish.Element]:
        return [e for e in self.fixture.sent_to(domain) if e.name == "iq"]


class SendingTests(IncidentTestCase):
    def test_interfaces(self):
        self.assertTrue(verifyObject(IXmppdPlugin, incident))
        self.assertTrue(verifyObject(IIncidentReports, self.reports))
        self.assertIn(ns.INCIDENT, self.fixture.server.features.features())

    async def test_a_report_goes_to_trusted_buddies_only(self):
        await self.roster()
        sent_to = await self.fixture.admin.incident_report(
            "MUC spam from clueless.lit", ["abuser@clueless.lit"], "medium")
        self.assertEqual(sent_to, ["buddy.example"])
        (iq,) = self.fixture.sent_to("buddy.example")
        self.assertEqual((iq.name, iq["type"], iq["from"], iq["to"]),
                         ("iq", "set", LOCAL, "buddy.example"))
        report = next(iq.elements())
        self.assertEqual(read_report(report).description, "MUC spam from clueless.lit")
        for stranger in ("to.example", "from.example", "pending.example"):
            self.assertEqual(self.fixture.sent_to(stranger), [], stranger)
        (kept,) = await self.fixture.admin.incident_list()
        self.assertEqual((kept["direction"], kept["domain"], kept["local"], kept["description"]),
                         ("sent", "buddy.example", LOCAL, "MUC spam from clueless.lit"))
        self.assertEqual(kept["incident_id"], read_report(report).incident_id)

    async def test_every_buddy_gets_its_own_copy(self):
        await self.fixture.make_buddy("a.example")
        await self.fixture.make_buddy("b.example")
        self.fixture.remote.sent.clear()
        self.assertEqual(await self.fixture.admin.incident_report("spam"),
                         ["a.example", "b.example"])
        (first,), (second,) = self.fixture.sent_to("a.example"), self.fixture.sent_to("b.example")
        self.assertIsNot(first, second)
        self.assertNotEqual(first["id"], second["id"])

    async def test_without_buddies_nothing_goes_out(self):
        await self.fixture.admin.trust_request("to.example")
        self.fixture.remote.sent.clear()
        self.assertEqual(await self.fixture.admin.incident_report("spam"), [])
        self.assertEqual(self.fixture.remote.sent, [])

    async def test_bad_arguments_fail_before_anything_is_sent(self):
        await self.fixture.make_buddy("buddy.example")
        self.fixture.remote.sent.clear()
        for args in [("",), ("spam", ["not a jid@@"]), ("spam", "abuser@clueless.lit"),
                     ("spam", (), "catastrophic")]:
            await self.assertFailure(self.fixture.admin.incident_report(*args), ValueError)
        self.assertEqual(self.fixture.remote.sent, [])
        self.assertEqual(await self.fixture.admin.incident_list(), [])


class ReceivingTests(IncidentTestCase):
    async def test_a_buddys_report_is_kept_answered_and_told(self):
        await self.roster()
        self.iq_from(SPEC_REPORT, "buddy.example")
        await _settled(lambda: self.answers_to("buddy.example"))
        (answer,) = self.answers_to("buddy.example")
        self.assertEqual((answer["type"], answer["id"], answer["to"]),
                         ("result", "r1", "buddy.example"))
        (kept,) = await self.fixture.admin.incident_list()
        self.assertEqual((kept["direction"], kept["domain"], kept["incident_id"]),
                         ("received", "buddy.example", "4BF5D2CE-7C90-4860-BEF2-43A7D777D5FF"))
        self.assertEqual(read_report(element(kept["report"])).description,
                         "lots of MUC spammers from clueless.lit!")
        messages = await self.fixture.admin_messages()
        self.assertIn("from buddy.example: lots of MUC spammers", messages[-1])

    async def test_anyone_else_is_forbidden_and_logged(self):
        await self.roster()
        lines = logged_texts(self)
        for sender in ("to.example", "from.example", "pending.example", "stranger.example",
                       "mallory@buddy.example", "buddy.example/res", f"alice@{LOCAL}"):
            self.fixture.remote.sent.clear()
            self.iq_from(SPEC_REPORT, sender)
            if "@" + LOCAL in sender:
                continue  # answered locally: nothing goes to federation
            (answer,) = self.answers_to(parse_jid(sender).host)
            self.assertEqual(answer["type"], "error", sender)
            self.assertEqual(error_condition(answer), "forbidden", sender)
        self.assertEqual(await self.fixture.admin.incident_list(), [])
        refusals = [line for line in lines if "not a trusted server buddy" in line]
        self.assertEqual(len(refusals), 7)
        self.assertIn("stranger.example", " ".join(refusals))

    async def test_a_revoked_buddy_is_refused_at_once(self):
        await self.fixture.make_buddy("buddy.example")
        await self.fixture.admin.trust_revoke("buddy.example")
        self.fixture.remote.sent.clear()
        self.iq_from(SPEC_REPORT, "buddy.example")
        self.assertEqual(error_condition(self.answers_to("buddy.example")[0]), "forbidden")

    async def test_a_malformed_report_from_a_buddy_is_a_bad_request(self):
        await self.fixture.make_buddy("buddy.example")
        self.fixture.remote.sent.clear()
        self.iq_from("<report xmlns='urn:xmpp:incident:2'/>", "buddy.example")
        await _settled(lambda: self.answers_to("buddy.example"))
        self.assertEqual(error_condition(self.answers_to("buddy.example")[0]), "bad-request")
        self.assertEqual(await self.fixture.admin.incident_list(), [])

    async def test_other_interactions(self):
        await self.roster()
        for payload, type in [("<inquiry xmlns='urn:xmpp:incident:2'/>", "get"),
                              ("<request xmlns='urn:xmpp:incident:2'/>", "get"),
                              ("<response xmlns='urn:xmpp:incident:2'/>", "set")]:
            self.fixture.remote.sent.clear()
            self.iq_from(payload, "buddy.example", type)
            self.iq_from(payload, "stranger.example", type)
            self.assertEqual(error_condition(self.answers_to("buddy.example")[0]),
                             "feature-not-implemented")
            self.assertEqual(error_condition(self.answers_to("stranger.example")[0]),
                             "forbidden")


class RateLimitTests(IncidentTestCase):
    SECTIONS = "[plugins.incident]\nrate_limit = 2\nrate_period = 60\n"

    async def test_a_buddy_flooding_reports_is_told_to_wait(self):
        await self.fixture.make_buddy("buddy.example")
        self.fixture.remote.sent.clear()
        for _ in range(4):
            self.iq_from(SPEC_REPORT, "buddy.example")
        await _settled(lambda: len(self.answers_to("buddy.example")) == 4)
        answers = self.answers_to("buddy.example")
        self.assertEqual(sorted(a["type"] for a in answers), ["error", "error", "result",
                                                              "result"])
        errors = [error_condition(a) for a in answers if a["type"] == "error"]
        self.assertEqual(errors, ["resource-constraint"] * 2)
        self.assertEqual(len(await self.fixture.admin.incident_list()), 2)


class NeedsServerTrustTests(TestCase):
    async def test_the_incident_plugin_requires_server_trust(self):
        from xmppd.registry import PluginError

        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        fixture = TrustFixture(directory, plugins=("incident",))
        error = await self.assertFailure(defer.ensureDeferred(fixture.start()), PluginError)
        self.assertIn("requires 'server_trust'", str(error))
        self.assertIsNone(fixture.server.query(IServerTrust))
        await fixture.storage.close()


def error_condition(answer: domish.Element) -> str:
    error = next(c for c in answer.elements() if c.name == "error")
    return next(c.name for c in error.elements() if c.uri == ns.STANZA_ERRORS)


async def _settled(done=lambda: True, timeout: float = 5.0) -> None:
    """Storage answers from a thread: give it the real reactor until ``done()``."""
    from twisted.internet import reactor, task

    waited = 0.0
    while True:
        await task.deferLater(reactor, 0.02, lambda: None)
        waited += 0.02
        if done() or waited >= timeout:
            return
