# -*- test-case-name: tests.unit.test_domain_block -*-
"""A blocklist shared between trusted buddies as XEP-0268 incident reports marked as spam.

When the admin blocks or unblocks a domain (with ``share = true``), each trusted buddy gets an
incident report whose IODEF Impact is ``type='ext-value' ext-type='spam'`` and whose source
nodes (category 'ext-category', ext-category 'xmpp', as the incident plugin writes them) are
the whole list as it now is: the report replaces what the buddy held from us, so a lost or
repeated report does no lasting harm and an unblock is an entry gone from the next report.
A report without that mark is an ordinary incident for the incident plugin alone.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppd import ns
from xmppd.abuse.domains import domain_entry
from xmppd.trust.incidents import build_report

SPAM = "spam"
MAX_ENTRIES = 10_000  # what one buddy's report may list; more is refused whole


def build_blocklist_report(reporter: str, incident_id: str, reported: float,
                           entries: list[str], admins=()) -> domish.Element:
    """The <report/> that shares ``entries`` (our blocked domains) from ``reporter``."""
    description = (f"Domains blocked for spam at {reporter} ({len(entries)}); this report "
                   "replaces the earlier ones." if entries else
                   f"{reporter} blocks no domain for spam now; this report replaces the "
                   "earlier ones.")
    report = build_report(reporter, incident_id, description, reported, admins)
    incident = _incident(report)
    for assessment in _children(incident, "Assessment"):
        for impact in _children(assessment, "Impact"):  # build_report writes one
            impact["type"], impact["ext-type"] = "ext-value", SPAM
    system = incident.addElement("EventData").addElement("Flow").addElement("System")
    system["category"] = "source"
    for entry in entries:
        address = system.addElement("Node").addElement("Address", content=entry)
        address["category"], address["ext-category"] = "ext-category", "xmpp"
    return report


def read_blocklist_report(report: domish.Element) -> list[str] | None:
    """The domains a buddy's spam report lists (prepared, sorted), or None when the report
    is not marked as spam (not ours to read). ValueError when it lists too many or a name
    that is not a domain: the report is then ignored whole."""
    incident = _incident(report)
    if incident is None or not _is_spam(incident):
        return None
    entries: set[str] = set()
    for address in _source_addresses(incident):
        entries.add(domain_entry(address))
        if len(entries) > MAX_ENTRIES:
            raise ValueError(f"more than {MAX_ENTRIES} domains in one report")
    return sorted(entries)


def _incident(report: domish.Element) -> domish.Element | None:
    return next((child for child in report.elements()
                 if (child.uri, child.name) == (ns.IODEF, "Incident")), None)


def _is_spam(incident: domish.Element) -> bool:
    for assessment in _children(incident, "Assessment"):
        for impact in _children(assessment, "Impact"):
            if (impact.getAttribute("type"), impact.getAttribute("ext-type")) == ("ext-value",
                                                                                   SPAM):
                return True
    return False


def _source_addresses(incident: domish.Element):
    for event in _children(incident, "EventData"):
        for flow in _children(event, "Flow"):
            for system in _children(flow, "System"):
                if system.getAttribute("category") != "source":
                    continue
                for node in _children(system, "Node"):
                    for address in _children(node, "Address"):
                        yield "".join(c for c in address.children if isinstance(c, str)).strip()


def _children(element: domish.Element, name: str):
    return (child for child in element.elements() if (child.uri, child.name) == (ns.IODEF, name))
