"""Server trust: the XEP-0267 server roster and what is built on it (XEP-0268 incidents).

server_roster holds the rules, service the ServerTrust that keeps and applies them (the
IServerTrust provider), notify how admins hear of it, ratelimit what keeps peers from flooding
them, incidents the XEP-0268 report format. The plugins server_trust and incident wire them in.
"""

from xmppd.trust.server_roster import TrustError

__all__ = ["TrustError"]
