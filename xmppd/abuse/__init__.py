"""Abuse across federation (issue 15): domain blocklists, shared by trusted buddies, and
limits on what strangers on other servers may send our users. The domain_block plugin wires
these together (xmppd/plugins/domain_block.py)."""
