"""Clustering (``[cluster]``): several nodes serving the same domains on one PostgreSQL and one
Redis. Off unless configured; without it none of this is imported.

- ``address``: the ``redis://`` URL, checked for the config.
- ``redis``: the Redis connections (txredisapi, on the reactor).
- ``directory``: the session registry in Redis and this node's mirror of the other nodes'
  sessions, kept alive by heartbeats.
- ``sessions``: the session look-ups the router and the plugins use, local then remote.
- ``node``: the service that wires them into a running server and carries stanzas between
  nodes.
"""
