"""Answer classification and region selection: pure functions, no server."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest

from connector.cdp.answer import MAX_REASON_CHARS, Answer, network_error
from connector.cdp.client import (
    REGIONS,
    CdpClient,
    Outcome,
    basic_auth_header,
    classify,
    parse_retry_after,
    resolve_base_url,
)
from connector.errors import ConfigError

NOW = 1_800_000_000.0


def test_2xx_is_delivered_with_the_ref() -> None:
    body = json.dumps({"ref": "r-1", "status": "OK", "version": "1.2", "client_key": "k"})
    answer = classify(201, {}, body.encode())
    assert (answer.outcome, answer.status, answer.ref) == (Outcome.DELIVERED, 201, "r-1")


def test_2xx_without_json_body_is_still_delivered() -> None:
    assert classify(200, {}, b"").outcome is Outcome.DELIVERED
    assert classify(204, {}, b"{not json").ref is None


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_408_429_and_5xx_are_retryable(status: int) -> None:
    assert classify(status, {}, b"").outcome is Outcome.RETRYABLE


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_fatal(status: int) -> None:
    answer = classify(status, {}, b'{"error": "bad credentials"}')
    assert answer.outcome is Outcome.FATAL
    assert "bad credentials" in answer.reason


@pytest.mark.parametrize("status", [400, 404, 405, 409, 413, 422])
def test_other_4xx_are_permanent_with_the_body_reason(status: int) -> None:
    answer = classify(status, {}, b'{"status":"ERROR","error":"email: invalid","field":"email"}')
    assert answer.outcome is Outcome.PERMANENT
    assert answer.reason == f"{status}: email: invalid"


def test_permanent_reason_falls_back_to_text_then_phrase_and_is_capped() -> None:
    assert classify(400, {}, b"plain words").reason == "400: plain words"
    assert classify(404, {}, b"").reason == "404: Not Found"
    long = classify(400, {}, b"x" * 10_000).reason
    assert len(long) <= MAX_REASON_CHARS + 10


def test_redirect_is_fatal_naming_the_location() -> None:
    answer = classify(301, {"Location": "https://elsewhere/"}, b"")
    assert answer.outcome is Outcome.FATAL
    assert "https://elsewhere/" in answer.reason


def test_429_retry_after_seconds_is_parsed() -> None:
    assert classify(429, {"Retry-After": "7"}, b"").retry_after == 7.0
    assert classify(503, {"Retry-After": "1.5"}, b"").retry_after == 1.5


def test_429_retry_after_http_date_is_relative_to_now() -> None:
    header = formatdate(NOW + 30, usegmt=True)
    assert classify(429, {"Retry-After": header}, b"", now=NOW).retry_after == 30.0


@pytest.mark.parametrize("value", [None, "", "soon", "Mon, 99 Foo 2026", "nan", "inf"])
def test_bad_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_in_the_past_is_zero() -> None:
    assert parse_retry_after(formatdate(NOW - 60, usegmt=True), NOW) == 0.0
    assert parse_retry_after("-5", NOW) == 0.0


def test_network_errors_and_timeouts_are_retryable_without_status() -> None:
    timeout = network_error(TimeoutError())
    assert (timeout.outcome, timeout.status) == (Outcome.RETRYABLE, None)
    reset = network_error(ConnectionResetError("peer reset"))
    assert reset.outcome is Outcome.RETRYABLE
    assert "ConnectionResetError" in reset.reason


def test_regions_come_from_the_spec_servers() -> None:
    assert REGIONS == {
        "eu": "https://api-engage-eu.sitecorecloud.io",
        "us": "https://api-engage-us.sitecorecloud.io",
        "ap": "https://api-engage-ap.sitecorecloud.io",
        "jp": "https://api-engage-jpe.sitecorecloud.io",
    }
    assert resolve_base_url("JP") == REGIONS["jp"]


def test_base_url_overrides_region() -> None:
    assert resolve_base_url("eu", "http://127.0.0.1:8080/") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("region", "base_url"),
    [("mars", None), (None, None), (None, "ftp://x"), (None, "https://u:p@host")],
)
def test_bad_region_or_base_url_is_a_config_error(region: str | None, base_url: str | None) -> None:
    with pytest.raises(ConfigError):
        resolve_base_url(region, base_url)


def test_basic_auth_header() -> None:
    assert basic_auth_header("key", "token") == "Basic a2V5OnRva2Vu"


def test_client_repr_shows_no_secret() -> None:
    client = CdpClient("http://127.0.0.1:1", "key", "very-secret-token")
    text = repr(client) + repr(vars(client))
    assert "very-secret-token" not in text
    assert basic_auth_header("key", "very-secret-token") not in text


@pytest.mark.parametrize(
    "body",
    [b'{"ref":"r-1","status":"OK"}', b'{"ref":"a\\"b","x":1}', b'{"ref":"abc"}',
     b'{"ref":"\\u00e9t\\u00e9"}', b'{"ref":"caf\xc3\xa9"}', b'{"status":"OK","ref":"r-2"}',
     b'{"ref":1}', b'{"ref":null}', b'{"ref":""}', b"[]", b"{}"],
)  # fmt: skip
def test_ref_read_without_a_parse_equals_the_json_parse(body: bytes) -> None:
    parsed = json.loads(body)
    expected = parsed.get("ref") if isinstance(parsed, dict) else None
    assert classify(201, {}, body).ref == (expected if isinstance(expected, str) else None)


# -- the whole decision table, answer by answer ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        (100, Outcome.RETRYABLE, "100: Continue"),  # unusual: nothing says the event arrived
        (199, Outcome.RETRYABLE, "199: HTTP 199"),
        (200, Outcome.DELIVERED, "OK"),
        (299, Outcome.DELIVERED, "OK"),
        (300, Outcome.FATAL, "unexpected redirect to ?"),
        (399, Outcome.FATAL, "unexpected redirect to ?"),
        (400, Outcome.PERMANENT, "400: Bad Request"),
        (401, Outcome.FATAL, "401: Unauthorized"),
        (403, Outcome.FATAL, "403: Forbidden"),
        (408, Outcome.RETRYABLE, "408: Request Timeout"),
        (429, Outcome.RETRYABLE, "429: Too Many Requests"),
        (499, Outcome.PERMANENT, "499: HTTP 499"),
        (500, Outcome.RETRYABLE, "500: Internal Server Error"),
        (599, Outcome.RETRYABLE, "599: HTTP 599"),
        (600, Outcome.RETRYABLE, "600: HTTP 600"),  # unusual: retried, never dropped
        (999, Outcome.RETRYABLE, "999: HTTP 999"),
    ],
)
def test_every_status_class_boundary_gets_its_answer(
    status: int, outcome: Outcome, reason: str
) -> None:
    # Retry-After counts only where the status says "try again later" (408, 429, 5xx).
    retry_after = 3.0 if status in (408, 429) or 500 <= status < 600 else None
    assert classify(status, {"Retry-After": "3"}, b"") == Answer(
        outcome, status, reason, retry_after
    )


def test_redirect_reason_caps_the_location() -> None:
    where = "https://elsewhere/" + "x" * 500
    assert classify(302, {"Location": where}, b"").reason == f"unexpected redirect to {where[:200]}"


@pytest.mark.parametrize("key", ["error", "message", "reason", "detail", "errors"])
def test_the_reason_comes_from_any_usual_error_key(key: str) -> None:
    body = json.dumps({"status": "ERROR", key: "pos: unknown"}).encode()
    assert classify(400, {}, body).reason == "400: pos: unknown"


def test_a_structured_error_value_is_kept_as_json() -> None:
    body = json.dumps({"errors": [{"field": "pos"}]}).encode()
    assert classify(422, {}, body).reason == '422: [{"field": "pos"}]'
    assert classify(400, {}, b'{"error": ["a"]}').reason == '400: ["a"]'


def test_a_body_that_is_not_utf8_still_gives_a_reason() -> None:
    assert classify(400, {}, b"\xffbad\xfe").reason == "400: \ufffdbad\ufffd"


def test_a_ref_that_is_not_text_is_no_ref() -> None:
    assert classify(201, {}, b'{"ref": 5}').ref is None


def test_network_error_reasons_name_the_error_and_its_detail() -> None:
    assert network_error(TimeoutError()) == Answer(
        Outcome.RETRYABLE, None, "timeout waiting for the CDP"
    )
    assert network_error(ConnectionResetError("peer reset")).reason == (
        "network error: ConnectionResetError: peer reset"
    )
    assert network_error(ConnectionResetError()).reason == "ConnectionResetError"
    long = network_error(OSError("e" * 1000)).reason
    assert long == "network error: OSError: " + "e" * MAX_REASON_CHARS


def test_retry_after_http_date_without_now_is_relative_to_the_clock() -> None:
    header = formatdate(time.time() + 120, usegmt=True)
    seconds = parse_retry_after(header)
    assert seconds is not None
    assert 110 <= seconds <= 120
