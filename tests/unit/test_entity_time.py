"""XEP-0202 entity time at the host, on a real server whose reactor is a Clock: the answer's
shape, its XEP-0082 UTC text, and the disco feature."""

from __future__ import annotations

from datetime import datetime

from twisted.trial.unittest import SynchronousTestCase as SyncTestCase

from tests.devices_case import DevicesCase
from xmppd import ns
from xmppd.plugins.time import xep0082_utc

TIME = "<time xmlns='urn:xmpp:time'/>"


class FormatTests(SyncTestCase):
    def test_utc_text(self):
        self.assertEqual(xep0082_utc(0), "1970-01-01T00:00:00Z")
        self.assertEqual(xep0082_utc(1_000_000_000.25), "2001-09-09T01:46:40.250Z")

    def test_utc_text_reads_back(self):
        stamp = 1_786_000_000.5
        parsed = datetime.strptime(xep0082_utc(stamp), "%Y-%m-%dT%H:%M:%S.%f%z")
        self.assertEqual(parsed.timestamp(), stamp)


class EntityTimeTests(DevicesCase):
    enabled = ("time",)
    users = ("alice",)

    async def test_time_of_the_host(self):
        alice = await self.online("alice", "phone")
        self.clock.advance(86_400 + 3_661)
        answer = await self.ask(alice, "get", TIME, to="localhost")
        self.assertEqual(answer["type"], "result")
        (time,) = answer.elements()
        self.assertEqual((time.uri, time.name), (ns.TIME, "time"))
        fields = {child.name: str(child) for child in time.elements()}
        self.assertEqual(fields, {"tzo": "+00:00", "utc": "1970-01-02T01:01:01Z"})

    async def test_feature_on_the_host(self):
        self.assertIn(ns.TIME, self.server.features.features())
