"""Server-to-server federation (RFC 6120, XEP-0220, XEP-0178, XEP-0288).

The modules here are pure building blocks with no streams or sockets: dialback keys
(``dialback_keys``), certificate checks (``certs``), SRV resolution (``srv``) and the per-peer
trust policy (``policy``). The s2s streams are built on top of them.
"""
