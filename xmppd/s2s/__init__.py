"""Server-to-server federation (RFC 6120, XEP-0220, XEP-0178, XEP-0288).

The modules here are pure building blocks with no streams or sockets: dialback keys
(``dialback_keys``), certificate checks (``certs``), SRV resolution (``srv``) and the per-peer
trust policy (``policy``). The s2s streams are built on top of them.
"""


def federation_enabled(s2s) -> bool:
    """Whether an ``[s2s]`` section turns federation on: only with a listener, so a peer can
    reach us back for dialback or bidirectional streams. Here, so that a server without
    federation never imports the streams and the resolver (twisted.names)."""
    return bool(s2s.listen or s2s.direct_tls)
