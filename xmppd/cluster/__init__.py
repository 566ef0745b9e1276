"""Clustering (``[cluster]``): several nodes serving the same domains on one PostgreSQL and one
Redis. Off unless configured; without it none of this is imported.

- ``address``: the ``redis://`` URL, checked for the config.
- ``redis``: the Redis connections (txredisapi, on the reactor).
- ``directory``: the session registry in Redis and this node's mirror of the other nodes'
  sessions, kept alive by heartbeats.
- ``delivery``: the chain links that carry messages to sessions on other nodes, and what a
  node does with the stanzas forwarded to it.
- ``broadcast``: news for every node on one channel; ``rosters`` and ``pep`` carry the roster
  plugin's changes and the pep plugin's notifications on it to the other nodes, ``accounts``
  the deletion of an account (every node ends its sessions); ``insist``: news sent again
  until every node heard it (PEP, across a Redis outage).
- ``locks``: work one node at a time runs under a name (IClusterLocks: one account's roster
  changes).
- ``view``: what ``xmppdctl cluster`` and the manhole's ``admin.cluster()`` show.
- ``streams``: each node's inbox in Redis (a stream): stanzas for its sessions, kept until
  handed over; ``rescue``: a dead node's inbox emptied by a live one.
- ``federation``: the dialback secret every node derives from ``[cluster] secret``.
- ``node``: the wiring into a running server (events, links, the router's remote-sessions
  seam, which the presence and carbons plugins read through ``ctx.remote_sessions()``) and
  the stanzas and presence requests between nodes.
- ``resumption``: XEP-0198 resumption of a session another node holds (handed over).
- ``placement``, ``rooms``, ``memberships``: MUC rooms, each run by one node (rendezvous
  hashing over the live nodes), handed over or reloaded when the nodes change.
"""

from __future__ import annotations

from twisted.internet import defer


def start_node(server) -> defer.Deferred:
    """This server as a node of the ``[cluster]`` its config sets (the caller checked it
    does): a Deferred of the started ClusterNode. The Redis client is an optional extra; a
    config asking for a cluster without it fails with what to install."""
    try:
        from xmppd.cluster.node import start_cluster
    except ImportError as error:
        return defer.fail(RuntimeError(f"[cluster] needs the Redis client: pip install "
                                       f"'xmppd[cluster]' ({error})"))
    return start_cluster(server)
