"""xmppd.cluster.view without Redis (a dictionary answers its commands): what a node writes
with its heartbeat, and the rows of ``xmppdctl cluster``, ``cluster sessions`` and
``cluster links`` read back, a dead node and a broken entry included."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer, task

from xmppd.cluster.view import ClusterView, node_key

LINK = {"direction": "outgoing", "local": "a.example", "remote": "b.example",
        "auth": "certificate", "tls": True, "peer": "127.0.0.1:5269", "extra": "dropped"}


class Redis:
    """The few commands the view uses, on dictionaries; each answers a fired Deferred."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.sets: dict[str, set[str]] = {}
        self.expiry: dict[str, int] = {}

    def set(self, key, value, pexpire=None):
        self.values[key] = value
        self.expiry[key] = pexpire
        return defer.succeed("OK")

    def get(self, key):
        return defer.succeed(self.values.get(key))

    def delete(self, key):
        return defer.succeed(int(self.values.pop(key, None) is not None))

    def exists(self, key):
        return defer.succeed(int(key in self.values))

    def hlen(self, key):
        return defer.succeed(len(self.hashes.get(key, {})))

    def hgetall(self, key):
        return defer.succeed(dict(self.hashes.get(key, {})))

    def smembers(self, key):
        return defer.succeed(set(self.sets.get(key, set())))


def result(d: defer.Deferred):
    outcome = []
    d.addBoth(outcome.append)
    (value,) = outcome
    if isinstance(value, Exception) or hasattr(value, "raiseException"):
        value.raiseException()
    return value


def test_a_node_writes_its_links_with_each_heartbeat_and_deletes_them_on_stop():
    redis, clock = Redis(), task.Clock()
    clock.advance(1000)
    links = [LINK]
    view = ClusterView(redis, "a", 2.0, clock, lambda: links)
    result(view.start())
    written = json.loads(redis.values[node_key("a")])
    assert written["heartbeat"] == 1000 and written["started"] == 1000
    assert written["links"] == [{k: v for k, v in LINK.items() if k != "extra"}]
    assert redis.expiry[node_key("a")] == 6000  # three heartbeats, in milliseconds
    links.clear()
    clock.advance(2.0)
    assert json.loads(redis.values[node_key("a")]) == {"heartbeat": 1002, "started": 1000,
                                                        "links": []}
    result(view.stop())
    assert node_key("a") not in redis.values
    clock.advance(10)  # no more writes
    assert node_key("a") not in redis.values


def test_the_rows_of_every_node_from_any_node():
    redis, clock = Redis(), task.Clock()
    clock.advance(500)
    redis.sets["xmppd:nodes"] = {"a", "b", "c"}
    redis.values["xmppd:alive:a"] = redis.values["xmppd:alive:b"] = "1"  # c: dead
    redis.values[node_key("a")] = json.dumps({"heartbeat": 499.25, "started": 100,
                                              "links": [LINK, LINK]})
    redis.values[node_key("b")] = "{not json"
    redis.hashes["xmppd:sessions:a"] = {"alice@localhost/phone": "5 1 1",
                                        "alice@localhost/x": "junk"}
    redis.hashes["xmppd:sessions:c"] = {"bob@localhost/my desk": "0 0"}
    view = ClusterView(redis, "b", 1.0, clock, lambda: [])
    rows = result(view.nodes())
    assert [(r["node"], r["alive"], r["last_heartbeat"], r["since"], r["sessions"], r["links"],
             r["this"]) for r in rows] == [("a", True, "0.8s ago", 100, 2, 2, False),
                                           ("b", True, None, None, 0, 0, True),
                                           ("c", False, None, None, 1, 0, False)]
    assert result(view.sessions()) == [
        {"node": "a", "jid": "alice@localhost/phone", "priority": 5, "available": True,
         "carbons": True},
        {"node": "c", "jid": "bob@localhost/my desk", "priority": 0, "available": False,
         "carbons": False}]
    assert [row["jid"] for row in result(view.sessions("c"))] == ["bob@localhost/my desk"]
    links = result(view.s2s_links())
    assert len(links) == 2 and links[0]["node"] == "a" and "extra" not in links[0]
    assert result(view.s2s_links("b")) == []
    with pytest.raises(ValueError, match=r"no node 'z' in the cluster \(nodes: a, b, c\)"):
        result(view.sessions("z"))
    assert [name for name, *_ in view.admin_commands()] == ["cluster", "cluster sessions",
                                                            "cluster links"]
