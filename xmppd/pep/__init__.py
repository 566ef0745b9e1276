"""The PEP wiring (XEP-0163) around the pubsub core (xmppd.pubsub): what the pep plugin
needs beyond IQs, kept out of the plugin so each piece is small and tested alone.

- ``caps_cache``: the features behind each ``<c/>`` ver (XEP-0115), fetched once;
- ``interest``: per account, the available JIDs it hears from and the nodes each wants;
- ``notify``: who gets a notification, and the last items a newly interested JID gets;
- ``roster``: the roster questions of the access models, answered from the roster plugin.
"""
