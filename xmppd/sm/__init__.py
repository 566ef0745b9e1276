"""XEP-0198 stream management, the logic behind the ``smacks`` plugin.

- ``counter``: the two counts (stanzas handled from the client, stanzas sent to it and
  not yet acknowledged), modulo 2^32, and the ``h`` checks of §4;
- ``elements``: the protocol's elements (``<enabled/>``, ``<failed/>``, ``<a/>``, ...) and
  the XEP-0203 delay stamp put on what is sent again or kept offline;
- ``manager``: what happens to a session: enable, acks, hibernation when its connection
  is lost, resumption on a new stream, and its unacknowledged messages when it ends for
  good (offline storage, or an error to their sender).

The plugin (xmppd.plugins.smacks) only reads its options and registers these with its
context; the session hooks it relies on are xmppd.c2s.hooks and xmppd.c2s.filters.
"""
