"""The CDP sandbox over real loopback HTTP: auth, validation, faults, stats, garbage."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures_sandbox import SandboxProcess, start_sandbox, stop_sandbox

pytestmark = pytest.mark.integration

VIEW: dict[str, Any] = {
    "channel": "WEB",
    "type": "VIEW",
    "browser_id": "b-1",
    "session_id": "s-1",
    "pos": "shop.example.com",
    "currency": "EUR",
}


def post(
    sandbox: SandboxProcess,
    body: bytes | dict[str, Any],
    *,
    auth: str | None = "valid",
) -> tuple[int, dict[str, str], Any]:
    """POST to the event endpoint; returns (status, headers, parsed JSON body or None)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"}
    if auth == "valid":
        raw = f"{sandbox.client_key}:{sandbox.api_token}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif auth is not None:
        headers["Authorization"] = auth
    url = urlsplit(sandbox.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request("POST", "/v1.2/event/create.json", body=data, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        parsed = json.loads(payload) if payload else None
        return response.status, dict(response.getheaders()), parsed
    finally:
        conn.close()


def test_valid_event_gets_201_with_ref_and_is_recorded(cdp_sandbox: SandboxProcess) -> None:
    status, _, body = post(cdp_sandbox, VIEW)
    assert status == 201
    assert body["status"] == "OK"
    assert body["version"] == "1.2"
    assert body["client_key"] == cdp_sandbox.client_key
    assert cdp_sandbox.events() == [VIEW]
    assert cdp_sandbox.records()[0]["ref"] == body["ref"]
    lines = cdp_sandbox.record_file.read_text().splitlines()  # flushed by the events query
    assert json.loads(lines[-1])["ref"] == body["ref"]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Basic " + base64.b64encode(b"sandbox-client-key:wrong").decode(),
        "Basic " + base64.b64encode(b"other-key:sandbox-api-token-s3cret").decode(),
        "Bearer sandbox-api-token-s3cret",
        "Basic !!!not-base64!!!",
        "Basic",
    ],
)
def test_missing_or_wrong_credentials_get_401(
    cdp_sandbox: SandboxProcess, auth: str | None
) -> None:
    status, headers, _ = post(cdp_sandbox, VIEW, auth=auth)
    assert status == 401
    assert headers.get("WWW-Authenticate", "").startswith("Basic")
    assert cdp_sandbox.events() == []


def test_lowercase_basic_scheme_is_accepted(cdp_sandbox: SandboxProcess) -> None:
    raw = f"{cdp_sandbox.client_key}:{cdp_sandbox.api_token}".encode()
    status, _, _ = post(cdp_sandbox, VIEW, auth="basic " + base64.b64encode(raw).decode())
    assert status == 201


@pytest.fixture(scope="module")
def models_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox validating with the connector's own payload models, not the spec."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("models-sandbox"), spec=False)
    yield sandbox
    stop_sandbox(sandbox)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**VIEW, "channel": "FAX"}, "channel"),
        ({**VIEW, "type": "IDENTITY", "email": "nope"}, "email"),
        ({**VIEW, "type": "SEARCH"}, "search_term"),
        ({k: v for k, v in VIEW.items() if k != "session_id"}, "session_id"),
    ],
)
def test_invalid_payload_gets_400_naming_the_field(
    cdp_sandbox: SandboxProcess, payload: dict[str, Any], field: str
) -> None:
    status, _, body = post(cdp_sandbox, payload)
    assert status == 400
    assert body["field"] == field
    assert field in body["error"]
    assert cdp_sandbox.events() == []


def test_the_tests_sandbox_judges_by_the_spec_not_by_our_models(
    cdp_sandbox: SandboxProcess, models_sandbox: SandboxProcess
) -> None:
    # The spec has no pattern for currency and no additionalProperties: false.
    loose = {**VIEW, "currency": "eur", "typo_field": 1}
    assert post(models_sandbox, loose)[0] == 400
    assert post(cdp_sandbox, loose)[0] == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**VIEW, "currency": "eur"}, "currency"),
        ({**VIEW, "type": "IDENTITY", "email": "nope"}, "email"),
        ({**VIEW, "type": "SEARCH"}, "search_term"),
        ({**VIEW, "ext": {"a": {"b": 1}}}, "ext.a"),
        ({**VIEW, "typo_field": 1}, "typo_field"),
    ],
)
def test_models_mode_refuses_what_the_models_refuse_naming_the_field(
    models_sandbox: SandboxProcess, payload: dict[str, Any], field: str
) -> None:
    models_sandbox.reset()
    status, _, body = post(models_sandbox, payload)
    assert status == 400
    assert body["field"] == field
    assert field in body["error"]
    assert models_sandbox.events() == []


