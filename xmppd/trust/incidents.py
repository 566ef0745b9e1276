# -*- test-case-name: tests.unit.test_incident -*-
"""Incident reports on the wire (XEP-0268 §3): an IODEF document (RFC 5070) in <report/>.

``build_report`` writes what an admin files: the Incident (purpose 'reporting') with its
IncidentID named after our domain, the report time, the admin's description, the impact
(type 'unknown', with the severity when given), our domain as the creator and each admin JID
as an admin contact (XEP-0268 §6.4 <jid/>), and the offending JIDs as 'source' nodes with the
'xmpp' address category (§6.2). ``read_report`` takes back from a peer's report only what
admins list by: its IncidentID and Description; the whole report is kept as it came.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.jid import JID
from xmppd.storage.records import IncidentRecord

SEVERITIES = ("low", "medium", "high")  # RFC 5070 §3.10.1 Impact@severity
MAX_DESCRIPTION = 4000  # characters an admin may write; the report must fit any peer's limit


@dataclass(frozen=True)
class Summary:
    """What a listing shows of a report."""

    incident_id: str
    description: str


def build_report(reporter: str, incident_id: str, description: str, reported: float,
                 admins: Iterable[JID] = (), sources: Iterable[JID] = (),
                 severity: str | None = None) -> domish.Element:
    """The <report/> for an incident ``reporter`` (our domain) files at ``reported`` (POSIX
    seconds); ValueError for a description or severity that cannot go out."""
    check_description(description)
    check_severity(severity)
    report = domish.Element((ns.INCIDENT, "report"))
    incident = report.addElement((ns.IODEF, "Incident"))
    incident["purpose"] = "reporting"
    incident_id_element = incident.addElement("IncidentID", content=incident_id)
    incident_id_element["name"] = reporter
    incident.addElement("ReportTime", content=_timestamp(reported))
    incident.addElement("Description", content=description)["xml:lang"] = "en"
    impact = incident.addElement("Assessment").addElement("Impact")
    impact["lang"] = "en"
    impact["type"] = "unknown"
    if severity is not None:
        impact["severity"] = severity
    creator = incident.addElement("Contact")
    creator["role"], creator["type"] = "creator", "organization"
    creator.addElement("ContactName", content=reporter)
    for admin in admins:
        contact = incident.addElement("Contact")
        contact["role"], contact["type"] = "admin", "person"
        data = contact.addElement("AdditionalData")
        data["dtype"] = "xml"
        data.addElement((ns.XMPP_JID, "jid"), content=admin.full())
    sources = list(sources)
    if sources:
        system = incident.addElement("EventData").addElement("Flow").addElement("System")
        system["category"] = "source"
        for source in sources:
            address = system.addElement("Node").addElement("Address", content=source.full())
            address["category"], address["ext-category"] = "ext-category", "xmpp"
    return report


def read_report(report: domish.Element) -> Summary:
    """The IncidentID and Description of a peer's <report/>; ``bad-request`` when it does
    not carry exactly one IODEF Incident with an IncidentID (XEP-0268 §8 schema)."""
    incidents = [c for c in report.elements() if (c.uri, c.name) == (ns.IODEF, "Incident")]
    if len(incidents) != 1:
        raise StanzaError("bad-request", "a report carries exactly one IODEF <Incident/>")
    incident_id = _child_text(incidents[0], "IncidentID")
    if not incident_id:
        raise StanzaError("bad-request", "the IODEF <Incident/> has no <IncidentID/>")
    return Summary(incident_id, _child_text(incidents[0], "Description") or "")


def check_description(description: str) -> None:
    if not isinstance(description, str) or not description.strip():
        raise ValueError("an incident report needs a description")
    if len(description) > MAX_DESCRIPTION:
        raise ValueError(f"the description is longer than {MAX_DESCRIPTION} characters")


def check_severity(severity: str | None) -> None:
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")


def incident_row(record: IncidentRecord) -> dict:
    """One stored report as admins see it (incident list)."""
    return {
        "id": record.id,
        "direction": record.direction,
        "local": record.local,
        "domain": record.peer,
        "incident_id": record.incident_id,
        "description": record.description,
        "stamp": record.stamp,
        "report": record.report,
    }


def _child_text(element: domish.Element, name: str) -> str | None:
    for child in element.elements():
        if (child.uri, child.name) == (ns.IODEF, name):
            return "".join(c for c in child.children if isinstance(c, str)).strip()
    return None


def _timestamp(seconds: float) -> str:
    """RFC 5070 DATETIME in UTC, as in XEP-0268's examples: 2009-04-13T19:31:07Z."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
