"""Every problem of a config file at once (ConfigError.problems), not one per try; str() of
the error stays the first, one line."""

from __future__ import annotations

import pytest

from xmppd.config import ConfigError, load_config


def problems_of(tmp_path, text: str) -> list[str]:
    path = tmp_path / "xmppd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    prefix = f"{path}: "
    assert str(caught.value) == caught.value.problems[0]
    assert all(p.startswith(prefix) for p in caught.value.problems)
    return [p[len(prefix):] for p in caught.value.problems]


def test_bad_values_unknown_keys_and_sections_in_several_sections(tmp_path):
    found = problems_of(tmp_path, """
[server]
domains = ["localhost"]
shutdown_timeout = -1
typo = 1
[tls]
min_version = "1.1"
[c2s]
require_encryption = "yes"
max_resources = 0
[s2s]
default_policy = "open"
[s2s.policy]
"not a domain!" = "trusted"
[storage]
backend = "mysql"
[log]
level = "loud"
[extra]
""")
    assert found == [
        '[extra]: unknown section (known: ' + found[0].split("(known: ")[1],
        "[server] shutdown_timeout: must be a finite number of seconds above 0, got -1",
        "[server] typo: unknown key (known: " + found[2].split("(known: ")[1],
        '[tls] min_version: expected one of "1.2", "1.3", got "1.1"',
        '[c2s] require_encryption: expected true or false, got "yes"',
        "[c2s] max_resources: must be at least 1, got 0",
        found[6],  # the s2s default_policy line, checked below
        found[7],  # [s2s.policy]: a key that is no domain
        found[8],  # [storage] backend
        found[9],  # [log] level
    ]
    assert found[6].startswith('[s2s] default_policy: expected one of "promiscuous"')
    assert found[7].startswith('[s2s.policy] "not a domain!": not a domain')
    assert found[8].startswith('[storage] backend: expected one of "sqlite"')
    assert found[9].startswith('[log] level: expected one of "debug"')


def test_a_required_key_stops_only_its_own_section(tmp_path):
    found = problems_of(tmp_path, '[server]\n[c2s]\nauth_timeout = "soon"\n')
    assert found == ["[server] domains: required",
                     '[c2s] auth_timeout: expected a number of seconds, got "soon"']


def test_a_good_file_still_loads_and_the_tls_directory_makes_the_pair_optional(tmp_path):
    path = tmp_path / "xmppd.toml"
    path.write_text('[server]\ndomains = ["localhost"]\n[tls]\ncertificates = "certs"\n'
                    'watch = 30\n')
    tls = load_config(path).tls
    assert (tls.certificate, tls.key) == (None, None)
    assert tls.certificates == tmp_path / "certs" and tls.watch == 30
    found = problems_of(tmp_path, '[server]\ndomains = ["localhost"]\n[tls]\n'
                                  'certificates = "certs"\nkey = "x.key"\nwatch = -1\n')
    assert found == ["[tls] watch: must be at least 0, got -1",
                     "[tls] certificate: required: certificate and key go together"]
