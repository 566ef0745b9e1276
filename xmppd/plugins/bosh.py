# -*- test-case-name: tests.integration.test_bosh -*-
"""BOSH (XEP-0124, XEP-0206) at ``/http-bind`` of the server's web server (``[http]``).

``[plugins.bosh]``: ``max_wait`` (the longest a request is held, seconds, 60), ``max_hold``
(requests held at once, 1), ``inactivity`` (seconds without a request before the session
counts as lost, 60), ``polling`` (the shortest interval between a polling client's empty
requests, seconds, 2), ``max_sessions_per_address`` (10). ``[http] cors_origins`` and
``trusted_proxies`` apply (xmppd.web.policy).
"""

from __future__ import annotations

from zope.interface import implementer

from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys
from xmppd.web.bosh import BoshClientStream, BoshManager, BoshResource, BoshSettings
from xmppd.web.policy import WebPolicy

PATH = "http-bind"
BODY_OVERHEAD = 4096  # the <body/> wrapper around at most max_stanza_size of content


@implementer(IXmppdPlugin)
class Bosh:
    name = "bosh"
    requires = ()

    def configure(self, options) -> BoshSettings:
        reject_unknown_keys(options, ("max_wait", "max_hold", "inactivity", "polling",
                                      "max_sessions_per_address"))
        defaults = BoshSettings()
        return BoshSettings(
            max_wait=options.option_int("max_wait", defaults.max_wait, minimum=1),
            max_hold=options.option_int("max_hold", defaults.max_hold, minimum=0),
            inactivity=options.option_int("inactivity", defaults.inactivity, minimum=1),
            polling=options.option_int("polling", defaults.polling, minimum=0),
            max_sessions_per_address=options.option_int(
                "max_sessions_per_address", defaults.max_sessions_per_address, minimum=1),
        )

    def setup(self, ctx) -> None:
        settings: BoshSettings = ctx.settings or self.configure(ctx)
        config = ctx.server_config
        ctx.http_url(sorted(ctx.domains)[0], PATH)  # ValueError now if [http] has no listener

        def new_stream(secure: bool) -> BoshClientStream:
            return ctx.client_stream(BoshClientStream, secure)

        manager = BoshManager(ctx.reactor, new_stream, ctx.domains,
                              WebPolicy(config.http.cors_origins, config.http.trusted_proxies),
                              settings)
        max_body = config.server.max_stanza_size + BODY_OVERHEAD
        ctx.http_resource(PATH, BoshResource(manager, max_body), max_body=max_body)


bosh = Bosh()
