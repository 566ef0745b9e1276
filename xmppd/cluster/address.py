"""``[cluster] redis``: the Redis server's address, checked without importing a Redis client
(the config is read before anything else); messages never repeat the URL, which may hold
a password."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 6379


class RedisAddress(NamedTuple):
    host: str
    port: int
    db: int
    password: str | None

    def __str__(self) -> str:  # for logs: never the password
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]``; ValueError says what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("not a redis:// URL (bad port?)") from None
    if parts.scheme != "redis":
        raise ValueError("expected a redis://host[:port][/db] URL")
    if not parts.hostname:
        raise ValueError("the redis:// URL has no host")
    if parts.query or parts.fragment:
        raise ValueError("the redis:// URL takes no query or fragment")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("the redis:// URL's path must be a database number")
    password = unquote(parts.password) if parts.password else None
    return RedisAddress(parts.hostname, port, int(path or 0), password)
