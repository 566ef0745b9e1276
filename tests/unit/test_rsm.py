"""XEP-0059 result set management: requests under a server cap, bad values refused, answers
built, and paging of in-memory items forwards, backwards, by index and to the last page."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from xmppd import ns
from xmppd.errors import StanzaError
from xmppd.rsm import Page, ResultSetRequest, find_request, page, parse_request, result_set
from xmppd.xml.stored import stanza_from_text

LIMITS = {"default_max": 20, "limit": 50}


def xml(text: str) -> domish.Element:
    element = stanza_from_text(text)
    assert element is not None, text
    return element


def request(body: str) -> ResultSetRequest:
    return parse_request(xml(f"<set xmlns='{ns.RSM}'>{body}</set>"), **LIMITS)


def refused(body: str) -> StanzaError:
    with pytest.raises(StanzaError) as caught:
        request(body)
    assert caught.value.condition == "bad-request"
    return caught.value


# -- requests: the XEP's own examples


def test_limit():  # XEP-0059 §2.1
    assert request("<max>10</max>") == ResultSetRequest(max=10)


def test_next_page():  # §2.2
    assert request("<max>10</max><after>peterpan@neverland.lit</after>") == ResultSetRequest(
        max=10, after="peterpan@neverland.lit")


def test_previous_page():  # §2.3
    parsed = request("<max>10</max><before>peter@pixyland.org</before>")
    assert parsed == ResultSetRequest(max=10, before="peter@pixyland.org")
    assert parsed.backwards and not parsed.wants_last_page


def test_last_page_is_an_empty_before():  # §2.5
    parsed = request("<max>10</max><before/>")
    assert parsed.before == "" and parsed.wants_last_page and parsed.backwards


def test_page_by_index():  # §2.6
    assert request("<max>10</max><index>371</index>") == ResultSetRequest(max=10, index=371)


def test_count_only():  # §2.7
    assert request("<max>0</max>").max == 0


# -- the server's cap


def test_no_max_is_the_default_and_a_big_max_is_the_limit():
    assert request("").max == 20
    assert request("<max>50</max>").max == 50
    assert request("<max>51</max>").max == 50
    assert request("<max>99999999999999999999999999999</max>").max == 50


def test_the_caller_limits_must_make_sense():
    element = xml(f"<set xmlns='{ns.RSM}'/>")
    with pytest.raises(ValueError):
        parse_request(element, default_max=60, limit=50)
    with pytest.raises(ValueError):
        parse_request(element, default_max=-1, limit=50)


def test_find_request_is_none_without_rsm():
    assert find_request(xml("<query xmlns='urn:xmpp:mam:2'/>"), **LIMITS) is None
    found = find_request(xml(f"<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' "
                             f"type='submit'/><set xmlns='{ns.RSM}'><max>5</max></set></query>"),
                         **LIMITS)
    assert found == ResultSetRequest(max=5)


def test_find_request_refuses_two_sets():
    query = xml(f"<query xmlns='urn:xmpp:mam:2'><set xmlns='{ns.RSM}'/><set xmlns='{ns.RSM}'/>"
                "</query>")
    with pytest.raises(StanzaError, match="bad-request"):
        find_request(query, **LIMITS)


def test_answer_elements_and_foreign_children_in_a_request_are_ignored():
    assert request("<count>5</count><first>a</first><max xmlns='urn:other'>x</max>"
                   "<max>3</max>") == ResultSetRequest(max=3)


# -- bad requests


@pytest.mark.parametrize(("body", "words"), [
    ("<max>ten</max>", "<max/> is a whole number, not 'ten'"),
    ("<max>-1</max>", "whole number"),
    ("<max>+1</max>", "whole number"),
    ("<max/>", "whole number"),
    ("<max> 5</max>", "whole number"),
    ("<max>1.0</max>", "whole number"),
    ("<max>\u0663</max>", "whole number"),  # ARABIC-INDIC DIGIT THREE
    ("<max>1</max><max>2</max>", "more than one <max/>"),
    ("<after>a</after><after>b</after>", "more than one <after/>"),
    ("<before/><before/>", "more than one <before/>"),
    ("<index>x</index>", "<index/> is a whole number"),
    ("<index>-1</index>", "whole number"),
    ("<index>2147483648</index>", "at most 2147483647"),
    ("<index>99999999999999999999999999</index>", "at most"),
    ("<after/>", "empty <after/>"),
    ("<after>a</after><before>b</before>", "cannot be used together"),
    ("<after>a</after><before/>", "cannot be used together"),
    ("<index>0</index><after>a</after>", "<index/> cannot be used"),
    ("<index>0</index><before/>", "<index/> cannot be used"),
])
def test_bad_requests(body, words):
    assert words in refused(body).text


def test_a_set_in_another_namespace_is_refused():
    with pytest.raises(StanzaError, match="bad-request"):
        parse_request(xml("<set xmlns='urn:other'/>"), **LIMITS)


# -- answers


def test_result_set_for_a_page():  # XEP-0059 §2.2
    element = result_set(first="stpeter@jabber.org", last="peterpan@neverland.lit",
                         first_index=0, count=800)
    assert element.toXml() == (
        f"<set xmlns='{ns.RSM}'><first index='0'>stpeter@jabber.org</first>"
        "<last>peterpan@neverland.lit</last><count>800</count></set>")


def test_result_set_for_an_empty_page_has_no_first_or_last():
    assert result_set(count=790).toXml() == f"<set xmlns='{ns.RSM}'><count>790</count></set>"
    assert result_set(first="a", last="a").toXml() == (
        f"<set xmlns='{ns.RSM}'><first>a</first><last>a</last></set>")


def test_result_set_refuses_half_a_page():
    with pytest.raises(ValueError):
        result_set(first="a")
    with pytest.raises(ValueError):
        result_set(last="a")
    with pytest.raises(ValueError):
        result_set(first_index=3, count=4)


# -- paging items held in memory

ITEMS = [f"id{n}" for n in range(25)]


def ids(request_body: str) -> Page[str]:
    return page(ITEMS, request(request_body), str)


def test_first_page_then_next_then_previous():
    first = ids("<max>10</max>")
    assert first == Page(tuple(ITEMS[:10]), 0, 25)
    second = ids(f"<max>10</max><after>{first.items[-1]}</after>")
    assert second == Page(tuple(ITEMS[10:20]), 10, 25)
    third = ids(f"<max>10</max><after>{second.items[-1]}</after>")
    assert third == Page(tuple(ITEMS[20:]), 20, 25)
    assert ids(f"<max>10</max><after>{third.items[-1]}</after>") == Page((), 25, 25)
    assert ids(f"<max>10</max><before>{second.items[0]}</before>") == first
    assert ids("<max>10</max><before>id3</before>") == Page(tuple(ITEMS[:3]), 0, 25)


def test_last_page_and_index():
    assert ids("<max>10</max><before/>") == Page(tuple(ITEMS[15:]), 15, 25)
    assert ids("<max>10</max><index>12</index>") == Page(tuple(ITEMS[12:22]), 12, 25)
    assert ids("<max>10</max><index>25</index>") == Page((), 25, 25)
    assert ids("<max>10</max><index>2147483647</index>").items == ()


def test_count_only_and_default():
    assert ids("<max>0</max>") == Page((), 0, 25)
    assert ids("") == Page(tuple(ITEMS[:20]), 0, 25)


def test_unknown_uid_is_item_not_found():
    for body in ("<after>gone</after>", "<before>gone</before>"):
        with pytest.raises(StanzaError) as caught:
            ids(body)
        assert caught.value.condition == "item-not-found"


def test_empty_result_set():
    assert page([], request("<before/>"), str) == Page((), 0, 0)
    assert page([], request(""), str).to_element(str).toXml() == (
        f"<set xmlns='{ns.RSM}'><count>0</count></set>")


def test_page_to_element():
    items = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    element = page(items, request("<max>2</max><after>a</after>"),
                   lambda item: item["id"]).to_element(lambda item: item["id"])
    assert element.toXml() == (f"<set xmlns='{ns.RSM}'><first index='1'>b</first>"
                               "<last>c</last><count>3</count></set>")
