# -*- test-case-name: tests.unit.test_config -*-
"""The TOML configuration, read into frozen dataclasses and checked in full at start-up.

Everything that can be wrong with the file is found here, before the reactor runs: an unknown
section or key (a typo that would otherwise silently keep a default), a value of the wrong type,
a bad domain or port. Each problem is one ``ConfigError`` line naming the file and the key, e.g.
``etc/xmppd.toml: [c2s] require_encryption: expected true or false, got "yes"``.
Relative paths are relative to the config file's folder, so the server can start from anywhere.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from xmppd.jid import JID, InvalidJID, parse_jid, prepare_domain
from xmppd.limits.settings import DEFAULTS as LIMITS_DEFAULTS
from xmppd.limits.settings import LimitsConfig
from xmppd.stream.listen import DEFAULT_BACKLOG

T = TypeVar("T")

# RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.
MIN_STANZA_SIZE = 10_000
SASL_MECHANISMS = (
    "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN",
)
# The trust ladder for federation, weakest first (see ARCHITECTURE.md), then buddies-only:
# secure, and only XEP-0267 server buddies beyond the subscription itself (xmppd.s2s.policy).
BUDDIES_ONLY = "buddies-only"
S2S_POLICIES = ("promiscuous", "verified", "secure", "trusted", BUDDIES_ONLY)
LOG_LEVELS = ("debug", "info", "warn", "error")
ENDPOINT_TYPES = ("tcp:", "ssl:", "unix:")
# What `xmppdctl hash-password` writes: pbkdf2-sha256$iterations$salt_b64$hash_b64.
_BASE64 = r"[A-Za-z0-9+/_-]+=*"
PASSWORD_HASH_SHAPE = re.compile(rf"pbkdf2-sha256\$[1-9][0-9]*\${_BASE64}\${_BASE64}")
# A TOML bare key; plugin names are written as keys ([plugins.NAME]), so they are bare keys too.
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(Exception):
    """The configuration cannot be used; str() is one line naming the file and the key.

    ``problems`` holds every problem found (str() is the first), so an operator sees them all
    at once (twistd at start-up, ``xmppdctl check``) rather than one per try.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))
        self.problems: list[str] = problems or [str(self)]


