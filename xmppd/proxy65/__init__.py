"""XEP-0065 SOCKS5 bytestreams proxy: what the proxy65 plugin (xmppd.plugins.proxy65) runs.

- ``socks5``: the SOCKS5 listener's protocol, the XEP's subset of RFC 1928 (no
  authentication, CONNECT to a DOMAINNAME that is the stream's hash, port 0);
- ``broker``: the connections waiting for their partner and for the requester's
  ``<activate/>``, the timeouts, the per-user limit of transfers;
- ``relay``: the bytes of an activated stream, both ways, with backpressure and the
  per-user bandwidth cap (``bucket``: a token bucket).
"""

from xmppd.proxy65.broker import ActivationError, Broker, stream_hash
from xmppd.proxy65.socks5 import Socks5Factory

__all__ = ["ActivationError", "Broker", "Socks5Factory", "stream_hash"]
