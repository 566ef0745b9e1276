"""XMPP for web clients on the server's web server (xmppd.http): RFC 7395 WebSocket,
XEP-0156 host-meta discovery."""
