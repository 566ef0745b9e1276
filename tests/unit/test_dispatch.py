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
                 lambda: dispatcher.add_stanza("iq", "chat", "host", print),
                 lambda: dispatcher.add_stanza("message", "chat", "self", print),
                 lambda: dispatcher.add_stanza("iq", "get", "outgoing", print),
                 lambda: dispatcher.add_stanza("stream", "get", "host", print)):
        try:
            call()
        except ValueError:
            continue
        raise AssertionError("accepted a bad registration")


def message(type="chat", to="b@localhost", body="hi"):
    element = domish.Element((None, "message"))
    element["type"], element["to"], element["from"] = type, to, "a@localhost/r"
    element.addElement("body", content=body)
    return Stanza(element, parse_jid("a@localhost/r"), parse_jid(to))


def chain(dispatcher, *links):
    """Register ``links`` as one chain, in the order given (highest priority first)."""
    for priority, link in zip(range(len(links), 0, -1), links, strict=True):
        dispatcher.add_stanza("message", "chat", "bare", link, priority)


def test_links_continue_replace_and_consume_and_otherwise_ends_the_chain():
    dispatcher, _ = make()
    trail = []
    replacement = message(body="replaced")
    chain(dispatcher,
          lambda s, o: trail.append(("first", str(s.element.body))),
          lambda s, o: replacement,
          lambda s, o: trail.append(("third", str(s.element.body))) or False)
    result = dispatcher.dispatch(message(), "bare", None,
                                 lambda s, t, o: trail.append(("end", str(s.element.body))) or 7)
    assert result == 7
    assert trail == [("first", "hi"), ("third", "replaced"), ("end", "replaced")]
    dispatcher.add_stanza("message", "chat", "bare", lambda s, o: True, priority=2)
    trail.clear()
    assert dispatcher.dispatch(message(), "bare", None, lambda s, t, o: trail.append("end"))
    assert trail == [("first", "hi")]  # consumed after the first: the rest never ran


def test_a_link_that_goes_async_holds_the_rest_and_returns_a_deferred():
    dispatcher, _ = make()
    write, trail = defer.Deferred(), []
    chain(dispatcher, lambda s, o: write, lambda s, o: trail.append("deliver") or True)
    result = dispatcher.dispatch(message(), "bare", None)
    assert isinstance(result, defer.Deferred) and not result.called and trail == []
    write.callback(None)
    assert trail == ["deliver"] and result.result is True


def test_an_async_replacement_and_an_async_end():
    dispatcher, _ = make()
    later = defer.Deferred()
    chain(dispatcher, lambda s, o: later)
    ends = []
    result = dispatcher.dispatch(message(), "bare", None,
                                 lambda s, t, o: ends.append(str(s.element.body)) or "done")
    later.callback(message(body="new"))
    assert ends == ["new"] and result.result == "done"


def test_failing_links_answer_with_their_error_and_consume():
    dispatcher, replies = make()
    failing = defer.Deferred()

    def refuse(stanza, origin):
        raise StanzaError("not-acceptable")

    chain(dispatcher, refuse)
    assert dispatcher.dispatch(message(), "bare", None, lambda s, t, o: 1 / 0) is True
    dispatcher2, replies2 = make()
    chain(dispatcher2, lambda s, o: failing)
    result = dispatcher2.dispatch(message(), "bare", None, lambda s, t, o: 1 / 0)
    failing.errback(RuntimeError("disk full"))
    assert result.result is True
    conditions = [list(r.elements())[-1].firstChildElement().name for r in replies + replies2]
    assert conditions == ["not-acceptable", "internal-server-error"]
    assert all(r["type"] == "error" for r in replies + replies2)
    dispatcher3, replies3 = make()
    error = message(type="error")
    dispatcher3.add_stanza("message", "error", "bare", refuse)
    dispatcher3.dispatch(error, "bare", None)
    assert replies3 == []  # never an error to an error


def test_an_iq_answer_still_being_made_is_returned_for_the_stream_to_wait_on():
    dispatcher, replies = make()
    pending = defer.Deferred()
    dispatcher.add_iq("set", "urn:test", "query", "host", lambda s, o: pending)
    dispatcher.add_iq("get", "urn:test", "query", "host", lambda s, o: None)
    assert dispatcher.dispatch_iq(iq(), "host", None) is True  # answered at once
    waiting = dispatcher.dispatch_iq(iq(type="set"), "host", None)
    assert isinstance(waiting, defer.Deferred) and not waiting.called
    pending.callback(None)
    assert waiting.called and [r["type"] for r in replies] == ["result", "result"]
