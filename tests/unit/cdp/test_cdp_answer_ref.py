"""The ref of a 2xx answer: the fast read of a leading ``"ref"`` never differs from a
JSON parse of a well-formed body, and no body makes a delivery fail."""

from __future__ import annotations

import json

import pytest

from connector.cdp import answer
from connector.cdp.answer import Outcome, classify


@pytest.mark.parametrize(
    "body",
    [
        b'{"ref":"\\",","x":1}',  # the escape is the ref's first character: ref is '",'
        b'{"ref":"",",":1}',  # an empty ref, then a key that starts with a comma
        b'{"ref":"r"}',  # a ref of one character
    ],
)
def test_a_leading_ref_reads_as_the_json_parse_reads_it(body: bytes) -> None:
    assert classify(201, {}, body).ref == json.loads(body)["ref"]


def test_a_body_cut_off_after_the_ref_has_no_ref() -> None:
    answer = classify(201, {}, b'{"ref":"r-1"')  # not JSON: the parse would fail too
    assert (answer.outcome, answer.ref) == (Outcome.DELIVERED, None)


def test_a_ref_that_is_not_utf8_still_counts_as_delivered() -> None:
    answer = classify(201, {}, b'{"ref":"caf\xe9"}')
    assert (answer.outcome, answer.status) == (Outcome.DELIVERED, 201)


def test_a_ref_that_is_not_utf8_reads_as_the_json_parse_reads_it() -> None:
    body = b'{"ref":"caf\xe9"}'
    with pytest.raises(ValueError):
        json.loads(body)  # the parse refuses it: no ref
    assert classify(201, {}, body).ref is None


@pytest.mark.parametrize(
    ("body", "ref"),
    [
        (b'{"ref":"8d2c-41","status":"OK"}', "8d2c-41"),  # what the CDP answers
        (b'{"ref":"r"}', "r"),
        (b'{"ref":"caf\xc3\xa9","status":"OK"}', "caf\u00e9"),  # UTF-8 beyond ASCII
    ],
)
def test_the_usual_answer_is_read_without_a_json_parse(
    body: bytes, ref: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path is the point of ``_ref``: a leading ref without escapes never pays
    for a parse (one per delivered event)."""

    def no_parse(_body: bytes) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(answer.json, "loads", no_parse)
    assert classify(201, {}, body).ref == ref
