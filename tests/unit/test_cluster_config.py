"""[cluster]: off by default, every key checked, refused without PostgreSQL."""

from __future__ import annotations

from tests.unit.test_config import MINIMAL, error_of, load_text

POSTGRESQL = '[storage]\nbackend = "postgresql"\ndsn = "host=127.0.0.1 dbname=xmppd"\n'


def test_off_by_default(tmp_path):
    assert load_text(tmp_path, MINIMAL).cluster is None
    assert load_text(tmp_path, MINIMAL + POSTGRESQL).cluster is None


def test_a_cluster_node(tmp_path):
    config = load_text(tmp_path, MINIMAL + POSTGRESQL
                       + '[cluster]\nredis = "redis://:s3cret@redis.example:6380/2"\n'
                         'node = "node-a.1"\n')
    assert config.cluster.node == "node-a.1"
    assert config.cluster.heartbeat == 5.0
    from xmppd.cluster.address import parse_redis_url

    address = parse_redis_url(config.cluster.redis)
    assert (address.host, address.port, address.db, address.password) == (
        "redis.example", 6380, 2, "s3cret")
    assert "s3cret" not in str(address)


def test_refused_with_sqlite(tmp_path):
    message = error_of(tmp_path, MINIMAL + '[cluster]\nredis = "redis://127.0.0.1"\nnode = "a"\n')
    assert message.startswith("[cluster] redis: several nodes need one shared database")
    assert 'backend = "postgresql", not "sqlite"' in message


def test_bad_values_name_the_key(tmp_path):
    base = MINIMAL + POSTGRESQL + "[cluster]\n"
    cases = {
        'redis = "http://x"\nnode = "a"\n': "[cluster] redis: expected a redis://",
        'redis = "redis://:pw@h/x"\nnode = "a"\n': "[cluster] redis: the redis:// URL's path",
        'redis = "redis://:pw@h:99999"\nnode = "a"\n': "[cluster] redis: not a redis:// URL",
        'redis = "redis://h"\nnode = "a b"\n': "[cluster] node: expected a node name",
        'redis = "redis://h"\n': "[cluster] node: required",
        'node = "a"\n': "[cluster] redis: required",
        'redis = "redis://h"\nnode = "a"\nheartbeat = 0\n': "[cluster] heartbeat: must be",
        'redis = "redis://h"\nnode = "a"\nnodes = 2\n': "[cluster] nodes: unknown key",
    }
    for text, expected in cases.items():
        message = error_of(tmp_path, base + text)
        assert message.startswith(expected), (text, message)
        assert "pw" not in message
