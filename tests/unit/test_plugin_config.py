"""Plugin options are checked before anything starts: a bad value stops start-up before the
database is opened or migrated (xmppd.registry.PluginRegistry.check, run first by the
service), with one message naming [plugins.NAME] and the key."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from tests.helpers import sync, write_config
from xmppd.config import load_config
from xmppd.options import PluginOptions
from xmppd.service import XmppdService


class UntouchedStorage:
    """Storage that records whether start-up got as far as opening it."""

    def __init__(self) -> None:
        self.users = None
        self.opened = False

    def open(self):
        self.opened = True
        raise AssertionError("the database was opened")


def start(tmp_path, plugins: str):
    config = load_config(write_config(tmp_path, f"""
        [server]
        domains = ["localhost"]
        data_dir = "data"
        control_socket = ""
        [c2s]
        listen = []
        direct_tls = []
        {plugins}
    """))
    storage = UntouchedStorage()
    service = XmppdService(config, storage, None, MemoryReactorClock())
    service.startService()
    return sync(service.ready), storage


@pytest.mark.parametrize("plugins, message", [
    ("[plugins.offline]\nmax_messages = -1",
     r"[plugins.offline] max_messages: expected an integer >= 0, got -1"),
    ("[plugins.roster]\nmax_items = 'many'",
     r"[plugins.roster] max_items: expected an integer >= 1, got 'many'"),
    ("[plugins.ping]\ncolour = 'blue'", "[plugins.ping] colour: unknown key"),
    ("[plugins.version]\nshow_os = 1", "[plugins.version] show_os: expected true or false"),
    ("[plugins]\nenabled = ['server_trust']\n[plugins.server_trust]\nrate_limit = 0",
     "[plugins.server_trust] rate_limit: expected a whole number above 0, got 0"),
    ("[plugins]\nenabled = ['incident']", "plugin 'incident' requires 'server_trust'"),
    # what the federation policy will ask plugins for (xmppd.service.federation_needs)
    ("[s2s]\ndefault_policy = 'buddies-only'",
     "[s2s] default_policy: buddies-only needs the server_trust plugin in [plugins] enabled"),
    ("[s2s.policy]\n'a.example' = 'secure'\n'Lab.Example' = 'buddies-only'",
     "[s2s.policy] 'lab.example': buddies-only needs the server_trust plugin in [plugins] "
     "enabled"),
])
def test_a_bad_plugin_setting_stops_start_up_before_the_database(tmp_path, plugins, message):
    failure, storage = start(tmp_path, plugins)
    assert message in str(failure.value)
    assert not storage.opened
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_options_read_through_the_getters_name_the_plugin_and_key():
    options = PluginOptions("sample", {"limit": 5, "extra": 1})
    assert options.option_int("limit", 1, minimum=1) == 5
    with pytest.raises(ValueError, match=r"\[plugins.sample\] extra: unknown key"):
        options.known("limit")


def test_what_configure_returns_is_the_contexts_settings():
    from tests.unit.test_registry import FakeServer
    from xmppd.registry import PluginRegistry

    registry = PluginRegistry(FakeServer(), ["version"], {"version": {"show_os": True}})
    registry.check()
    sync(registry.load())
    assert registry.loaded["version"].settings is True


def test_buddies_only_with_the_plugin_that_provides_it_passes_the_check(tmp_path):
    failure, storage = start(tmp_path, "[plugins]\nenabled = ['server_trust']\n"
                                       "[s2s]\ndefault_policy = 'buddies-only'")
    assert "the database was opened" in str(failure.value)  # the check passed
    assert storage.opened