class HostPort(NamedTuple):
    """A "host:port" setting; ``host`` is a prepared domain or a bare IP address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerConfig:
    domains: tuple[str, ...]
    data_dir: Path
    plugin_dirs: tuple[Path, ...]
    admins: tuple[JID, ...]
    max_stanza_size: int
    shutdown_timeout: float
    control_socket: Path | None  # the admin control channel (UNIX socket); None when off
    listen_backlog: int  # accept queue of every listener (xmppd.stream.listen)


@dataclass(frozen=True)
class TLSConfig:
    certificate: Path | None  # None: only the certificate directory is used
    key: Path | None
    min_version: str
    certificates: Path | None = None  # DOMAIN.crt/.key or DOMAIN/fullchain.pem+privkey.pem
    watch: int = 0  # seconds between checks of the files for changes; 0: only on SIGHUP


DEFAULT_PLUGINS = ("disco", "ping", "version", "roster", "presence", "offline", "pep", "pubsub",
                   "smacks", "carbons", "csi", "blocking", "vcard", "avatar_hash", "private",
                   "bookmarks", "vcard_conversion", "push", "time", "last_activity", "muc", "fast",
                   "adhoc", "account_status", "contact_info")


@dataclass(frozen=True)
class C2SConfig:
    listen: tuple[str, ...]
    direct_tls: tuple[str, ...]
    require_encryption: bool
    auth_timeout: float
    resource_conflict: str
    sasl_mechanisms: tuple[str, ...]
    max_resources: int
    bare_message_delivery: str


@dataclass(frozen=True)
class S2SConfig:
    listen: tuple[str, ...]
    direct_tls: tuple[str, ...]  # XEP-0368 listeners (_xmpps-server)
    dns_servers: tuple[HostPort, ...]
    ca_file: Path
    default_policy: str
    bind_address: str | None
    policy: Mapping[str, str]  # prepared domain -> one of S2S_POLICIES
    hosts: Mapping[str, HostPort]  # prepared domain -> static route
    allow: tuple[str, ...] | None  # only these peers, when set
    deny: tuple[str, ...]  # never these peers
    connect_timeout: float
    auth_timeout: float
    queue_limit: int
    bidi: bool  # offer and use bidirectional streams (XEP-0288)


@dataclass(frozen=True)
class StorageConfig:
    backend: str
    path: Path
    dsn: str | None


@dataclass(frozen=True)
class ManholeConfig:
    listen: str  # "" when disabled
    authorized_keys: Path | None
    password_hash: str | None
    host_key: Path


@dataclass(frozen=True)
class PluginsConfig:
    enabled: tuple[str, ...]
    sections: Mapping[str, dict]  # plugin name -> its [plugins.NAME] table, checked by the plugin


@dataclass(frozen=True)
class LogConfig:
    level: str


@dataclass(frozen=True)
class HttpConfig:
    """The web server (xmppd.http): listens only when a plugin mounts something."""

    listen: tuple[str, ...]  # plain HTTP listeners
    https: tuple[str, ...]  # HTTPS listeners, with the [tls] certificate
    external_url: str | None  # the base URL clients are given (a proxy in front); None: ours
    # browser pages (their Origin) allowed to use the web clients' endpoints; "*": any
    cors_origins: tuple[str, ...] = ("*",)
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For / -Proto are believed
    # concurrent HTTP connections (WebSocket and BOSH included) from one address; trusted
    # proxies and [limits] exempt are not capped (a reverse proxy is one address for all)
    max_connections_per_ip: int = 100
    idle_timeout: float = 60.0  # seconds an HTTP connection may wait for its next request


@dataclass(frozen=True)
class ComponentsConfig:
    """XEP-0114 external components (xmppd.component): listeners and domain -> secret."""

    listen: tuple[str, ...]
    secrets: Mapping[str, str]  # prepared domain -> shared secret


@dataclass(frozen=True)
class ClusterConfig:
    """[cluster] (xmppd.cluster): nodes sharing one PostgreSQL and one Redis."""

    redis: str  # redis://[:password@]host[:port][/db]; never logged as is
    node: str  # this node's name, unique in the cluster
    heartbeat: float  # seconds between heartbeats; a node silent 3 heartbeats is dead
    # shared by every node: dialback keys any node can verify (xmppd.cluster.federation);
    # required with federation on, never shown
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    tls: TLSConfig
    c2s: C2SConfig
    s2s: S2SConfig
    storage: StorageConfig
    manhole: ManholeConfig
    plugins: PluginsConfig
    log: LogConfig
    limits: LimitsConfig = LIMITS_DEFAULTS  # [limits] (xmppd.limits)
    http: HttpConfig = HttpConfig((), ("tcp:5281:interface=127.0.0.1",), None)
    components: ComponentsConfig = ComponentsConfig(("tcp:5347:interface=127.0.0.1",),
                                                    MappingProxyType({}))
    cluster: ClusterConfig | None = None  # [cluster]; None: a single node (the default)


# --------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike) -> Config:
    """Read and check the TOML file at ``path``; raises ConfigError naming every problem
    found (``problems``), the first as its message."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{source}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{source}: not valid UTF-8: {error.reason}") from None
    location = Path(os.path.abspath(source))
    return _Reader(source, location.parent).config(location, document)


class _Invalid(Exception):
    """A bad value; the table it came from adds the file and key to the message."""


_REQUIRED: Any = object()


class _Table:
    """One TOML table being read: hands out checked values and remembers the keys it knows."""

    def __init__(self, source: str, name: str, values: Any,
                 problems: list[ConfigError] | None = None) -> None:
        self.source = source
        self.name = name
        # where a bad value that has a default is noted before reading on (None: raise it)
        self.problems = problems
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {name}: expected a table [{name}], got {_show(values)}")
        self.values = values
        self.known: set[str] = set()

    def get(self, key: str, check: Callable[[Any], T], default: Any = _REQUIRED) -> T:
        self.known.add(key)
        if key not in self.values:
            if default is _REQUIRED:
                raise self.error(key, "required")
            return default
        try:
            return check(self.values[key])
        except _Invalid as problem:
            error = self.error(key, str(problem))
            if self.problems is None or default is _REQUIRED:
                raise error from None
            self.problems.append(error)  # read on with the default, to find the next problem
            return default

    def table(self, key: str) -> _Table:
        """A sub-table such as [s2s.policy]; absent means empty."""
        self.known.add(key)
        return _Table(self.source, f"{self.name}.{_key(key)}", self.values.get(key, {}),
                      self.problems)

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: [{self.name}] {_key(key)}: {message}")

    def finish(self) -> None:
        unknown = sorted(set(self.values) - self.known)
        errors = [self.error(key, f"unknown key (known: {', '.join(sorted(self.known))})")
                  for key in unknown]
        if errors and self.problems is None:
            raise errors[0]
        if errors:
            self.problems.extend(errors)


