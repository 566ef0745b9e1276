"""The server's one web server (twisted.web), shared by every plugin that serves HTTP:
HTTP file upload (XEP-0363) now, WebSocket, BOSH and metrics later. See xmppd.http.server."""
