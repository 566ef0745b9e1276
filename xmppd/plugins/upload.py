# -*- test-case-name: tests.unit.test_upload -*-
"""XEP-0363 HTTP file upload on ``upload.DOMAIN``: accounts of our hosts ask the service
for a slot and get a PUT URL (with an HMAC token in its ``Authorization`` header) and a GET
URL on the server's web server (``[http]``, xmppd.http), which stores the file under
``directory`` and serves it to anyone with the URL.

``[plugins.upload]``: ``domain`` ("upload": a subdomain of every host, or one domain),
``max_file_size`` (bytes, 10485760; told in disco with the XEP-0128 form), ``quota`` (bytes
one account's files and open slots may take together, 104857600), ``allowed_types`` (media
types or ``type/*``; [] accepts any), ``slot_timeout`` (seconds a slot waits for its PUT,
300), ``expire_after`` (seconds a file is kept, 604800; 0 keeps them), ``cleanup_interval``
(seconds between clean-ups, 3600), ``directory`` (where files go; relative to the config
file, default DATA_DIR/upload), ``secret`` (the key of the slot tokens, at least 16
characters; "" generates one, kept in the database).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import defer, task
from zope.interface import implementer

from xmppd import events
from xmppd.caps import DiscoInfo
from xmppd.forms import Form, make_field
from xmppd.interfaces import IXmppdPlugin
from xmppd.jid import JID
from xmppd.logs import get_logger
from xmppd.plugins._config import reject_unknown_keys
from xmppd.upload import NS
from xmppd.upload.protocol import MEDIA_TYPE, SlotRequests
from xmppd.upload.slots import Slots
from xmppd.upload.tokens import SlotSigner
from xmppd.upload.web import UploadResource

log = get_logger(__name__)

SECRET_OWNER = "upload"


@dataclass(frozen=True)
class UploadSettings:
    domain: str = "upload"
    max_file_size: int = 10 * 1024 * 1024
    quota: int = 100 * 1024 * 1024
    allowed_types: tuple[str, ...] = ()
    slot_timeout: int = 300
    expire_after: int = 7 * 24 * 3600
    cleanup_interval: int = 3600
    directory: str = ""
    secret: str = ""


@implementer(IXmppdPlugin)
class Upload:
    name = "upload"
    requires = ()

    def configure(self, options) -> UploadSettings:
        """Checked before the database opens: a bad value stops start-up."""
        reject_unknown_keys(options, ("domain", "max_file_size", "quota", "allowed_types",
                                      "slot_timeout", "expire_after", "cleanup_interval",
                                      "directory", "secret"))
        defaults = UploadSettings()
        secret = options.config.get("secret", "")
        if not isinstance(secret, str) or (secret and len(secret) < 16):
            raise ValueError("[plugins.upload] secret: expected at least 16 characters "
                             "(or \"\" to generate one)")  # never the value itself
        return UploadSettings(
            domain=options.option_str("domain", defaults.domain),
            max_file_size=options.option_int("max_file_size", defaults.max_file_size,
                                             minimum=1),
            quota=options.option_int("quota", defaults.quota, minimum=1),
            allowed_types=_allowed_types(options.config.get("allowed_types", [])),
            slot_timeout=options.option_int("slot_timeout", defaults.slot_timeout, minimum=1),
            expire_after=options.option_int("expire_after", defaults.expire_after, minimum=0),
            cleanup_interval=options.option_int("cleanup_interval", defaults.cleanup_interval,
                                                minimum=1),
            directory=options.option_str("directory", ""),
            secret=secret,
        )

    def setup(self, ctx) -> defer.Deferred:
        settings: UploadSettings = ctx.settings or self.configure(ctx)
        config = ctx.server_config
        directory = (config.path.parent / settings.directory if settings.directory
                     else config.server.data_dir / "upload")
        self.slots = Slots(ctx.open_store("upload", "map"), Path(directory), settings.quota,
                           settings.slot_timeout, settings.expire_after, ctx.reactor.seconds)
        self.cleaner = None
        return defer.ensureDeferred(self._start(ctx, settings))

    async def _start(self, ctx, settings: UploadSettings) -> None:
        ctx.http_url(sorted(ctx.domains)[0], "upload/")  # ValueError now if [http] has no URL
        signer = SlotSigner(await _secret(ctx, settings.secret))
        await self.slots.load()
        requests = SlotRequests(self.slots, signer, settings.max_file_size,
                                settings.allowed_types, ctx.domains, ctx.http_url)
        service = ctx.service(settings.domain, title="HTTP File Upload")
        service.identity("store", "file", "HTTP File Upload")
        service.feature(NS)
        form = Form.build("result", [make_field("max-file-size", settings.max_file_size)],
                          form_type=NS)
        service.disco_info(lambda stanza, node: None if node else DiscoInfo((), (), (form,)))
        service.iq("get", NS, "request",
                   lambda stanza, origin: requests.answer(stanza.sender, stanza.payload()))
        ctx.http_resource("upload", UploadResource(self.slots, signer, ctx.reactor.seconds),
                          max_body=settings.max_file_size)
        ctx.on(events.USER_DELETED, self._user_deleted)
        self.cleaner = task.LoopingCall(self._clean)
        self.cleaner.clock = ctx.reactor
        self.cleaner.start(settings.cleanup_interval, now=True)

    def _clean(self) -> defer.Deferred:
        d = self.slots.clean()
        d.addErrback(lambda failure: log.failure(
            "upload: the clean-up failed; the next one tries again", failure))
        return d

    def _user_deleted(self, account: JID) -> defer.Deferred:
        return self.slots.forget_owner(account.userhost())

    def teardown(self) -> None:
        if self.cleaner is not None and self.cleaner.running:
            self.cleaner.stop()


async def _secret(ctx, configured: str) -> bytes:
    """The configured secret, else the one generated on the first start and kept."""
    if configured:
        return configured.encode("utf-8")
    store = ctx.open_store("upload_secret", "keyval")
    kept = await store.get(SECRET_OWNER)
    if kept is None:
        kept = secrets.token_hex(32)
        await store.set(SECRET_OWNER, kept)
    return kept.encode("ascii")


def _allowed_types(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
            isinstance(item, str) and (MEDIA_TYPE.fullmatch(item)
                                       or MEDIA_TYPE.fullmatch(item.replace("/*", "/x")))
            for item in value):
        raise ValueError(f"[plugins.upload] allowed_types: expected a list of media types "
                         f"such as \"image/png\" or \"image/*\", got {value!r}")
    return tuple(item.lower() for item in value)


upload = Upload()