class _Reader:
    """Turns the parsed document into a Config, section by section."""

    SECTIONS = ("server", "tls", "c2s", "s2s", "storage", "manhole", "plugins", "log", "http",
                "components", "limits", "cluster")

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def config(self, location: Path, document: dict) -> Config:
        problems: list[ConfigError] = []
        for name in sorted(set(document) - set(self.SECTIONS)):
            where = f"[{_key(name)}]" if isinstance(document[name], dict) else _key(name)
            problems.append(ConfigError(f"{self.source}: {where}: unknown section "
                                        f"(known: {', '.join(self.SECTIONS)})"))
        tables: dict[str, _Table] = {}
        for name in self.SECTIONS:
            try:
                tables[name] = _Table(self.source, name, document.get(name, {}), problems)
            except ConfigError as error:
                problems.append(error)
                tables[name] = _Table(self.source, name, {}, problems)
        readers = {
            "server": self.server,
            "tls": self.tls,
            "c2s": self.c2s,
            "s2s": self.s2s,
            "storage": lambda t: self.storage(t, parts["server"].data_dir),
            "manhole": lambda t: self.manhole(t, parts["server"].data_dir),
            "plugins": self.plugins,
            "log": lambda t: LogConfig(level=t.get("level", _choice(LOG_LEVELS), "info")),
            "limits": self.limits,
            "http": self.http,
            "components": lambda t: self.components(
                t, parts["server"].domains if "server" in parts else ()),
            "cluster": lambda t: self.cluster(t, parts.get("storage"), parts.get("s2s")),
        }
        parts: dict[str, Any] = {}
        for name, read in readers.items():
            if name in ("storage", "manhole") and "server" not in parts:
                continue  # they need [server] data_dir, whose problem is already noted
            try:
                parts[name] = read(tables[name])
                tables[name].finish()
            except ConfigError as error:  # a problem that stops this section: the next one
                problems.append(error)
        if problems:
            raise ConfigError(str(problems[0]), [str(p) for p in problems])
        return Config(path=location, **parts)

    def path(self, value: Any) -> Path:
        if not isinstance(value, str) or not value:
            raise _Invalid(f"expected a path, got {_show(value)}")
        return Path(os.path.normpath(self.base_dir / value))

    def path_or_off(self, value: Any) -> Path | None:
        """A path, or None for "" (the feature it locates is turned off)."""
        return None if value == "" else self.path(value)

    def server(self, t: _Table) -> ServerConfig:
        data_dir = t.get("data_dir", self.path, self.path("var"))
        return ServerConfig(
            domains=t.get("domains", _list(_domain, unique=True, non_empty=True)),
            data_dir=data_dir,
            plugin_dirs=t.get("plugin_dirs", _list(self.path), ()),
            admins=t.get("admins", _list(_bare_jid, unique=True), ()),
            max_stanza_size=t.get("max_stanza_size", _integer(minimum=MIN_STANZA_SIZE), 262_144),
            shutdown_timeout=t.get("shutdown_timeout", _seconds, 5.0),
            control_socket=t.get("control_socket", self.path_or_off, data_dir / "control.sock"),
            listen_backlog=t.get("listen_backlog", _integer(minimum=1, maximum=65535),
                                 DEFAULT_BACKLOG),
        )

    def tls(self, t: _Table) -> TLSConfig:
        certificates = t.get("certificates", self.path_or_off, None)
        # with a certificate directory the single pair is optional: no default paths then
        pair = (None, None) if certificates else (self.path("var/tls/localhost.crt"),
                                                  self.path("var/tls/localhost.key"))
        config = TLSConfig(
            certificate=t.get("certificate", self.path, pair[0]),
            key=t.get("key", self.path, pair[1]),
            min_version=t.get("min_version", _choice(("1.2", "1.3")), "1.2"),
            certificates=certificates,
            watch=t.get("watch", _integer(minimum=0), 0),
        )
        if (config.certificate is None) != (config.key is None):
            raise t.error("certificate" if config.certificate is None else "key",
                          "required: certificate and key go together")
        return config

    def c2s(self, t: _Table) -> C2SConfig:
        return C2SConfig(
            listen=t.get("listen", _list(_endpoint), ("tcp:5222:interface=127.0.0.1",)),
            direct_tls=t.get("direct_tls", _list(_endpoint), ("tcp:5223:interface=127.0.0.1",)),
            require_encryption=t.get("require_encryption", _boolean, True),
            auth_timeout=t.get("auth_timeout", _seconds, 30.0),
            resource_conflict=t.get("resource_conflict", _choice(("replace", "rename")),
                                    "replace"),
            sasl_mechanisms=t.get("sasl_mechanisms",
                                  _list(_choice(SASL_MECHANISMS), unique=True, non_empty=True),
                                  SASL_MECHANISMS),
            max_resources=t.get("max_resources", _integer(minimum=1), 10),
            bare_message_delivery=t.get("bare_message_delivery",
                                        _choice(("highest", "all")), "highest"),
        )

    def s2s(self, t: _Table) -> S2SConfig:
        policy_table, hosts_table = t.table("policy"), t.table("hosts")
        config = S2SConfig(
            listen=t.get("listen", _list(_endpoint), ()),
            direct_tls=t.get("direct_tls", _list(_endpoint), ()),
            dns_servers=t.get("dns_servers", _list(_host_port), ()),
            ca_file=t.get("ca_file", self.path, Path("/etc/ssl/certs/ca-certificates.crt")),
            default_policy=t.get("default_policy", _choice(S2S_POLICIES), "secure"),
            bind_address=t.get("bind_address", _ip_address, None),
            policy=_domain_map(policy_table, _choice(S2S_POLICIES)),
            hosts=_domain_map(hosts_table, _host_port),
            allow=t.get("allow", _list(_domain, unique=True), None),
            deny=t.get("deny", _list(_domain, unique=True), ()),
            connect_timeout=t.get("connect_timeout", _seconds, 10.0),
            auth_timeout=t.get("auth_timeout", _seconds, 30.0),
            queue_limit=t.get("queue_limit", _integer(minimum=1), 1000),
            bidi=t.get("bidi", _boolean, True),
        )
        policy_table.finish()
        hosts_table.finish()
        return config

    def storage(self, t: _Table, data_dir: Path) -> StorageConfig:
        backend = t.get("backend", _choice(("sqlite", "postgresql")), "sqlite")
        path = t.get("path", self.path, None)
        dsn = t.get("dsn", _dsn, None)
        if backend == "postgresql" and dsn is None:
            raise t.error("dsn", 'required when backend = "postgresql"')
        if backend != "postgresql" and dsn is not None:
            raise t.error("dsn", f'only used when backend = "postgresql", not "{backend}"')
        if backend != "sqlite" and path is not None:
            raise t.error("path", f'only used when backend = "sqlite", not "{backend}"')
        return StorageConfig(backend=backend, path=path or data_dir / "xmppd.sqlite", dsn=dsn)

    def cluster(self, t: _Table, storage: StorageConfig | None,
                s2s: S2SConfig | None) -> ClusterConfig | None:
        if not t.values:
            return None
        config = ClusterConfig(redis=t.get("redis", _redis_url), node=t.get("node", _node_name),
                               heartbeat=t.get("heartbeat", _seconds, 5.0),
                               secret=t.get("secret", _component_secret, None))
        if storage is not None and storage.backend != "postgresql":
            raise t.error("redis", 'several nodes need one shared database: [storage] '
                          f'backend = "postgresql", not "{storage.backend}"')
        if config.secret is None and s2s is not None and (s2s.listen or s2s.direct_tls):
            raise t.error("secret", "required with federation on ([s2s] listen): the same on "
                          "every node, so that any node can verify the dialback keys of another")
        return config

    def manhole(self, t: _Table, data_dir: Path) -> ManholeConfig:
        config = ManholeConfig(
            listen=t.get("listen", _endpoint_or_empty, ""),
            authorized_keys=t.get("authorized_keys", self.path, None),
            password_hash=t.get("password_hash", _password_hash, None),
            host_key=t.get("host_key", self.path, data_dir / "manhole_host_key"),
        )
        if config.listen and config.authorized_keys is None and config.password_hash is None:
            raise t.error("listen", "is set but neither authorized_keys nor password_hash is, "
                                    "so nobody could log in")
        return config

    def http(self, t: _Table) -> HttpConfig:
        return HttpConfig(
            listen=t.get("listen", _list(_endpoint), ()),
            https=t.get("https", _list(_endpoint), ("tcp:5281:interface=127.0.0.1",)),
            external_url=t.get("external_url", _base_url, None),
            cors_origins=t.get("cors_origins", _list(_origin, unique=True), ("*",)),
            trusted_proxies=t.get("trusted_proxies", _list(_ip_address, unique=True), ()),
            max_connections_per_ip=t.get("max_connections_per_ip", _integer(1), 100),
            idle_timeout=t.get("idle_timeout", _seconds, 60.0),
        )

    def components(self, t: _Table, hosts: tuple[str, ...]) -> ComponentsConfig:
        secrets_table = t.table("secrets")
        config = ComponentsConfig(
            listen=t.get("listen", _list(_endpoint), ("tcp:5347:interface=127.0.0.1",)),
            secrets=_domain_map(secrets_table, _component_secret),
        )
        for domain in config.secrets:
            if domain in hosts:
                raise secrets_table.error(domain, "is one of [server] domains, not a component's")
        secrets_table.finish()
        return config

    def limits(self, t: _Table) -> LimitsConfig:
        from xmppd.limits.reading import read_limits  # it uses this module's checks

        return read_limits(t)

    def plugins(self, t: _Table) -> PluginsConfig:
        enabled = t.get("enabled", _list(_plugin_name, unique=True), DEFAULT_PLUGINS)
        sections = {}
        for name, value in t.values.items():
            if name == "enabled":
                continue
            if not isinstance(value, dict):
                raise t.error(name, f"expected a table [plugins.{_key(name)}] of that plugin's "
                                    f"settings, got {_show(value)}")
            t.known.add(name)
            sections[name] = value
        return PluginsConfig(enabled=enabled, sections=MappingProxyType(sections))


