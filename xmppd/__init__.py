"""xmppd: an XMPP server on Twisted, safe by default and easy to extend."""

__version__ = "0.1.0"