NASTY_BODIES = [
    b"",
    b"not json",
    b"{",
    b"[]",
    b"null",
    b"1",
    b'"VIEW"',
    b"[" * 100_000,
    b'{"a":' * 50_000,
    b"\xff\xfe\x00garbage",
    b'{"type": NaN}',
    b'{"channel": "WEB", "type": "VIEW", "browser_id": 1e999}',
    b'{"num": ' + b"1" * 10_000 + b"}",
    b'{"type": ["VIEW"], "channel": {"x": [1, 2]}}',
    b'{"type": {"$ne": 1}}',
    b'{"\\ud800": "lone surrogate"}',
]


@pytest.mark.parametrize("body", NASTY_BODIES, ids=range(len(NASTY_BODIES)))
def test_garbage_body_gets_400_and_the_server_survives(
    cdp_sandbox: SandboxProcess, body: bytes
) -> None:
    status, _, answer = post(cdp_sandbox, body)
    assert status == 400
    assert answer["status"] == "ERROR"
    assert post(cdp_sandbox, VIEW)[0] == 201


def test_deeply_nested_ext_gets_400_from_the_models_and_the_server_survives(
    models_sandbox: SandboxProcess,
) -> None:
    # The spec allows any ext values; our models allow scalars only.
    body = json.dumps({**VIEW, "ext": {f"k{i}": [[[]]] for i in range(200)}}).encode()
    assert post(models_sandbox, body)[0] == 400
    assert post(models_sandbox, VIEW)[0] == 201


def test_oversized_body_gets_413(cdp_sandbox: SandboxProcess) -> None:
    status, _, _ = post(cdp_sandbox, b'{"pad": "' + b"x" * 300_000 + b'"}')
    assert status == 413
    assert post(cdp_sandbox, VIEW)[0] == 201


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=5)
                | st.dictionaries(st.text(max_size=10), inner, max_size=5)
            ),
            max_leaves=30,
        ).map(lambda v: json.dumps(v).encode()),
        st.dictionaries(
            st.sampled_from([*VIEW, "ext", "email", "product", "items", "num_results"]),
            st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
        ).map(lambda d: json.dumps({**VIEW, **d}).encode()),
    )
)
def test_random_bodies_never_crash_the_server(cdp_sandbox: SandboxProcess, body: bytes) -> None:
    status, _, answer = post(cdp_sandbox, body)
    assert status in (201, 400)
    assert isinstance(answer, dict)


def test_no_validate_mode_accepts_any_json_object(tmp_path: Path) -> None:
    sandbox = start_sandbox(tmp_path, "--no-validate")
    try:
        assert post(sandbox, {"type": "ANYTHING", "what": [1]})[0] == 201
        assert post(sandbox, b"[1]")[0] == 400
        assert post(sandbox, b"garbage")[0] == 400
        assert post(sandbox, VIEW, auth=None)[0] == 401
        assert sandbox.stats()["by_type"] == {"ANYTHING": 1}
    finally:
        stop_sandbox(sandbox)


def test_start_up_fault_flags_apply(tmp_path: Path) -> None:
    sandbox = start_sandbox(tmp_path, "--rate-429", "1", "--retry-after", "4")
    try:
        status, headers, _ = post(sandbox, VIEW)
        assert (status, headers["Retry-After"]) == (429, "4")
        sandbox.reset()  # back to the start-up faults, not to none
        assert post(sandbox, VIEW)[0] == 429
        sandbox.clear_faults()
        assert post(sandbox, VIEW)[0] == 201
    finally:
        stop_sandbox(sandbox)


# -- faults at run time --------------------------------------------------------------------