# --------------------------------------------------------------------------- value checks


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_show(value)}")
    return value


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected a whole number, got {_show(value)}")
        if value < minimum:
            raise _Invalid(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise _Invalid(f"must be at most {maximum}, got {value}")
        return value

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"expected a number of seconds, got {_show(value)}")
    if not math.isfinite(value) or value <= 0:
        raise _Invalid(f"must be a finite number of seconds above 0, got {_show(value)}")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"expected a non-empty string, got {_show(value)}")
    return value


MIN_COMPONENT_SECRET = 16  # one handshake (SHA-1 of id + secret) lets anyone guess offline


def _component_secret(value: Any) -> str:
    """A XEP-0114 shared secret long enough not to be guessed from one captured or failed
    handshake; the message gives its length, never the secret."""
    if isinstance(value, str) and 0 < len(value) < MIN_COMPONENT_SECRET:
        raise _Invalid(f"expected a secret of at least {MIN_COMPONENT_SECRET} characters, "
                       f"got one of {len(value)}")
    return _text(value)


def _dsn(value: Any) -> str:
    """A libpq connection string or URI; the message never repeats it (it may hold a password)."""
    from xmppd.storage.postgresql import check_dsn

    try:
        check_dsn(_text(value))
    except ValueError as error:
        raise _Invalid(str(error)) from None
    return value


