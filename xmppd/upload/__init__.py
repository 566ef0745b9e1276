"""XEP-0363 HTTP file upload for the ``upload`` plugin: slot requests over XMPP
(``protocol``), the slots and files on disk with their quota and expiry (``slots``), the
HMAC tokens that authorize a PUT (``tokens``), and the twisted.web resource that takes the
PUT and serves the GET (``web``), mounted on the server's web server (xmppd.http)."""

NS = "urn:xmpp:http:upload:0"
