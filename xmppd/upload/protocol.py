# -*- test-case-name: tests.unit.test_upload -*-
"""Slot requests (XEP-0363 §4): the checks on the file's name, size and type, the XEP's
errors (``file-too-large`` with the limit, quota as ``resource-constraint`` with
``<retry/>``), and the ``<slot/>`` answer with its PUT and GET URLs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from twisted.words.xish import domish

from xmppd.errors import StanzaError
from xmppd.upload import NS
from xmppd.upload.slots import QuotaExceeded, Slot, Slots
from xmppd.upload.tokens import SlotSigner

MAX_NAME = 255
# RFC 6838 §4.2 restricted names: type/subtype, parameters not kept
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MEDIA_TYPE = re.compile(f"{_TOKEN}/{_TOKEN}")
DEFAULT_TYPE = "application/octet-stream"
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


class UploadError(StanzaError):
    """A stanza error with XEP-0363's application children (``file-too-large``, ``retry``)."""

    def __init__(self, condition: str, text: str, *, max_size: int | None = None,
                 retry_at: float | None = None) -> None:
        super().__init__(condition, text)
        self.max_size = max_size
        self.retry_at = retry_at

    def to_element(self, by: str | None = None) -> domish.Element:
        error = super().to_element(by)
        if self.max_size is not None:
            error.addElement((NS, "file-too-large")).addElement(
                "max-file-size", content=str(self.max_size))
        if self.retry_at is not None:
            error.addElement((NS, "retry"))["stamp"] = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.retry_at))
        return error


@dataclass(frozen=True)
class Request:
    name: str
    size: int
    type: str


def parse_request(element: domish.Element) -> Request:
    """The <request/> checked: a plain file name, a size above 0, a media type."""
    name = element.getAttribute("filename") or ""
    if not name or len(name) > MAX_NAME or _BAD_NAME.search(name) or name in (".", ".."):
        raise StanzaError("bad-request", "the filename must be a plain file name")
    size_text = element.getAttribute("size") or ""
    if not (size_text.isascii() and size_text.isdigit()) or int(size_text) < 1:
        raise StanzaError("bad-request", "the size must be a number of bytes above 0")
    content_type = (element.getAttribute("content-type") or DEFAULT_TYPE).split(";")[0].strip()
    if not MEDIA_TYPE.fullmatch(content_type):
        raise StanzaError("bad-request", "the content-type must be a media type (type/subtype)")
    return Request(name, int(size_text), content_type.lower())


def type_allowed(content_type: str, allowed: tuple[str, ...]) -> bool:
    """Every type when ``allowed`` is empty; else one listed, or of a listed ``type/*``."""
    if not allowed:
        return True
    major = content_type.split("/")[0] + "/*"
    return content_type in allowed or major in allowed


class SlotRequests:
    """Answers slot requests of local accounts."""

    def __init__(self, slots: Slots, signer: SlotSigner, max_size: int,
                 allowed_types: tuple[str, ...], hosts: frozenset[str],
                 url: Callable[[str, str], str]) -> None:
        self.slots = slots
        self.signer = signer
        self.max_size = max_size
        self.allowed_types = allowed_types
        self.hosts = hosts
        self.url = url  # (host, path) -> the URL clients use

    def answer(self, requester, element: domish.Element) -> domish.Element:
        if requester.host not in self.hosts or requester.user is None:
            raise StanzaError("forbidden", "only accounts of this server may upload here")
        request = parse_request(element)
        if request.size > self.max_size:
            raise UploadError("not-acceptable", f"the file is larger than the {self.max_size} "
                              "bytes allowed", max_size=self.max_size)
        if not type_allowed(request.type, self.allowed_types):
            raise StanzaError("not-acceptable", f"files of type {request.type} are not accepted")
        try:
            slot = self.slots.reserve(requester.userhost(), request.name, request.size,
                                      request.type)
        except QuotaExceeded as full:
            raise UploadError("resource-constraint", "your upload quota is used up",
                              retry_at=full.retry_at) from None
        return self.slot_element(slot, requester.host)

    def slot_element(self, slot: Slot, host: str) -> domish.Element:
        url = self.url(host, f"upload/{slot.id}/{quote(slot.name, safe='')}")
        answer = domish.Element((NS, "slot"))
        put = answer.addElement("put")
        put["url"] = url
        token = self.signer.sign(slot.id, slot.size, slot.type, slot.deadline)
        put.addElement("header", content=f"Bearer {token}")["name"] = "Authorization"
        answer.addElement("get")["url"] = url
        return answer