def _redis_url(value: Any) -> str:
    """redis://host[:port][/db]; the message never repeats it (it may hold a password)."""
    from xmppd.cluster.address import parse_redis_url

    try:
        parse_redis_url(_text(value))
    except ValueError as error:
        raise _Invalid(str(error)) from None
    return value


def _node_name(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", value):
        return value
    raise _Invalid(f"expected a node name (letters, digits, '.', '_', '-'; up to 63), "
                   f"got {_show(value)}")


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and value in options:
            return value
        hint = " (quote it: it is a string)" if str(value) in options else ""
        raise _Invalid(f"expected one of {', '.join(map(_show, options))}, "
                       f"got {_show(value)}{hint}")

    return check


def _list(check: Callable[[Any], T], unique: bool = False,
          non_empty: bool = False) -> Callable[[Any], tuple[T, ...]]:
    def check_list(value: Any) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected a list, got {_show(value)}")
        if non_empty and not value:
            raise _Invalid("must not be empty")
        items = []
        for number, item in enumerate(value, 1):
            try:
                checked = check(item)
            except _Invalid as problem:
                raise _Invalid(f"item {number}: {problem}") from None
            if unique and checked in items:
                raise _Invalid(f"item {number}: {_show(item)} is listed twice")
            items.append(checked)
        return tuple(items)

    return check_list


def _endpoint(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(ENDPOINT_TYPES):
        raise _Invalid(f"expected a Twisted endpoint string starting with "
                       f"{', '.join(map(_show, ENDPOINT_TYPES))}, got {_show(value)}")
    return value


def _endpoint_or_empty(value: Any) -> str:
    return "" if value == "" else _endpoint(value)


def _domain(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a domain name, got {_show(value)}")
    try:
        return prepare_domain(value)
    except InvalidJID as error:
        raise _Invalid(f"{_show(value)}: {error}") from None


def _bare_jid(value: Any) -> JID:
    if not isinstance(value, str):
        raise _Invalid(f"expected a bare JID such as \"admin@example.org\", got {_show(value)}")
    try:
        jid = parse_jid(value)
    except InvalidJID as error:
        raise _Invalid(f"{_show(value)}: {error}") from None
    if not jid.is_bare():
        raise _Invalid(f"{_show(value)}: expected a bare JID, without a /resource")
    return jid


def _host_port(value: Any) -> HostPort:
    if not isinstance(value, str):
        raise _Invalid(f"expected \"host:port\", got {_show(value)}")
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        raise _Invalid(f"expected \"host:port\", got {_show(value)}")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise _Invalid(f"{_show(value)}: the port must be a number from 1 to 65535")
    if ":" in host and not host.startswith("["):
        raise _Invalid(f"{_show(value)}: write an IPv6 address in brackets, as \"[::1]:53\"")
    try:
        host = prepare_domain(host)
    except InvalidJID as error:
        raise _Invalid(f"{_show(value)}: bad host: {error}") from None
    return HostPort(host.strip("[]"), int(port))


def _base_url(value: Any) -> str:
    """An http(s) URL without query or fragment, kept without its trailing slash."""
    if (not isinstance(value, str) or not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value)):
        raise _Invalid(f"expected an http:// or https:// URL without ?query or #fragment, "
                       f"got {_show(value)}")
    return value.rstrip("/")


def _origin(value: Any) -> str:
    """A browser Origin (scheme://host[:port], RFC 6454) or "*" for any."""
    if value == "*":
        return value
    if (not isinstance(value, str)
            or not re.fullmatch(r"https?://[^/?#\s:]+(:\d{1,5})?", value)):
        raise _Invalid(f'expected "*" or an origin such as "https://chat.example.org", '
                       f"got {_show(value)}")
    return value.lower()


def _ip_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value if isinstance(value, str) else None))
    except ValueError:
        raise _Invalid(f"expected an IP address, got {_show(value)}") from None


