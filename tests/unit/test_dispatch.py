"""The dispatcher: one look-up per stanza, priorities, IQ replies and errors."""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppd.dispatch import Dispatcher
from xmppd.errors import StanzaError
from xmppd.jid import parse_jid
from xmppd.stanza import Stanza


def iq(type="get", ns="urn:test", name="query", to="localhost", sender="a@localhost/r"):
    element = domish.Element((None, "iq"))
    element["type"], element["id"], element["to"], element["from"] = type, "1", to, sender
    element.addElement((ns, name))
    return Stanza(element, parse_jid(sender), parse_jid(to))


def make():
    replies = []
    return Dispatcher(replies.append), replies


def test_iq_result_carries_the_payload_and_swaps_addresses():
    dispatcher, replies = make()
    dispatcher.add_iq("get", "urn:test", "query", "host",
                      lambda stanza, origin: domish.Element(("urn:test", "query")))
    assert dispatcher.dispatch_iq(iq(), "host", None)
    (reply,) = replies
    assert (reply["type"], reply["id"], reply["to"], reply["from"]) == (
        "result", "1", "a@localhost/r", "localhost")
    assert reply.firstChildElement().uri == "urn:test"


def test_unregistered_iq_is_not_handled():
    dispatcher, replies = make()
    dispatcher.add_iq("get", "urn:test", "query", "host", lambda s, o: None)
    assert not dispatcher.dispatch_iq(iq(ns="urn:other"), "host", None)
    assert not dispatcher.dispatch_iq(iq(type="set"), "host", None)
    assert not dispatcher.dispatch_iq(iq(), "bare", None)
    assert replies == []


def test_stanza_error_becomes_error_reply_and_crash_becomes_internal_error():
    dispatcher, replies = make()

    def refuse(stanza, origin):
        raise StanzaError("forbidden")

    def crash(stanza, origin):
        raise RuntimeError("bug")

    dispatcher.add_iq("get", "urn:test", "query", "host", refuse)
    dispatcher.add_iq("set", "urn:test", "query", "host", crash)
    dispatcher.dispatch_iq(iq(), "host", None)
    dispatcher.dispatch_iq(iq(type="set"), "host", None)
    conditions = [r.firstChildElement() if r.firstChildElement().name == "error" else
                  list(r.elements())[-1] for r in replies]
    assert [next(c.elements()).name for c in conditions] == ["forbidden", "internal-server-error"]
    assert all(r["type"] == "error" for r in replies)


def test_deferred_result_is_awaited():
    dispatcher, replies = make()
    pending = defer.Deferred()
    dispatcher.add_iq("get", "urn:test", "query", "host", lambda s, o: pending)
    dispatcher.dispatch_iq(iq(), "host", None)
    assert replies == []
    pending.callback(None)
    assert replies[0]["type"] == "result"


def test_higher_priority_wins_and_removal_restores():
    dispatcher, _ = make()
    seen = []
    dispatcher.add_stanza("message", "chat", "bare", lambda s, o: seen.append("low"), priority=0)
    remove = dispatcher.add_stanza("message", "chat", "bare",
                                   lambda s, o: seen.append("high") or True, priority=10)
    message = domish.Element((None, "message"))
    message["type"] = "chat"
    stanza = Stanza(message, None, parse_jid("b@localhost"))
    assert dispatcher.dispatch(stanza, "bare", None)
    assert seen == ["high"]
    remove()
    assert not dispatcher.dispatch(stanza, "bare", None)  # the low one does not consume it
    assert seen == ["high", "low"]


def test_bad_registrations_are_refused():
    dispatcher, _ = make()
    for call in (lambda: dispatcher.add_iq("result", "x", "y", "host", print),
                 lambda: dispatcher.add_iq("get", "x", "y", "elsewhere", print),
                 lambda: dispatcher.add_stanza("iq", "get", "host", print)):
        try:
            call()
        except ValueError:
            continue
        raise AssertionError("accepted a bad registration")
