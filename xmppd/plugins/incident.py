# -*- test-case-name: tests.unit.test_incident -*-
"""Incident reports (XEP-0268), exchanged with trusted server buddies only (XEP-0268 §7).

An admin files a report (IIncidentReports.report, from the admin API): it goes as an IQ set
from our domain to every trusted buddy (mutual server presence subscription, XEP-0267) and to
nobody else, and is kept as 'sent'. A report a peer sends us is accepted only from a trusted
buddy, a bare domain: it is kept for the admins as 'received' and they are told; it changes no
configuration (XEP-0268 §7: SHOULD NOT). From anyone else it is refused with ``forbidden`` and
logged. The other XEP-0268 interactions (inquiry, request, response) are refused the same way
from strangers and answered ``feature-not-implemented`` to buddies.

Each buddy gets at most ``rate_limit`` reports handled per ``rate_period`` seconds; more are
answered ``resource-constraint``.

[plugins.incident] settings: rate_limit (default 10), rate_period (seconds, 3600).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from twisted.internet import defer
from zope.interface import implementer

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.interfaces import IIncidentReports, IServerTrust, IXmppdPlugin
from xmppd.jid import InvalidJID, parse_jid
from xmppd.logs import get_logger
from xmppd.stanza import Stanza, make_iq_set
from xmppd.storage.records import IncidentRecord
from xmppd.trust.commands import add_incident_commands
from xmppd.trust.incidents import (
    build_report,
    check_description,
    check_severity,
    read_report,
)
from xmppd.trust.notify import AdminNotifier
from xmppd.trust.ratelimit import RateLimiter
from xmppd.trust.server_roster import is_bare_domain
from xmppd.trust.settings import read_settings
from xmppd.xml.stored import stanza_to_text

log = get_logger(__name__)

SETTINGS = {"rate_limit": 10, "rate_period": 3600.0}
REFUSED = "incident reports are exchanged with trusted server buddies only (XEP-0267)"


@implementer(IXmppdPlugin)
class IncidentPlugin:
    name = "incident"
    requires = ("server_trust",)
    provides = (IIncidentReports,)

    def configure(self, options) -> dict:
        """The numbers of SETTINGS, checked before the database opens."""
        return read_settings(options, SETTINGS)

    def setup(self, ctx) -> None:
        settings = ctx.settings
        limiter = RateLimiter(settings["rate_limit"], settings["rate_period"], ctx.reactor.seconds)
        reports = IncidentReports(ctx, ctx.storage.incidents, limiter,
                                  AdminNotifier(ctx, "Incident report"))
        ctx.feature(ns.INCIDENT)
        ctx.iq("set", ns.INCIDENT, "report", reports.on_report)
        for type, element in (("get", "inquiry"), ("get", "request"), ("set", "response")):
            ctx.iq(type, ns.INCIDENT, element, reports.on_other)
        ctx.provide(IIncidentReports, reports)
        add_incident_commands(ctx, reports, ctx.storage.incidents)


@implementer(IIncidentReports)
class IncidentReports:
    def __init__(self, ctx, store, limiter: RateLimiter, notify) -> None:
        self.ctx = ctx  # the plugin's context: query, route, domains, reactor, server_config
        self.store = store
        self.limiter = limiter
        self.notify = notify

    def _trust(self) -> IServerTrust:
        trust = self.ctx.query(IServerTrust)
        if trust is None:
            raise RuntimeError("incident reports need the server_trust plugin's IServerTrust")
        return trust

    # -- filing a report (admins)

    def report(self, description: str, sources: Iterable[str] = (),
               severity: str | None = None) -> defer.Deferred:
        try:
            check_description(description)
            check_severity(severity)
            offenders = [_jid(source) for source in _listed(sources)]
            buddies = self._trust().buddies()
        except (ValueError, RuntimeError) as error:
            return defer.fail(error)
        return defer.ensureDeferred(self._send_all(buddies, description, offenders, severity))

    async def _send_all(self, buddies, description, offenders, severity) -> list[str]:
        incident_id = str(uuid.uuid4()).upper()
        now = self.ctx.reactor.seconds()
        admins = self.ctx.server_config.server.admins
        for local, peer in buddies:
            report = build_report(local, incident_id, description, now, admins, offenders,
                                  severity)
            await self.store.add_incident(IncidentRecord(
                "sent", local, peer, incident_id, description, stanza_to_text(report), now))
            sender, recipient = parse_jid(local), parse_jid(peer)
            iq = make_iq_set(sender, recipient, report, "incident")
            self.ctx.route(Stanza(iq, sender, recipient), None)
        peers = sorted({peer for _, peer in buddies})
        log.info("incident {id} reported to {count} trusted buddies: {peers}", id=incident_id,
                 count=len(peers), peers=", ".join(peers) or "none")
        return peers

    # -- what peers send

    def on_report(self, stanza: Stanza, origin):
        peer = self._buddy(stanza)
        if self.limiter.hit(peer):
            log.warn("incident report from {peer} refused: more than {limit} in {period}s",
                     peer=peer, limit=self.limiter.limit, period=self.limiter.period)
            raise StanzaError("resource-constraint", "too many incident reports; try later")
        payload = stanza.payload()
        summary = read_report(payload)
        local = stanza.recipient.host
        record = IncidentRecord("received", local, peer, summary.incident_id,
                                summary.description, stanza_to_text(payload),
                                self.ctx.reactor.seconds())
        d = self.store.add_incident(record)

        def kept(id: int) -> None:
            self.notify(local, f"#{id} ({summary.incident_id}) from {peer}: "
                               f"{summary.description or '(no description)'}")

        return d.addCallback(kept)

    def on_other(self, stanza: Stanza, origin):
        self._buddy(stanza)
        raise StanzaError("feature-not-implemented",
                          f"XEP-0268 <{stanza.payload().name}/> is not implemented here")

    def _buddy(self, stanza: Stanza) -> str:
        """The sending peer's domain, if it is a trusted buddy; else ``forbidden``, logged."""
        sender = stanza.sender
        trust = self.ctx.query(IServerTrust)
        if (is_bare_domain(sender) and sender.host not in self.ctx.domains
                and trust is not None and trust.is_trusted_buddy(sender.host)):
            return sender.host
        log.warn("incident: refused <{element}/> from {sender}: not a trusted server buddy",
                 element=stanza.payload().name, sender=sender)
        raise StanzaError("forbidden", REFUSED)


def _listed(sources) -> list:
    """A str is iterable too: "abuser@x" must not become nine one-letter JIDs."""
    if isinstance(sources, str):
        raise ValueError("sources is a list of JIDs, not one string")
    return list(sources)


def _jid(text: str):
    try:
        return parse_jid(text)
    except (InvalidJID, TypeError) as error:
        raise ValueError(f"invalid JID {text!r}: {error}") from None


incident = IncidentPlugin()
