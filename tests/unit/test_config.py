"""The TOML config: the sample file, defaults, relative paths, and every error it can report."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import xmppd.config
from xmppd.config import (
    SASL_MECHANISMS,
    Config,
    ConfigError,
    HostPort,
    HttpConfig,
    load_config,
)
from xmppd.jid import parse_jid

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "etc" / "xmppd.toml"
MINIMAL = '[server]\ndomains = ["localhost"]\n'
HASH = "pbkdf2-sha256$1000$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNo"


def write(directory: Path, text: str, name: str = "xmppd.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(directory: Path, text: str) -> Config:
    return load_config(write(directory, text))


def error_of(directory: Path, text: str) -> str:
    """The message load_config gives for ``text``, without the leading file name."""
    path = write(directory, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: "):]


# --------------------------------------------------------------------------- the sample file


def test_sample_config_loads():
    config = load_config(SAMPLE)
    var = REPO / "var"
    assert config.path == SAMPLE
    assert config.server.domains == ("localhost",)
    assert config.server.data_dir == var
    assert config.tls.certificate == var / "tls" / "localhost.crt"
    assert config.tls.key == var / "tls" / "localhost.key"
    assert config.c2s.listen == ("tcp:5222:interface=127.0.0.1",)
    assert config.c2s.direct_tls == ("tcp:5223:interface=127.0.0.1",)
    assert config.s2s.listen == ()
    assert config.storage.backend == "sqlite"
    assert config.storage.path == var / "xmppd.sqlite"
    assert config.manhole.listen == ""
    assert config.plugins.enabled == ("disco", "ping", "version", "roster", "presence",
                                      "offline", "pep", "pubsub", "smacks", "carbons", "csi",
                                      "blocking", "vcard", "avatar_hash", "private",
                                      "bookmarks", "vcard_conversion", "push", "time",
                                      "last_activity", "muc", "fast", "adhoc", "account_status",
                                      "contact_info")


def _sample_keys() -> dict[str, set[str]]:
    """Every key the sample sets or shows commented out, by section (tables count as keys)."""
    keys: dict[str, set[str]] = {}
    section = None
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        header = re.fullmatch(r"(?:# )?\[([\w.]+)\]", line)
        if header:
            section = header[1]
            parent, _, child = section.partition(".")
            if child:
                keys.setdefault(parent, set()).add(child)
            continue
        setting = re.fullmatch(r"(?:# )?(\"?[\w.-]+\"?) = .+", line)
        if setting and section:
            keys.setdefault(section, set()).add(setting[1])
    return keys


def test_sample_config_shows_every_option_with_a_comment():
    keys = _sample_keys()
    config = load_config(SAMPLE)
    for field in dataclasses.fields(Config):
        if field.name == "path":
            continue
        section = getattr(config, field.name)
        if section is None:  # off by default ([cluster]): its keys are checked by name
            section = field.type.split(" | ")[0]
            schema = {f.name for f in dataclasses.fields(getattr(xmppd.config, section))}
        else:
            schema = {f.name for f in dataclasses.fields(section)}
        if field.name == "plugins":
            schema = {"enabled", "version"}  # sections: shown by a [plugins.version] example
        missing = schema - keys.get(field.name, set())
        assert not missing, f"[{field.name}] does not show {sorted(missing)}"
    # Each setting line (set or commented out) follows a comment line that explains it.
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.fullmatch(r"(?:# )?[\w-]+ = .+", line):
            above = lines[number - 1]
            assert above.startswith("# ") and not re.fullmatch(r"# [\w-]+ = .+", above), line


def test_sample_config_commented_examples_are_valid(tmp_path):
    # Uncomment every example except the two that exclude each other or are placeholders.
    text = SAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^# ((?:\"?[\w.-]+\"? = .+)|(?:\[[\w.]+\]))$",
                  lambda m: m[0] if re.match(r"# (dsn|password_hash|redis|node|heartbeat|secret) ",
                                             m[0])
                  else m[1], text)  # [cluster] needs PostgreSQL
    text = text.replace('data_dir = "../var"', 'data_dir = "var"')
    config = load_text(tmp_path, text)
    assert config.server.admins == (parse_jid("admin@localhost"),)
    assert config.s2s.policy == {"example.org": "trusted"}
    assert config.s2s.hosts == {"example.org": HostPort("127.0.0.1", 5269)}
    assert config.s2s.dns_servers == (HostPort("127.0.0.1", 53),)
    assert config.manhole.listen == "tcp:2222:interface=127.0.0.1"
    assert config.plugins.sections == {"version": {"show_os": False}}
    assert config.server.control_socket == tmp_path.parent / "var" / "control.sock"


# --------------------------------------------------------------------------- defaults


def test_defaults(tmp_path):
    config = load_text(tmp_path, MINIMAL)
    var = tmp_path / "var"
    assert config.path == tmp_path / "xmppd.toml"
    server = config.server
    assert server.data_dir == var
    assert (server.plugin_dirs, server.admins) == ((), ())
    assert (server.max_stanza_size, server.shutdown_timeout) == (262144, 5.0)
    assert server.control_socket == var / "control.sock"
    assert server.listen_backlog == 1024
    assert config.tls.certificate == var / "tls" / "localhost.crt"
    assert config.tls.key == var / "tls" / "localhost.key"
    assert config.tls.min_version == "1.2"
    c2s = config.c2s
    assert c2s.listen == ("tcp:5222:interface=127.0.0.1",)
    assert c2s.direct_tls == ("tcp:5223:interface=127.0.0.1",)
    assert c2s.require_encryption is True
    assert c2s.auth_timeout == 30.0
    assert c2s.resource_conflict == "replace"
    assert c2s.sasl_mechanisms == SASL_MECHANISMS
    assert c2s.max_resources == 10
    assert c2s.bare_message_delivery == "highest"
    s2s = config.s2s
    assert (s2s.listen, s2s.dns_servers, s2s.bind_address) == ((), (), None)
    assert s2s.ca_file == Path("/etc/ssl/certs/ca-certificates.crt")
    assert s2s.default_policy == "secure"
    assert (dict(s2s.policy), dict(s2s.hosts)) == ({}, {})
    assert s2s.bidi is True  # XEP-0288 offered and asked for unless turned off
    assert config.storage == type(config.storage)("sqlite", var / "xmppd.sqlite", None)
    assert config.manhole == type(config.manhole)("", None, None, var / "manhole_host_key")
    assert config.plugins.enabled == ("disco", "ping", "version", "roster", "presence",
                                      "offline", "pep", "pubsub", "smacks", "carbons", "csi",
                                      "blocking", "vcard", "avatar_hash", "private",
                                      "bookmarks", "vcard_conversion", "push", "time",
                                      "last_activity", "muc", "fast", "adhoc", "account_status",
                                      "contact_info")
    assert dict(config.plugins.sections) == {}
    assert config.log.level == "info"


def test_config_is_frozen(tmp_path):
    config = load_text(tmp_path, MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.c2s.require_encryption = False
    with pytest.raises(TypeError):
        config.s2s.policy["example.org"] = "trusted"


def test_values_are_prepared_and_typed(tmp_path):
    config = load_text(tmp_path, """
