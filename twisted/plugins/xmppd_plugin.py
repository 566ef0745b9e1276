"""twistd plugin: ``twistd -n xmppd --config FILE``.

Kept free of xmppd imports so ``twistd --help`` stays cheap; the module path is a string.
"""

from twisted.application.service import ServiceMaker

xmppd = ServiceMaker("xmppd", "xmppd.tap", "xmppd: an XMPP server", "xmppd")
