"""Plugin discovery, load order and unloading, including a drop-in plugin from a directory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from twisted.words.xish import domish

from xmppd.c2s.sessions import SessionRegistry
from xmppd.disco import DiscoEntity
from xmppd.dispatch import Dispatcher
from xmppd.eventbus import EventBus
from xmppd.events import SESSION_BOUND
from xmppd.handlers import PrioritizedHandlers
from xmppd.jid import parse_jid
from xmppd.registry import PluginError, PluginRegistry, discover, load_order
from xmppd.router import Router
from xmppd.services import ServiceTable
from xmppd.stanza import Stanza


@pytest.fixture(autouse=True)
def isolated_plugin_path():
    """Drop-in directories join xmppd.plugins' path for good; tests put it back."""
    import xmppd.plugins

    saved = list(xmppd.plugins.__path__)
    yield
    xmppd.plugins.__path__[:] = saved
    for name in [m for m in sys.modules if m.endswith("_test_plugin")]:
        del sys.modules[name]


class FakeServer:
    """Just the parts a PluginContext touches; replies are recorded, not routed."""

    def __init__(self):
        self.replies = []
        self.domains = frozenset({"localhost"})
        self.config = SimpleNamespace(c2s=SimpleNamespace(bare_message_delivery="highest"))
        self.sessions = SessionRegistry()
        self.router = Router(self.domains, self.sessions, Dispatcher(self.replies.append))
        self.dispatcher = self.router.dispatcher
        self.events = EventBus()
        self.features = DiscoEntity()
        self.account_features = DiscoEntity()
        self.services = ServiceTable(self.router, self.domains)
        self.stream_features = PrioritizedHandlers()
        self.storage = None
        self.reactor = None
        self._providers = {}

    def provide(self, interface, provider):
        self._providers[interface] = provider
        return lambda: self._providers.pop(interface, None)

    def query(self, interface):
        return self._providers.get(interface)

    def emit(self, event, *args):
        return self.events.emit(event, *args)


def load(server, enabled, sections=None, dirs=()):
    registry = PluginRegistry(server, enabled, sections or {}, dirs)
    d = registry.load()
    failures = []
    d.addErrback(failures.append)
    if failures:
        failures[0].raiseException()
    return registry


def test_builtin_plugins_are_discovered():
    found = discover()
    assert {"disco", "ping", "version"} <= set(found)


DROP_IN = textwrap.dedent('''
    from twisted.words.xish import domish
    from zope.interface import implementer
    from xmppd.interfaces import IXmppdPlugin

    @implementer(IXmppdPlugin)
    class Echo:
        name = "echo_test"
        requires = ("ping",)

        def setup(self, ctx):
            self.greeting = ctx.config.get("greeting", "hello")
            ctx.feature("urn:example:echo")
            ctx.iq("get", "urn:example:echo", "echo", self.on_echo)

        def on_echo(self, stanza, origin):
            answer = domish.Element(("urn:example:echo", "echo"))
            answer.addContent(self.greeting)
            return answer

    echo = Echo()
''')


def test_drop_in_plugin_answers_its_custom_iq(tmp_path):
    (tmp_path / "echo_test_plugin.py").write_text(DROP_IN)
    server = FakeServer()
    registry = load(server, ["ping", "echo_test"], {"echo_test": {"greeting": "hi there"}},
                    [tmp_path])
    assert list(registry.loaded) == ["message", "ping", "echo_test"]  # message: a core plugin
    assert "urn:example:echo" in server.features.features()
    request = domish.Element((None, "iq"))
    request["type"], request["id"], request["from"] = "get", "e1", "a@localhost/r"
    request["to"] = "localhost"
    request.addElement(("urn:example:echo", "echo"))
    stanza = Stanza(request, parse_jid("a@localhost/r"), parse_jid("localhost"))
    assert server.dispatcher.dispatch_iq(stanza, "host", None)
    assert str(server.replies[0].firstChildElement()) == "hi there"
    registry.unload()
    assert "urn:example:echo" not in server.features.features()
    assert not server.dispatcher.dispatch_iq(stanza, "host", None)


