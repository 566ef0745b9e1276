"""The pubsub service on pubsub.DOMAIN (XEP-0060) over real sockets with slixmpp's
xep_0060: local users create nodes, subscribe and get notifications; the host lists the
service; a user of a second xmppd subscribes over federation and is notified; a remote
user may not create nodes under create = "local"."""

from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form

from tests.certs import make_test_pki
from tests.integration.conftest import PASSWORD
from tests.integration.serverproc import XmppdProcess
from tests.integration.test_federation import A, B, s2s_section
from tests.integration.test_im import Inbox
from tests.integration.test_pep import close, connect, run, stop

PLUGINS = ('[plugins]\nenabled = ["disco", "ping", "roster", "presence", "offline", '
           '"pubsub"]\n[plugins.pubsub]\ncreate = "local"\n')


def payload(text: str) -> Form:
    form = Form()
    form["type"] = "result"
    form.add_field(var="text", value=text)
    return form


def notified_with(text: str):
    def match(message) -> bool:
        item = message["pubsub_event"]["items"]["item"]
        return text in str(item)
    return match


@pytest.fixture
def server(tmp_path):
    proc = XmppdProcess(tmp_path, extra=PLUGINS)
    for user in ("alice", "bob"):
        assert proc.ctl("adduser", f"{user}@localhost", PASSWORD).returncode == 0
    proc.start()
    yield proc
    stop(proc)


def test_create_subscribe_publish_and_discover(server):
    async def scenario():
        alice, _ = await connect(server, "alice@localhost/phone")
        bob, _ = await connect(server, "bob@localhost/pc")
        events = Inbox(bob, "pubsub_publish")
        service = "pubsub.localhost"
        await alice.plugin["xep_0060"].create_node(service, "news", timeout=10)
        await bob.plugin["xep_0060"].subscribe(service, "news", timeout=10)
        await alice.plugin["xep_0060"].publish(service, "news", payload=payload("hello").xml,
                                               timeout=10)
        event = await events.wait_for(notified_with("hello"), timeout=20)
        assert str(event["from"]) == service
        listed = await bob.plugin["xep_0030"].get_items(jid="localhost", timeout=10)
        assert service in [jid for jid, _, _ in listed["disco_items"]["items"]]
        nodes = await bob.plugin["xep_0030"].get_items(jid=service, timeout=10)
        assert [node for _, node, _ in nodes["disco_items"]["items"]] == ["news"]
        await close(alice, bob)

    run(scenario)


def test_a_user_of_another_server_subscribes_but_may_not_create(tmp_path):
    pki = make_test_pki(tmp_path / "pki", [A, B])  # a.example's covers *.a.example
    a = XmppdProcess(tmp_path / "a", domain=A,
                     certificate=(pki.good[A].cert_path, pki.good[A].key_path))
    b = XmppdProcess(tmp_path / "b", domain=B,
                     certificate=(pki.good[B].cert_path, pki.good[B].key_path))
    a.config.write_text(a.config.read_text() + PLUGINS
                        + s2s_section(a, b, pki.ca.ca_path, "secure"))
    b.config.write_text(b.config.read_text() + PLUGINS
                        + s2s_section(b, a, pki.ca.ca_path, "secure")
                        + f'"pubsub.{A}" = "127.0.0.1:{a.s2s_port}"\n')
    for proc in (a, b):
        proc.ca = pki.ca.ca_path
        proc.client_hostname_check = True
    assert a.ctl("adduser", f"alice@{A}", PASSWORD).returncode == 0
    assert b.ctl("adduser", f"bob@{B}", PASSWORD).returncode == 0
    a.start()
    b.start()

    async def scenario():
        service = f"pubsub.{A}"
        alice, _ = await connect(a, f"alice@{A}/home")
        bob, _ = await connect(b, f"bob@{B}/work")
        events = Inbox(bob, "pubsub_publish")
        await alice.plugin["xep_0060"].create_node(service, "news", timeout=10)
        await bob.plugin["xep_0060"].subscribe(service, "news", timeout=20)
        await alice.plugin["xep_0060"].publish(service, "news", payload=payload("far").xml,
                                               timeout=10)
        await events.wait_for(notified_with("far"), timeout=30)
        with pytest.raises(IqError) as error:
            await bob.plugin["xep_0060"].create_node(service, "mine", timeout=20)
        assert error.value.iq["error"]["condition"] == "forbidden"
        await close(alice, bob)

    try:
        run(scenario, timeout=120)
    finally:
        stop(a, b)