def _password_hash(value: Any) -> str:
    if not isinstance(value, str) or not PASSWORD_HASH_SHAPE.fullmatch(value):
        # Never echo the value: it may be a password typed where its hash belongs.
        raise _Invalid("expected a hash from `xmppdctl hash-password` "
                       "(pbkdf2-sha256$iterations$salt$hash)")
    return value


def _plugin_name(value: Any) -> str:
    if not isinstance(value, str) or not BARE_KEY.fullmatch(value):
        raise _Invalid(f"expected a plugin name, got {_show(value)}")
    return value


def _domain_map(table: _Table, check: Callable[[Any], T]) -> Mapping[str, T]:
    """A table keyed by domain, such as [s2s.policy]; keys are prepared, values checked."""
    result: dict[str, T] = {}
    for key in table.values:
        table.known.add(key)
        try:
            domain = _domain(key)
        except _Invalid as problem:
            raise table.error(key, f"not a domain: {problem}") from None
        if domain in result:
            raise table.error(key, f"names the same domain as another key ({domain})")
        result[domain] = table.get(key, check)
    return MappingProxyType(result)


# --------------------------------------------------------------------------- messages


def _show(value: Any) -> str:
    """A value as the TOML file would spell it, short and on one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return shown if len(shown) <= 60 else shown[:56] + '..."'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # TOML dates and times


def _key(key: str) -> str:
    """A key as TOML needs it written: bare when it can be, quoted otherwise."""
    return key if BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
