"""XEP-0092: the server's software name and version (the OS only if the admin opts in)."""

from __future__ import annotations

import platform

from twisted.words.xish import domish
from zope.interface import implementer

import xmppd
from xmppd import ns
from xmppd.interfaces import IXmppdPlugin
from xmppd.plugins._config import reject_unknown_keys


@implementer(IXmppdPlugin)
class Version:
    name = "version"
    requires = ()

    def configure(self, options) -> bool:
        """show_os, checked before the database opens."""
        reject_unknown_keys(options, ("show_os",))
        return options.option_bool("show_os", False)

    def setup(self, ctx) -> None:
        self.os = platform.system() if ctx.settings else None
        ctx.feature(ns.VERSION)
        ctx.iq("get", ns.VERSION, "query", self.on_version)

    def on_version(self, stanza, origin) -> domish.Element:
        query = domish.Element((ns.VERSION, "query"))
        query.addElement("name", content="xmppd")
        query.addElement("version", content=xmppd.__version__)
        if self.os:
            query.addElement("os", content=self.os)
        return query


version = Version()