[server]
domains = ["Example.ORG.", "xn--mller-kva.example"]
admins = ["Admin@Example.org"]
shutdown_timeout = 2

[s2s]
dns_servers = ["[::1]:53", "ns.Example.net:5353"]
bind_address = "::1"
bidi = false
[s2s.policy]
"EXAMPLE.net" = "verified"
[s2s.hosts]
"example.net" = "Relay.example.net:5269"
""")
    assert config.server.domains == ("example.org", "m\u00fcller.example")
    assert config.server.admins == (parse_jid("admin@example.org"),)
    assert config.server.shutdown_timeout == 2.0
    assert isinstance(config.server.shutdown_timeout, float)
    assert config.s2s.dns_servers == (HostPort("::1", 53), HostPort("ns.example.net", 5353))
    assert [str(hp) for hp in config.s2s.dns_servers] == ["[::1]:53", "ns.example.net:5353"]
    assert config.s2s.bind_address == "::1"
    assert config.s2s.bidi is False
    assert dict(config.s2s.policy) == {"example.net": "verified"}
    assert dict(config.s2s.hosts) == {"example.net": HostPort("relay.example.net", 5269)}


def test_plugin_sections_are_passed_as_they_are(tmp_path):
    config = load_text(tmp_path, MINIMAL + """
