"""xmppd.cluster without Redis: [cluster] secret and the dialback keys every node verifies,
where a dead node's stanzas go (xmppd.cluster.rescue), inbox entries read back."""

from __future__ import annotations

from twisted.words.xish import domish

from tests.unit.test_cluster import Local, directory, local_session, message
from tests.unit.test_cluster_config import POSTGRESQL
from tests.unit.test_config import MINIMAL, error_of, load_text
from xmppd.cluster.delivery import Arrivals
from xmppd.cluster.federation import dialback_secret
from xmppd.cluster.rescue import Rescue
from xmppd.cluster.streams import read_entry
from xmppd.jid import parse_jid
from xmppd.s2s.dialback_keys import dialback_key, verify_key
from xmppd.s2s.manager import _dialback_secret
from xmppd.stanza import Stanza

CLUSTER = '[cluster]\nredis = "redis://:pw@127.0.0.1"\nnode = "n1"\n'
FEDERATION = '[s2s]\nlisten = ["tcp:5269"]\n'
SECRET = "sixteen chars or more, shared"


def test_a_cluster_with_federation_needs_the_shared_secret(tmp_path):
    message_ = error_of(tmp_path, MINIMAL + POSTGRESQL + CLUSTER + FEDERATION)
    assert message_.startswith("[cluster] secret: required with federation on")
    assert load_text(tmp_path, MINIMAL + POSTGRESQL + CLUSTER).cluster.secret is None
    short = error_of(tmp_path, MINIMAL + POSTGRESQL + CLUSTER + 'secret = "short one"\n')
    assert short.startswith("[cluster] secret: expected a secret of at least 16 characters")
    assert "short one" not in short
    config = load_text(tmp_path, MINIMAL + POSTGRESQL + CLUSTER + f'secret = "{SECRET}"\n'
                       + FEDERATION)
    assert config.cluster.secret == SECRET
    assert SECRET not in repr(config)


def test_any_node_verifies_the_keys_of_another(tmp_path):
    """XEP-0220: the peer checks a key with whichever node DNS gives it."""
    nodes = []
    for name in ("n1", "n2"):
        text = (MINIMAL + POSTGRESQL + CLUSTER.replace("n1", name) + f'secret = "{SECRET}"\n'
                + FEDERATION)
        nodes.append(_dialback_secret(load_text(tmp_path, text)))
    assert nodes[0] == nodes[1] == dialback_secret(SECRET)
    assert nodes[0] != SECRET.encode()  # derived, not the configured text
    key = dialback_key(nodes[0], "peer.example", "localhost", "stream-1")
    assert verify_key(nodes[1], "peer.example", "localhost", "stream-1", key)
    assert not verify_key(dialback_secret(SECRET + "!"), "peer.example", "localhost",
                          "stream-1", key)
    # without [cluster], each server keeps its own secret file, as before
    alone = load_text(tmp_path, MINIMAL + FEDERATION)
    assert _dialback_secret(alone) == (alone.server.data_dir / "dialback.secret").read_bytes()


class Offline:
    def __init__(self) -> None:
        self.stored: list = []

    def store(self, stanza) -> bool:
        self.stored.append(stanza)
        return True


def rescue_world(*local):
    remote, forwarded = directory(Local(*local))
    offline, bounced = Offline(), []
    arrivals = Arrivals(Local(*local), lambda interface: offline,
                        lambda stanza, condition: bounced.append(condition), False)
    rescue = Rescue(None, "a", 1.0, Local(*local), remote, arrivals, False, None)
    return rescue, remote, forwarded, offline, bounced


def test_a_dead_nodes_message_goes_to_the_account_elsewhere_or_offline():
    here = local_session("bob@localhost/here", priority=1)
    rescue, remote, forwarded, offline, bounced = rescue_world(here)
    remote.on_registry("bind dead bob@localhost/desk 9 1 0")  # not yet buried here
    remote.on_registry("bind c bob@localhost/laptop 5 1 0")
    # for bob/desk on the dead node: the bare JID's choice among the live nodes (laptop)
    assert rescue.rescue(message("bob@localhost/desk"), "dead") is None
    assert forwarded == [("c", "bob@localhost/laptop")] and not here.got
    # the same full JID bound again on a live node gets it
    remote.on_registry("bind c bob@localhost/desk 0 1 0")
    rescue.rescue(message("bob@localhost/desk"), "dead")
    assert forwarded[-1] == ("c", "bob@localhost/desk")
    # this node's own session is a live one too
    remote.on_registry("reset c")
    rescue.rescue(message("bob@localhost"), "dead")
    assert len(here.got) == 1 and len(forwarded) == 2
    # nobody left: offline storage
    rescue.rescue(message("dave@localhost/x"), "dead")
    assert [s.recipient.full() for s in offline.stored] == ["dave@localhost/x"]
    assert not bounced


def test_a_dead_nodes_iq_bounces_and_presence_is_dropped():
    rescue, _, forwarded, offline, bounced = rescue_world()
    iq = domish.Element((None, "iq"))
    iq["to"], iq["from"], iq["type"], iq["id"] = "bob@localhost/desk", "carol@localhost/x", \
        "get", "1"
    rescue.rescue(Stanza(iq, parse_jid("carol@localhost/x"), parse_jid("bob@localhost/desk")),
                  "dead")
    presence = domish.Element((None, "presence"))
    presence["to"] = "bob@localhost/desk"
    rescue.rescue(Stanza(presence, None, parse_jid("bob@localhost/desk")), "dead")
    assert bounced == ["service-unavailable"] and not forwarded and not offline.stored


def test_inbox_entries_are_read_back_and_junk_is_skipped():
    element = message("bob@localhost").element
    stanza, full = read_entry(["m", f"bob@localhost/desk\n{element.toXml()}"])
    assert full == parse_jid("bob@localhost/desk") and stanza.recipient.full() == "bob@localhost"
    for junk in (["m", f"bob@localhost\n{element.toXml()}"], ["m", "bob@localhost/d"],
                 ["m", f"@@\n{element.toXml()}"], ["m", "bob@localhost/d\n<mess"],
                 ["x", f"bob@localhost/d\n{element.toXml()}"], []):
        assert read_entry(junk) is None
