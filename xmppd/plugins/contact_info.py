# -*- test-case-name: tests.unit.test_contact_info -*-
"""XEP-0157 contact addresses: who to tell about abuse, security problems or anything else.

The addresses go into the server's disco#info as the ``http://jabber.org/network/serverinfo``
form (XEP-0128), where clients and other servers' admins look for them. Each key of
``[plugins.contact_info]`` is one of the XEP's registered fields and a list of URIs
(``xmpp:``, ``mailto:``, ``https:``...); a key with no addresses is left out of the form.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from zope.interface import implementer

from xmppd import ns
from xmppd.caps import DiscoInfo
from xmppd.forms import Form, make_field
from xmppd.interfaces import IXmppdPlugin

# XEP-0157 §5's registered fields, each "<name>-addresses" in the form.
KINDS = ("abuse", "admin", "feedback", "sales", "security", "status", "support")


@implementer(IXmppdPlugin)
class ContactInfo:
    name = "contact_info"
    requires = ()

    def configure(self, options) -> dict[str, tuple[str, ...]]:
        options.known(*KINDS)
        addresses = {kind: options.option_strings(kind) for kind in KINDS}
        for kind, uris in addresses.items():
            for uri in uris:
                if not urlsplit(uri).scheme:
                    raise ValueError(f"[plugins.contact_info] {kind}: {uri!r} is not a URI "
                                     f"(say xmpp:, mailto: or https:)")
        return {kind: uris for kind, uris in addresses.items() if uris}

    def setup(self, ctx) -> None:
        if not ctx.settings:
            return  # nothing configured: no empty form in the server's disco
        form = Form.build("result", [make_field(f"{kind}-addresses", list(uris),
                                                type="list-multi")
                                     for kind, uris in ctx.settings.items()],
                          form_type=ns.SERVER_INFO)
        info = DiscoInfo((), (), (form,))
        ctx.disco_info(lambda stanza, node: info if node is None else None)


contact_info = ContactInfo()
