# -*- test-case-name: tests.unit.test_mam_query -*-
"""A client's archive query (XEP-0313 §4) read into an ArchiveQuery, and a page answered.

The form's fields map one to one onto ArchiveQuery's filters; RSM's ``<after/>`` and
``<before/>`` onto its paging. What the store cannot answer is refused, not ignored: a field
we do not know (XEP-0313 §4.1.2: feature-not-implemented), an RSM ``<index/>`` (the archive
pages by id; XEP-0059 §2.6 lets a responder refuse it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.forms import Form, FormError, find_form, make_field
from xmppd.logs import get_logger
from xmppd.mam.dates import format_stamp, parse_stamp
from xmppd.rsm import find_request, result_set
from xmppd.storage.records import ArchivePage, ArchiveQuery
from xmppd.xml.stored import stanza_from_text

log = get_logger(__name__)

FIELDS = ("with", "start", "end", "before-id", "after-id", "ids")


@dataclass(frozen=True)
class Request:
    """One query: what to fetch, how to send it back."""

    query: ArchiveQuery
    queryid: str | None = None
    flip: bool = False


def parse_query(element: domish.Element, *, default_max: int, limit: int) -> Request:
    """Read ``<query xmlns='urn:xmpp:mam:2'/>``: its form (optional), RSM set and flip-page."""
    form = find_form(element)
    filters = _filters(form) if form is not None else {}
    rsm = find_request(element, default_max=default_max, limit=limit)
    if rsm is not None and rsm.index is not None:
        raise StanzaError("feature-not-implemented", "RSM <index/> is not supported: page by id")
    paging = {"limit": default_max} if rsm is None else {
        "limit": rsm.max,
        "after": rsm.after,
        "before": rsm.before or None,
        "last_page": rsm.wants_last_page,
    }
    flip = any(child.uri == ns.MAM and child.name == "flip-page" for child in element.elements())
    return Request(ArchiveQuery(**filters, **paging), element.getAttribute("queryid"), flip)


def _filters(form: Form) -> dict:
    if form.type != "submit":
        raise FormError(f"a query form is of type submit, not '{form.type}'")
    form.expect_form_type(ns.MAM)
    unknown = form.unknown_fields(FIELDS)
    if unknown:
        raise FormError(f"field '{unknown[0][:60]}' is not supported", unknown[0],
                        "feature-not-implemented")
    filters: dict = {}
    with_jid = form.get_jid("with")
    if with_jid is not None:
        # Entries are kept under the contact's bare JID, so a full JID matches its account.
        filters["with_jid"] = with_jid.bare().full()
    for var, key in (("start", "start"), ("end", "end")):
        text = form.get_text(var)
        if text:
            filters[key] = parse_stamp(var, text)
    for var, key in (("before-id", "before_id"), ("after-id", "after_id")):
        text = form.get_text(var)
        if text:
            filters[key] = text
    if "ids" in form:
        filters["ids"] = tuple(dict.fromkeys(each for each in form.get_values("ids") if each))
    return filters


def query_form() -> domish.Element:
    """The fields a query may use (XEP-0313 §4.1.1), for ``<iq type='get'><query/></iq>``."""
    fields = [make_field("with", type="jid-single"), make_field("start", type="text-single"),
              make_field("end", type="text-single"),
              make_field("before-id", type="text-single"),
              make_field("after-id", type="text-single")]
    query = domish.Element((ns.MAM, "query"))
    form = query.addChild(Form.build("form", fields, form_type=ns.MAM).to_element())
    ids = form.addElement("field")
    ids["type"], ids["var"] = "list-multi", "ids"
    validate = ids.addElement((ns.XDATA_VALIDATE, "validate"))
    validate["datatype"] = "xs:string"
    validate.addElement("open")
    return query


def result_messages(page: ArchivePage, request: Request, to: str,
                    archive: str) -> Iterator[domish.Element]:
    """One ``<message><result><forwarded>…`` per entry (XEP-0313 §4.2), in archive order or
    flipped; an entry whose text no longer parses is logged and left out."""
    entries = reversed(page.entries) if request.flip else page.entries
    for entry in entries:
        original = stanza_from_text(entry.payload)
        if original is None:
            log.error("archive {archive}: entry {id} is unreadable, left out", archive=archive,
                      id=entry.id)
            continue
        message = domish.Element((None, "message"))
        message["to"], message["from"] = to, archive
        result = message.addElement((ns.MAM, "result"))
        if request.queryid is not None:
            result["queryid"] = request.queryid
        result["id"] = entry.id
        forwarded = result.addElement((ns.FORWARD, "forwarded"))
        delay = forwarded.addElement((ns.DELAY, "delay"))
        delay["stamp"] = format_stamp(entry.stamp)
        forwarded.addChild(original)
        yield message


def fin(page: ArchivePage) -> domish.Element:
    """The IQ result's ``<fin/>``, with the page's RSM ``<set/>``."""
    element = domish.Element((ns.MAM, "fin"))
    if page.complete:
        element["complete"] = "true"
    element.addChild(result_set(first=page.first, last=page.last, count=page.total))
    return element