def test_fixed_latency_delays_the_answer(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(latency_ms=300)
    started = time.monotonic()
    assert post(cdp_sandbox, VIEW)[0] == 201
    assert time.monotonic() - started >= 0.3


def test_random_latency_stays_within_its_bounds(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(latency_ms=50, latency_jitter_ms=100)
    started = time.monotonic()
    assert post(cdp_sandbox, VIEW)[0] == 201
    assert time.monotonic() - started >= 0.05


@pytest.mark.parametrize("error_status", [500, 503])
def test_error_share_answers_5xx(cdp_sandbox: SandboxProcess, error_status: int) -> None:
    cdp_sandbox.set_faults(error_rate=1.0, error_status=error_status)
    assert post(cdp_sandbox, VIEW)[0] == error_status
    cdp_sandbox.set_faults(error_rate=0.5)
    statuses = {post(cdp_sandbox, VIEW)[0] for _ in range(40)}
    assert statuses == {201, error_status}


def test_429_share_sends_retry_after(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(rate_429=1.0, retry_after=3)
    status, headers, _ = post(cdp_sandbox, VIEW)
    assert (status, headers["Retry-After"]) == (429, "3")


def test_rate_ceiling_answers_429_above_it(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(max_rps=3)
    statuses = [post(cdp_sandbox, VIEW)[0] for _ in range(10)]
    assert statuses.count(429) >= 5
    assert 201 in statuses


def test_drop_share_closes_the_connection_without_answer(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(drop_rate=1.0)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        post(cdp_sandbox, VIEW)
    assert cdp_sandbox.stats()["by_status"] == {"dropped": 1}


def test_outage_window_answers_503_until_it_ends(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(outage_seconds=0.6)
    status, headers, _ = post(cdp_sandbox, VIEW)
    assert status == 503
    assert "Retry-After" in headers
    time.sleep(0.7)
    assert post(cdp_sandbox, VIEW)[0] == 201


def test_outage_in_drop_mode_drops(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(outage_seconds=30, outage_mode="drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        post(cdp_sandbox, VIEW)


def test_auth_failure_mode_answers_401_until_cleared(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(auth_fail=True)
    assert post(cdp_sandbox, VIEW)[0] == 401
    cdp_sandbox.set_faults(auth_fail=False)
    assert post(cdp_sandbox, VIEW)[0] == 201


def test_put_replaces_and_post_merges_faults(cdp_sandbox: SandboxProcess) -> None:
    cdp_sandbox.set_faults(latency_ms=10)
    merged = cdp_sandbox.set_faults(rate_429=0.5)
    assert (merged["latency_ms"], merged["rate_429"]) == (10, 0.5)
    replaced = cdp_sandbox.set_faults(replace=True, rate_429=0.25)
    assert (replaced["latency_ms"], replaced["rate_429"]) == (0, 0.25)


@pytest.mark.parametrize("bad", [{"error_rate": 2}, {"no_such_fault": 1}, {"error_status": 404}])
def test_bad_fault_settings_are_refused(cdp_sandbox: SandboxProcess, bad: dict[str, Any]) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        cdp_sandbox.set_faults(**bad)
    info.value.close()
    assert info.value.code == 400
    assert cdp_sandbox.faults()["error_rate"] == 0


def test_stats_count_by_status_and_type(cdp_sandbox: SandboxProcess) -> None:
    post(cdp_sandbox, VIEW)
    post(cdp_sandbox, VIEW)
    post(cdp_sandbox, {**VIEW, "type": "ADD_TO_WISHLIST"})
    post(cdp_sandbox, {**VIEW, "channel": "x"})
    post(cdp_sandbox, VIEW, auth=None)
    stats = cdp_sandbox.stats()
    assert stats["by_status"] == {"201": 3, "400": 1, "401": 1}
    assert stats["by_type"] == {"VIEW": 2, "ADD_TO_WISHLIST": 1}
    assert (stats["requests"], stats["accepted"]) == (5, 3)
    assert len(cdp_sandbox.events("VIEW")) == 2
    cdp_sandbox.reset()
    assert cdp_sandbox.stats()["requests"] == 0
    assert cdp_sandbox.events() == []
