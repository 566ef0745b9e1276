# -*- test-case-name: tests.integration.test_websocket -*-
"""XMPP over WebSocket (RFC 7395) at ``/xmpp-websocket`` of the server's web server
(``[http]``), and XEP-0156 discovery at ``/.well-known/host-meta`` (and ``.json``), which
also names ``/http-bind`` when the bosh plugin is enabled.

``[plugins.websocket]``: ``ping_interval`` (seconds between WebSocket pings to a quiet
client, which must answer within as long; 60, 0 for none), ``see_other_uri`` (a ws:// or
wss:// URL every client is sent to with RFC 7395's ``<close see-other-uri/>`` instead of
being served; "" serves them), ``host_meta`` (serve the discovery documents, true).
``[http] cors_origins`` and ``trusted_proxies`` apply (xmppd.web.policy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zope.interface import implementer

from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys
from xmppd.web.hostmeta import BOSH, WEBSOCKET, WellKnown, websocket_url
from xmppd.web.policy import WebPolicy
from xmppd.web.websocket import FramedClientStream, XmppWebSocketFactory, websocket_resource

PATH = "xmpp-websocket"
_WS_URL = re.compile(r"wss?://[^/?#\s]+(/[^#\s]*)?")


@dataclass(frozen=True)
class WebSocketSettings:
    ping_interval: int = 60
    see_other_uri: str = ""
    host_meta: bool = True


@implementer(IXmppdPlugin)
class WebSocket:
    name = "websocket"
    requires = ()

    def configure(self, options) -> WebSocketSettings:
        reject_unknown_keys(options, ("ping_interval", "see_other_uri", "host_meta"))
        defaults = WebSocketSettings()
        see_other = options.option_str("see_other_uri", "")
        if see_other and not _WS_URL.fullmatch(see_other):
            raise ValueError(f"[plugins.websocket] see_other_uri: expected a ws:// or wss:// "
                             f"URL, got {see_other!r}")
        return WebSocketSettings(
            ping_interval=options.option_int("ping_interval", defaults.ping_interval,
                                             minimum=0),
            see_other_uri=see_other,
            host_meta=options.option_bool("host_meta", defaults.host_meta),
        )

    def setup(self, ctx) -> None:
        settings: WebSocketSettings = ctx.settings or self.configure(ctx)
        config = ctx.server_config
        domains = sorted(ctx.domains)
        ctx.http_url(domains[0], PATH)  # ValueError now if [http] has no listener

        def new_stream(secure: bool) -> FramedClientStream:
            return ctx.client_stream(FramedClientStream, secure)

        factory = XmppWebSocketFactory(
            new_stream, WebPolicy(config.http.cors_origins, config.http.trusted_proxies),
            config.server.max_stanza_size, settings.ping_interval,
            settings.see_other_uri or None)
        ctx.http_resource(PATH, websocket_resource(factory))
        if settings.host_meta:
            def links(host: str | None) -> list[tuple[str, str]]:
                domain = host if host in ctx.domains else domains[0]
                links = [(WEBSOCKET, websocket_url(ctx.http_url(domain, PATH)))]
                if "bosh" in config.plugins.enabled:
                    links.append((BOSH, ctx.http_url(domain, "http-bind")))
                return links

            ctx.http_resource(".well-known", WellKnown(links))


websocket = WebSocket()
