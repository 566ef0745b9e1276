# -*- test-case-name: tests.unit.test_outage -*-
"""XEP-0455 service outage status: where clients find the server's status when it is down.

The XEP (0.4.0) has no in-band outage signal: the server's disco#info carries a form of
FORM_TYPE ``urn:xmpp:sos:0`` whose ``external-status-addresses`` are HTTP(S) URLs of a JSON
status file, served by a web server that stays up when xmppd does not. This plugin
publishes those addresses and keeps that file: ``xmppdctl outage set`` writes the outage
(planned or not, its beginning, expected end and message) to ``status_file``, ``xmppdctl
outage clear`` writes ``{}`` (XEP-0455 §4: the file is an empty object when the outage is
over). The outage is kept in the server's store too, so a restart writes the same file.

Off by default: the addresses name a web server that only the operator knows of.
``[plugins.outage]``: ``addresses`` (a list of http/https URLs, at least one),
``status_file`` (the path the web server serves; "" when another tool writes it, then the
outage commands are refused).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from twisted.internet import defer
from zope.interface import implementer

from xmppd.caps import DiscoInfo
from xmppd.forms import Form, FormError, make_field
from xmppd.interfaces import IXmppdPlugin
from xmppd.logs import get_logger
from xmppd.mam.dates import parse_stamp
from xmppd.plugins.time import xep0082_utc

log = get_logger(__name__)

NS_SOS = "urn:xmpp:sos:0"
ADDRESSES_FIELD = "external-status-addresses"
STORE = "outage"  # keyval store, one value for the whole server
OWNER = "server"
KINDS = ("planned", "unplanned")


@dataclass(frozen=True)
class OutageSettings:
    addresses: tuple[str, ...]
    status_file: Path | None


def check_addresses(value: object) -> tuple[str, ...]:
    """The configured URLs: absolute http/https (XEP-0455 §3: fetched without authentication
    by clients that cannot reach the server)."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"[plugins.outage] addresses: expected a non-empty list of http(s) "
                         f"URLs, got {value!r}")
    for url in value:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"[plugins.outage] addresses: expected http(s) URLs, got {url!r}")
    return tuple(value)


def parse_time(what: str, text: str) -> float:
    """An XEP-0082 DateTime with its zone ('2026-12-06T08:00:00Z'), or 'now' (None)."""
    try:
        return parse_stamp(what, text)
    except FormError:
        raise ValueError(f"{what}: expected a UTC time like 2026-12-06T08:00:00Z, "
                         f"got {text!r}") from None


def status_document(outage: dict | None) -> dict:
    """The JSON of XEP-0455 §4 for a stored outage; {} when there is none."""
    if not outage:
        return {}
    document = {"planned": outage["planned"], "beginning": xep0082_utc(outage["beginning"])}
    if outage.get("expected_end") is not None:
        document["expected_end"] = xep0082_utc(outage["expected_end"])
    if outage.get("message"):
        document["message"] = {"default": outage["message"]}
    return document


def write_atomically(path: Path, document: dict) -> None:
    """Replace ``path`` in one step: a web server never serves half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".outage-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, ensure_ascii=False, indent=2)
            out.write("\n")
        os.chmod(temporary, 0o644)  # for the web server's user
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@implementer(IXmppdPlugin)
class OutageStatus:
    name = "outage"
    requires = ()

    def configure(self, options) -> OutageSettings:
        """Checked before the database opens: bad addresses or a status file in a directory
        that does not exist stop start-up."""
        options.known("addresses", "status_file")
        addresses = check_addresses(options.config.get("addresses"))
        status_file = options.option_str("status_file", "")
        path = Path(status_file) if status_file else None
        if path is not None and not path.parent.is_dir():
            raise ValueError(f"[plugins.outage] status_file: {path.parent} is not a directory")
        return OutageSettings(addresses, path)

    def setup(self, ctx):
        self.settings = ctx.settings if isinstance(ctx.settings, OutageSettings) \
            else self.configure(ctx)
        self.ctx = ctx
        self.store = ctx.open_store(STORE, "keyval")
        self.form = Form.build("result", [make_field(ADDRESSES_FIELD, list(
            self.settings.addresses), type="list-multi")], form_type=NS_SOS)
        ctx.disco_info(self.disco_info)
        ctx.admin_command("outage set", self.set_outage,
                          "publish an outage in the status file (KIND: planned or unplanned; "
                          "times like 2026-12-06T08:00:00Z, BEGINNING default now)",
                          args=("KIND", "MESSAGE", "BEGINNING?", "EXPECTED_END?"))
        ctx.admin_command("outage clear", self.clear_outage,
                          "end the outage: the status file becomes {}")
        ctx.admin_command("outage show", self.show_outage, "the outage now published")
        return self._write_stored()  # a restart, or a file removed by hand: written again

    def disco_info(self, stanza, node: str | None) -> DiscoInfo | None:
        """The XEP-0128 form on the hosts' disco#info (not on nodes)."""
        if node is not None:
            return None
        return DiscoInfo((), (), (self.form,))

    @defer.inlineCallbacks
    def _write_stored(self):
        outage = yield self.store.get(OWNER)
        if self.settings.status_file is not None:
            write_atomically(self.settings.status_file, status_document(outage))

    def _status_file(self) -> Path:
        if self.settings.status_file is None:
            raise ValueError("[plugins.outage] status_file is not set: the status at "
                             "the external addresses is kept by another tool")
        return self.settings.status_file

    @defer.inlineCallbacks
    def set_outage(self, kind: str, message: str, beginning: str | None = None,
                   expected_end: str | None = None):
        path = self._status_file()
        if kind not in KINDS:
            raise ValueError(f"KIND: expected planned or unplanned, got {kind!r}")
        if not message.strip():
            raise ValueError("MESSAGE: say what users should know")
        start = (self.ctx.reactor.seconds() if beginning in (None, "now")
                 else parse_time("BEGINNING", beginning))
        end = None if expected_end is None else parse_time("EXPECTED_END", expected_end)
        if end is not None and end <= start:
            raise ValueError("EXPECTED_END: must come after BEGINNING")
        outage = {"planned": kind == "planned", "beginning": start, "expected_end": end,
                  "message": message.strip()}
        yield self.store.set(OWNER, outage)
        document = status_document(outage)
        write_atomically(path, document)
        log.info("outage published ({kind}, from {beginning})", kind=kind,
                 beginning=document["beginning"])
        return document

    @defer.inlineCallbacks
    def clear_outage(self):
        path = self._status_file()
        yield self.store.delete(OWNER)
        write_atomically(path, {})
        log.info("outage cleared")
        return "no outage published"

    @defer.inlineCallbacks
    def show_outage(self):
        outage = yield self.store.get(OWNER)
        return status_document(outage) or "no outage published"


outage = OutageStatus()