def test_missing_requirement_and_unknown_plugin_are_named():
    class Needy:
        name, requires = "needy", ("absent",)

    with pytest.raises(PluginError, match="'absent'"):
        load_order(["needy"], {"needy": Needy()})
    with pytest.raises(PluginError, match="'nope' was not found"):
        load_order(["nope"], {})


def test_requirement_must_be_enabled_and_cycles_are_refused():
    class A:
        name, requires = "a", ("b",)

    class B:
        name, requires = "b", ("a",)

    with pytest.raises(PluginError, match="requires 'b', which is not enabled"):
        load_order(["a"], {"a": A(), "b": B()})
    with pytest.raises(PluginError, match="require each other"):
        load_order(["a", "b"], {"a": A(), "b": B()})


def test_failing_setup_names_the_plugin_and_undoes_its_registrations(tmp_path):
    (tmp_path / "broken_test_plugin.py").write_text(textwrap.dedent('''
        from zope.interface import implementer
        from xmppd.interfaces import IXmppdPlugin

        @implementer(IXmppdPlugin)
        class Broken:
            name, requires = "broken_test", ()
            def setup(self, ctx):
                ctx.feature("urn:example:broken")
                raise RuntimeError("no database")

        broken = Broken()
    '''))
    server = FakeServer()
    with pytest.raises(PluginError, match="'broken_test' failed to set up: no database"):
        load(server, ["broken_test"], dirs=[tmp_path])
    assert "urn:example:broken" not in server.features.features()


def test_unknown_plugin_section_and_unknown_plugin_key_are_errors():
    with pytest.raises(PluginError, match=r"\[plugins.nosuch\]"):
        load(FakeServer(), ["ping"], {"nosuch": {}})
    with pytest.raises(PluginError, match="unknown key"):
        load(FakeServer(), ["version"], {"version": {"colour": "blue"}})


def test_events_reach_plugins_and_stop_after_unload():
    server = FakeServer()
    seen = []
    registry = load(server, ["ping"])
    registry.loaded["ping"].on(SESSION_BOUND, seen.append)
    server.events.emit(SESSION_BOUND, "s1")
    registry.unload()
    server.events.emit(SESSION_BOUND, "s2")
    assert seen == ["s1"]


def test_plain_string_event_is_refused():
    with pytest.raises(TypeError):
        EventBus().on("session-bound", print)


def test_disco_lists_what_plugins_advertise():
    server = FakeServer()
    load(server, ["disco", "ping", "version"])
    request = domish.Element((None, "iq"))
    request["type"], request["id"], request["to"] = "get", "d1", "localhost"
    request.addElement(("http://jabber.org/protocol/disco#info", "query"))
    server.dispatcher.dispatch_iq(Stanza(request, None, parse_jid("localhost")), "host", None)
    query = server.replies[0].firstChildElement()
    features = {f["var"] for f in query.elements() if f.name == "feature"}
    assert {"urn:xmpp:ping", "jabber:iq:version",
            "http://jabber.org/protocol/disco#info"} <= features
    assert any(i.name == "identity" and i["category"] == "server" for i in query.elements())


def test_stream_features_are_added_and_removed_with_the_plugin():
    server = FakeServer()
    registry = load(server, ["ping"])
    registry.loaded["ping"].stream_feature(lambda stream: domish.Element(("urn:x", "feat")))
    assert [build(None).uri for build in server.stream_features] == ["urn:x"]
    registry.unload()
    assert not server.stream_features


def test_the_plugin_context_provides_what_it_declares_and_core_plugins_always_load():
    from zope.interface.verify import verifyObject

    from xmppd.interfaces import IPluginContext

    registry = load(FakeServer(), ["ping"])
    assert list(registry.loaded) == ["message", "ping"]
    assert verifyObject(IPluginContext, registry.loaded["ping"])


