"""Federation from every node of a cluster: one dialback secret for all of them.

XEP-0220 lets the Authoritative Server that answers a peer's <db:verify/> be another machine
than the Originating Server that sent the key: the peer looks our domain up in DNS, and an SRV
record may list every node. A key made on one node must therefore verify on any other, so
with ``[cluster]`` the dialback secret is not the node's own ``dialback.secret`` file but is
derived from ``[cluster] secret``, the same on every node (the config refuses a node with
federation on and no secret). It is derived, not used as is, so that the configured text
serves only this purpose; neither is ever logged.

Everything else of federation is per node and needs nothing shared: each node opens its own
outgoing links (see the README, "Federation in a cluster"), and a stanza an incoming link brings
for a session on another node crosses the cluster like any other.
"""

from __future__ import annotations

import hashlib
import hmac

PURPOSE = b"xmppd cluster dialback secret v1"


def dialback_secret(cluster_secret: str) -> bytes:
    """The dialback HMAC secret every node derives alike from ``[cluster] secret``."""
    return hmac.new(cluster_secret.encode("utf-8"), PURPOSE, hashlib.sha256).digest()