[plugins]
enabled = ["ping", "version"]
[plugins.version]
show_os = true
[plugins.mystery]
anything = [1, "two", {three = 3}]
""")
    assert config.plugins.enabled == ("ping", "version")
    assert dict(config.plugins.sections) == {
        "version": {"show_os": True},
        "mystery": {"anything": [1, "two", {"three": 3}]},
    }


def test_postgresql_with_dsn(tmp_path):
    config = load_text(tmp_path, MINIMAL + '[storage]\nbackend = "postgresql"\ndsn = "dbname=x"\n')
    assert (config.storage.backend, config.storage.dsn) == ("postgresql", "dbname=x")


@pytest.mark.parametrize(
    "credentials",
    [f'password_hash = "{HASH}"', 'authorized_keys = "keys"', f'password_hash = "{HASH}"\n'
     'authorized_keys = "keys"'],
)
def test_manhole_with_credentials(tmp_path, credentials):
    config = load_text(tmp_path, MINIMAL + f'[manhole]\nlisten = "tcp:2222"\n{credentials}\n')
    assert config.manhole.listen == "tcp:2222"
    if "authorized_keys" in credentials:
        assert config.manhole.authorized_keys == tmp_path / "keys"
    if "password_hash" in credentials:
        assert config.manhole.password_hash == HASH


# --------------------------------------------------------------------------- relative paths


def test_relative_paths_are_relative_to_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, """
[server]
domains = ["localhost"]
data_dir = "../state"
plugin_dirs = ["plugins", "/opt/xmppd-plugins"]
[tls]
certificate = "tls/cert.pem"
key = "/etc/xmppd/key.pem"
[manhole]
listen = "unix:manhole.sock:mode=0600"
authorized_keys = "keys/admins"
""")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert config.server.data_dir == tmp_path / "state"
    assert config.server.plugin_dirs == (folder / "plugins", Path("/opt/xmppd-plugins"))
    assert config.tls.certificate == folder / "tls" / "cert.pem"
    assert config.tls.key == Path("/etc/xmppd/key.pem")
    assert config.manhole.authorized_keys == folder / "keys" / "admins"
    # Defaults under data_dir follow it.
    assert config.storage.path == tmp_path / "state" / "xmppd.sqlite"
    assert config.manhole.host_key == tmp_path / "state" / "manhole_host_key"
    assert config.tls.certificate.is_absolute()


def test_control_socket_follows_data_dir_is_relative_and_can_be_turned_off(tmp_path):
    moved = load_text(tmp_path, MINIMAL + 'data_dir = "state"\n')
    assert moved.server.control_socket == tmp_path / "state" / "control.sock"
    relative = load_text(tmp_path, MINIMAL + 'control_socket = "run/xmppd.sock"\n')
    assert relative.server.control_socket == tmp_path / "run" / "xmppd.sock"
    off = load_text(tmp_path, MINIMAL + 'control_socket = ""\n')
    assert off.server.control_socket is None
    assert error_of(tmp_path, MINIMAL + "control_socket = 1\n") == (
        "[server] control_socket: expected a path, got 1")


def test_config_path_given_relative(tmp_path, monkeypatch):
    write(tmp_path, MINIMAL + '[storage]\npath = "db/x.sqlite"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config("xmppd.toml")
    assert config.path == tmp_path / "xmppd.toml"
    assert config.storage.path == tmp_path / "db" / "x.sqlite"
    write(tmp_path, "[c2s]\n")
    with pytest.raises(ConfigError, match=r"^xmppd\.toml: \[server\] domains: required$"):
        load_config("xmppd.toml")


# --------------------------------------------------------------------------- errors


ERRORS = [
    # unknown sections and keys
    ("[srever]\n", "[srever]: unknown section (known: server, tls, c2s, s2s, storage, manhole, "
     "plugins, log, http, components, limits, cluster)"),
    ('domains = ["localhost"]\n', "domains: unknown section (known: server, tls, c2s, s2s, "
     "storage, manhole, plugins, log, http, components, limits, cluster)"),
    (MINIMAL + "domain = 'x'\n", "[server] domain: unknown key (known: admins, "
     "control_socket, data_dir, domains, listen_backlog, max_stanza_size, plugin_dirs, "
     "shutdown_timeout)"),
    (MINIMAL + "[c2s]\nrequire_tls = true\n", "[c2s] require_tls: unknown key (known: "
     "auth_timeout, bare_message_delivery, direct_tls, listen, max_resources, "
     "require_encryption, resource_conflict, sasl_mechanisms)"),
    (MINIMAL + "[s2s.policy]\n[s2s.polcy]\n", "[s2s] polcy: unknown key (known: allow, "
     "auth_timeout, bidi, bind_address, ca_file, connect_timeout, default_policy, deny, "
     "direct_tls, dns_servers, hosts, listen, policy, queue_limit)"),
    (MINIMAL + "[log]\nlevel = 'info'\nfile = 'x'\n", "[log] file: unknown key (known: level)"),
    # sections of the wrong shape
    ("server = 3\n", "server: expected a table [server], got 3"),
    (MINIMAL + "[s2s]\npolicy = 'secure'\n", 's2s.policy: expected a table [s2s.policy], '
     'got "secure"'),
    (MINIMAL + "[plugins]\nversion = true\n", "[plugins] version: expected a table "
     "[plugins.version] of that plugin's settings, got true"),
    # [server]
    ("[server]\n", "[server] domains: required"),
    ("[server]\ndomains = []\n", "[server] domains: must not be empty"),
    ("[server]\ndomains = 'localhost'\n", '[server] domains: expected a list, got "localhost"'),
    ("[server]\ndomains = [1]\n", "[server] domains: item 1: expected a domain name, got 1"),
    ("[server]\ndomains = ['ok.example', 'exa mple.com']\n", '[server] domains: item 2: '
     '"exa mple.com": invalid domainpart: U+0020 (SPACE) is not allowed in a domain name'),
    ("[server]\ndomains = ['a.example', 'A.example']\n", '[server] domains: item 2: '
     '"A.example" is listed twice'),
    (MINIMAL + "data_dir = ''\n", '[server] data_dir: expected a path, got ""'),
    (MINIMAL + "data_dir = 5\n", "[server] data_dir: expected a path, got 5"),
    (MINIMAL + "plugin_dirs = 'plugins'\n", '[server] plugin_dirs: expected a list, '
     'got "plugins"'),
    (MINIMAL + "admins = ['admin@localhost/phone']\n", '[server] admins: item 1: '
     '"admin@localhost/phone": expected a bare JID, without a /resource'),
    (MINIMAL + "admins = ['a b@localhost']\n", '[server] admins: item 1: "a b@localhost": '
     "invalid localpart: U+0020 (SPACE) at position 2 is not allowed (spaces)"),
    (MINIMAL + "max_stanza_size = 9999\n", "[server] max_stanza_size: must be at least 10000, "
     "got 9999"),
    (MINIMAL + "max_stanza_size = 1e6\n", "[server] max_stanza_size: expected a whole number, "
     "got 1000000.0"),
    (MINIMAL + "max_stanza_size = true\n", "[server] max_stanza_size: expected a whole number, "
     "got true"),
    (MINIMAL + "shutdown_timeout = 0\n", "[server] shutdown_timeout: must be a finite number "
     "of seconds above 0, got 0"),
    (MINIMAL + "shutdown_timeout = inf\n", "[server] shutdown_timeout: must be a finite number "
     "of seconds above 0, got inf"),
    (MINIMAL + "shutdown_timeout = '5'\n", '[server] shutdown_timeout: expected a number of '
     'seconds, got "5"'),
    # [tls]
    (MINIMAL + "[tls]\nmin_version = '1.1'\n", '[tls] min_version: expected one of "1.2", '
     '"1.3", got "1.1"'),
    (MINIMAL + "[tls]\nmin_version = 1.3\n", '[tls] min_version: expected one of "1.2", '
     '"1.3", got 1.3 (quote it: it is a string)'),
    (MINIMAL + "[tls]\ncertificate = ['a']\n", "[tls] certificate: expected a path, got a list"),
    # [c2s]
    (MINIMAL + "[c2s]\nrequire_encryption = 'yes'\n", '[c2s] require_encryption: expected '
     'true or false, got "yes"'),
    (MINIMAL + "[c2s]\nlisten = 'tcp:5222'\n", '[c2s] listen: expected a list, got "tcp:5222"'),
    (MINIMAL + "[c2s]\nlisten = [5222]\n", '[c2s] listen: item 1: expected a Twisted endpoint '
     'string starting with "tcp:", "ssl:", "unix:", got 5222'),
    (MINIMAL + "[c2s]\ndirect_tls = ['5223']\n", '[c2s] direct_tls: item 1: expected a Twisted '
     'endpoint string starting with "tcp:", "ssl:", "unix:", got "5223"'),
    (MINIMAL + "[c2s]\nauth_timeout = -1\n", "[c2s] auth_timeout: must be a finite number of "
     "seconds above 0, got -1"),
    (MINIMAL + "[c2s]\nresource_conflict = 'kick'\n", '[c2s] resource_conflict: expected one '
     'of "replace", "rename", got "kick"'),
    (MINIMAL + "[c2s]\nsasl_mechanisms = ['PLAIN', 'DIGEST-MD5']\n", '[c2s] sasl_mechanisms: '
     'item 2: expected one of "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", '
     '"SCRAM-SHA-1", "PLAIN", got "DIGEST-MD5"'),
    (MINIMAL + "[c2s]\nsasl_mechanisms = []\n", "[c2s] sasl_mechanisms: must not be empty"),
    (MINIMAL + "[c2s]\nsasl_mechanisms = ['PLAIN', 'PLAIN']\n", '[c2s] sasl_mechanisms: item 2: '
     '"PLAIN" is listed twice'),
    (MINIMAL + "[c2s]\nmax_resources = 0\n", "[c2s] max_resources: must be at least 1, got 0"),
    # [s2s]
    (MINIMAL + "[s2s]\nbidi = 'yes'\n", '[s2s] bidi: expected true or false, got "yes"'),
    (MINIMAL + "[s2s]\ndefault_policy = 'paranoid'\n", '[s2s] default_policy: expected one of '
     '"promiscuous", "verified", "secure", "trusted", "buddies-only", got "paranoid"'),
    (MINIMAL + "[s2s]\ndns_servers = ['127.0.0.1']\n", '[s2s] dns_servers: item 1: expected '
     '"host:port", got "127.0.0.1"'),
    (MINIMAL + "[s2s]\ndns_servers = ['127.0.0.1:0']\n", '[s2s] dns_servers: item 1: '
     '"127.0.0.1:0": the port must be a number from 1 to 65535'),
    (MINIMAL + "[s2s]\ndns_servers = ['127.0.0.1:65536']\n", '[s2s] dns_servers: item 1: '
     '"127.0.0.1:65536": the port must be a number from 1 to 65535'),
    (MINIMAL + "[s2s]\ndns_servers = ['ns.example:dns']\n", '[s2s] dns_servers: item 1: '
     '"ns.example:dns": the port must be a number from 1 to 65535'),
    (MINIMAL + "[s2s]\ndns_servers = ['::1:53']\n", '[s2s] dns_servers: item 1: "::1:53": '
     'write an IPv6 address in brackets, as "[::1]:53"'),
    (MINIMAL + "[s2s]\ndns_servers = ['bad_host:53']\n", '[s2s] dns_servers: item 1: '
     '"bad_host:53": bad host: invalid domainpart: U+005F (LOW LINE) is not allowed in a '
     'domain name'),
    (MINIMAL + "[s2s]\nbind_address = 'localhost'\n", '[s2s] bind_address: expected an IP '
     'address, got "localhost"'),
    (MINIMAL + "[s2s]\nca_file = 1\n", "[s2s] ca_file: expected a path, got 1"),
    (MINIMAL + "[s2s]\nlisten = ['tcp:5269', 'xmpp:5269']\n", '[s2s] listen: item 2: expected '
     'a Twisted endpoint string starting with "tcp:", "ssl:", "unix:", got "xmpp:5269"'),
    (MINIMAL + "[s2s.policy]\n'example.org' = 'yes'\n", '[s2s.policy] "example.org": expected '
     'one of "promiscuous", "verified", "secure", "trusted", "buddies-only", got "yes"'),
    (MINIMAL + "[s2s.policy]\n'not a domain' = 'secure'\n", '[s2s.policy] "not a domain": not '
     'a domain: "not a domain": invalid domainpart: U+0020 (SPACE) is not allowed in a domain '
     'name'),
    (MINIMAL + "[s2s.policy]\n'a.example' = 'secure'\n'A.example' = 'trusted'\n",
     '[s2s.policy] "A.example": names the same domain as another key (a.example)'),
    (MINIMAL + "[s2s.hosts]\n'example.org' = 'relay.example.org:99999'\n", '[s2s.hosts] '
     '"example.org": "relay.example.org:99999": the port must be a number from 1 to 65535'),
    (MINIMAL + "[s2s.hosts]\n'example.org' = 5269\n", '[s2s.hosts] "example.org": expected '
     '"host:port", got 5269'),
    # [storage]
    (MINIMAL + "[storage]\nbackend = 'mysql'\n", '[storage] backend: expected one of "sqlite", '
     '"postgresql", got "mysql"'),
    (MINIMAL + "[storage]\nbackend = 'postgresql'\n", '[storage] dsn: required when backend = '
     '"postgresql"'),
    (MINIMAL + "[storage]\ndsn = 'dbname=x'\n", '[storage] dsn: only used when backend = '
     '"postgresql", not "sqlite"'),
    (MINIMAL + "[storage]\nbackend = 'postgresql'\ndsn = ''\n", '[storage] dsn: expected a '
     'non-empty string, got ""'),
    (MINIMAL + "[storage]\nbackend = 'postgresql'\ndsn = 'dbname=x'\npath = 'x.sqlite'\n",
     '[storage] path: only used when backend = "sqlite", not "postgresql"'),
    (MINIMAL + "listen_backlog = 0\n", "[server] listen_backlog: must be at least 1, got 0"),
    (MINIMAL + "listen_backlog = 70000\n",
     "[server] listen_backlog: must be at most 65535, got 70000"),
    # [manhole]
    (MINIMAL + "[manhole]\nlisten = 'tcp:2222'\n", "[manhole] listen: is set but neither "
     "authorized_keys nor password_hash is, so nobody could log in"),
    (MINIMAL + "[manhole]\nlisten = 2222\n", '[manhole] listen: expected a Twisted endpoint '
     'string starting with "tcp:", "ssl:", "unix:", got 2222'),
    (MINIMAL + "[manhole]\npassword_hash = 'hunter2'\n", "[manhole] password_hash: expected a "
     "hash from `xmppdctl hash-password` (pbkdf2-sha256$iterations$salt$hash)"),
    (MINIMAL + "[manhole]\npassword_hash = 'pbkdf2-sha256$0$c2FsdA==$aGFzaA=='\n", "[manhole] "
     "password_hash: expected a hash from `xmppdctl hash-password` "
     "(pbkdf2-sha256$iterations$salt$hash)"),
    # [plugins] and [log]
    (MINIMAL + "[plugins]\nenabled = 'ping'\n", '[plugins] enabled: expected a list, got "ping"'),
    (MINIMAL + "[plugins]\nenabled = ['ping', 'ping']\n", '[plugins] enabled: item 2: "ping" '
     'is listed twice'),
    (MINIMAL + "[plugins]\nenabled = ['my plugin']\n", '[plugins] enabled: item 1: expected a '
     'plugin name, got "my plugin"'),
    (MINIMAL + "[log]\nlevel = 'verbose'\n", '[log] level: expected one of "debug", "info", '
     '"warn", "error", got "verbose"'),
    (MINIMAL + "[log]\nlevel = 1979-05-27\n", '[log] level: expected one of "debug", "info", '
     '"warn", "error", got a date'),
    # [http] and [components]
    (MINIMAL + "[http]\nhttps = 'tcp:5281'\n", '[http] https: expected a list, got "tcp:5281"'),
    (MINIMAL + "[http]\nexternal_url = 'ftp://x.example'\n", '[http] external_url: expected '
     'an http:// or https:// URL without ?query or #fragment, got "ftp://x.example"'),
    (MINIMAL + "[http]\nexternal_url = 'https://x.example/?a=1'\n", '[http] external_url: '
     'expected an http:// or https:// URL without ?query or #fragment, got '
     '"https://x.example/?a=1"'),
    (MINIMAL + "[http]\nport = 80\n", "[http] port: unknown key (known: "),  # grows with #17
    (MINIMAL + "[http]\nmax_connections_per_ip = 0\n", "[http] max_connections_per_ip: "
     "must be at least 1, got 0"),
    (MINIMAL + "[http]\nidle_timeout = 0\n", "[http] idle_timeout: must be a finite number of "
     "seconds above 0, got 0"),
    (MINIMAL + "[components.secrets]\nlocalhost = 'sixteen-chars!!!'\n",
     "[components.secrets] localhost: is one of [server] domains, not a component's"),
    (MINIMAL + "[components.secrets]\n'gw.localhost' = ''\n", '[components.secrets] '
     '"gw.localhost": expected a non-empty string, got ""'),
    (MINIMAL + "[components.secrets]\n'a b' = 'x'\n", '[components.secrets] "a b": not a '
     'domain: '),
    # a short secret is guessable offline from one handshake (SHA-1 of id + secret)
    (MINIMAL + "[components.secrets]\n'gw.localhost' = 'fifteen-chars!!'\n",
     '[components.secrets] "gw.localhost": expected a secret of at least 16 characters, '
     'got one of 15'),
    (MINIMAL + "[components]\nport = 5347\n", "[components] port: unknown key (known: listen, "
     "secrets)"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_are_one_line_and_name_the_key(tmp_path, text, message):
    if message.endswith(": "):  # the rest is the JID library's own reason
        assert error_of(tmp_path, text).startswith(message)
        return
    assert error_of(tmp_path, text) == message


def test_http_and_components(tmp_path):
    config = load_text(tmp_path, MINIMAL)
    assert config.http == HttpConfig((), ("tcp:5281:interface=127.0.0.1",), None)
    assert config.components.listen == ("tcp:5347:interface=127.0.0.1",)
    assert dict(config.components.secrets) == {}
    config = load_text(tmp_path, MINIMAL + "[http]\nlisten = ['tcp:5280']\nhttps = []\n"
                       "external_url = 'https://files.example/up/'\n[components.secrets]\n"
                       "'GW.Localhost' = 's3cret-of-16-chars'\n")
    assert config.http == HttpConfig(("tcp:5280",), (), "https://files.example/up")
    assert dict(config.components.secrets) == {"gw.localhost": "s3cret-of-16-chars"}


def test_password_hash_error_does_not_echo_the_value(tmp_path):
    message = error_of(tmp_path, MINIMAL + "[manhole]\npassword_hash = 'my secret password'\n")
    assert "secret" not in message


def test_multi_line_values_stay_on_one_line(tmp_path):
    message = error_of(tmp_path, MINIMAL + '[log]\nlevel = """\ninfo\n"""\n')
    assert message == r'[log] level: expected one of "debug", "info", "warn", "error", got "info\n"'


def test_long_values_are_shortened(tmp_path):
    message = error_of(tmp_path, MINIMAL + f"[log]\nlevel = '{'x' * 500}'\n")
    assert len(message) < 150
    assert message.endswith('..."')


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: cannot read: No such file"):
        load_config(path)


def test_toml_syntax_error(tmp_path):
    message = error_of(tmp_path, "[server\ndomains = [\n")
    assert message.startswith("not valid TOML: ")


def test_not_utf8(tmp_path):
    path = tmp_path / "xmppd.toml"
    path.write_bytes(b"[server]\ndomains = ['\xff']\n")
    with pytest.raises(ConfigError, match=r": not valid (TOML|UTF-8)"):
        load_config(path)


TRUST_PLUGINS = '[plugins]\nenabled = ["presence", "server_trust"]\n'


def test_buddies_only_is_a_federation_policy(tmp_path):
    config = load_text(tmp_path, MINIMAL + TRUST_PLUGINS + """
[s2s]
default_policy = "buddies-only"
[s2s.policy]
"lab.example" = "buddies-only"
""")
    assert config.s2s.default_policy == "buddies-only"
    assert dict(config.s2s.policy) == {"lab.example": "buddies-only"}