def test_typed_options_are_checked_with_the_plugins_name_and_key():
    from xmppd.context import PluginContext

    ctx = PluginContext("sample", {"limit": 5, "loud": "yes", "mode": "b", "n": True},
                        FakeServer())
    assert ctx.option_int("limit", 1, minimum=1, maximum=10) == 5
    assert ctx.option_int("absent", 3) == 3
    assert ctx.option_str("mode", "a", choices=("a", "b")) == "b"
    with pytest.raises(ValueError, match=r"\[plugins.sample\] limit: expected an integer "
                                         r">= 6 and <= 10, got 5"):
        ctx.option_int("limit", 1, minimum=6, maximum=10)
    with pytest.raises(ValueError, match=r"n: expected an integer, got True"):
        ctx.option_int("n", 1)
    with pytest.raises(ValueError, match=r"loud: expected true or false, got 'yes'"):
        ctx.option_bool("loud", False)
    with pytest.raises(ValueError, match=r"mode: expected one of a, c, got 'b'"):
        ctx.option_str("mode", "a", choices=("a", "c"))


def test_teardown_runs_before_the_registrations_are_undone(tmp_path):
    (tmp_path / "goodbye_test_plugin.py").write_text(textwrap.dedent('''
        from zope.interface import implementer
        from xmppd.interfaces import IXmppdPlugin

        @implementer(IXmppdPlugin)
        class Goodbye:
            name, requires = "goodbye_test", ()
            seen = []

            def setup(self, ctx):
                ctx.feature("urn:example:goodbye")

            def teardown(self):
                self.seen.append(self.features.features())

        goodbye = Goodbye()
    '''))
    server = FakeServer()
    registry = load(server, ["goodbye_test"], dirs=[tmp_path])
    plugin = sys.modules["xmppd.plugins.goodbye_test_plugin"].goodbye
    plugin.features = server.features  # what the plugin cannot reach: the test looks for it
    registry.unload()
    assert plugin.seen == [["urn:example:goodbye"]]
    assert server.features.features() == []


def test_only_the_enabled_plugins_modules_are_imported():
    """A disabled plugin's module, and what it imports (Autobahn for websocket), costs a
    server nothing: checked in a fresh interpreter, as a server starts."""
    code = textwrap.dedent('''
        import sys
        from xmppd.registry import PluginRegistry
        registry = PluginRegistry(None, ["ping", "version"], {"roster": {}})
        registry.check()
        loaded = {name for name in sys.modules if name.startswith("xmppd.plugins.")}
        assert {"xmppd.plugins.ping", "xmppd.plugins.version", "xmppd.plugins.roster",
                "xmppd.plugins.message"} <= loaded, loaded  # roster: it has a section
        assert "xmppd.plugins.websocket" not in loaded and "autobahn" not in sys.modules
        assert "xmppd.plugins.muc" not in loaded, loaded
    ''')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_drop_in_whose_name_is_not_its_attribute_is_still_found(tmp_path):
    (tmp_path / "renamed_plugin.py").write_text(DROP_IN.replace("echo = Echo()",
                                                                "the_plugin = Echo()"))
    server = FakeServer()
    registry = load(server, ["ping", "echo_test"], {}, [tmp_path])
    assert list(registry.loaded) == ["message", "ping", "echo_test"]
    registry.unload()


def test_two_plugins_of_one_name_are_refused(tmp_path):
    (tmp_path / "another_ping.py").write_text(DROP_IN.replace('name = "echo_test"',
                                                              'name = "ping"')
                                              .replace('requires = ("ping",)', "requires = ()")
                                              .replace("echo = Echo()", "ping = Echo()"))
    with pytest.raises(PluginError, match="two plugins are named 'ping'"):
        load(FakeServer(), ["ping"], {}, [tmp_path])

