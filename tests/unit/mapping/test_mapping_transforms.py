"""Named transforms and the JSON-safe conversion of decoded Avro values."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from connector.mapping.json_values import json_safe
from connector.mapping.transforms import TransformArgError, build_transform

AT = dt.datetime(2026, 11, 2, 8, 15, 30, 123456, tzinfo=dt.UTC)


def t(name: str, value: Any, args: Any = None) -> Any:
    return build_transform(name, args)(value)


def test_json_safe_converts_decoded_avro_values_deterministically() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    assert json_safe(AT) == "2026-11-02T08:15:30.123Z"
    assert json_safe(AT.astimezone(cet)) == "2026-11-02T08:15:30.123Z"
    assert json_safe(dt.datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"  # naive = UTC
    assert json_safe(dt.date(1990, 4, 17)) == "1990-04-17"
    assert json_safe(Decimal("119.95")) == 119.95
    assert json_safe(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_safe(b"\x00\x01") == "AAE="
    assert json_safe({"a": (Decimal("1.5"), AT)}) == {"a": [1.5, "2026-11-02T08:15:30.123Z"]}


@pytest.mark.parametrize("bad", [float("nan"), Decimal("Infinity"), object()])
def test_json_safe_refuses_what_json_cannot_carry(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        json_safe(bad)


def test_case_and_trim() -> None:
    assert t("upper", "eur") == "EUR"
    assert t("lower", " A@B.COM ") == " a@b.com "
    assert t("trim", "  x ") == "x"
    with pytest.raises(TypeError):
        t("upper", 5)


def test_iso8601_from_datetime_epoch_millis_and_strings() -> None:
    assert t("iso8601", AT) == "2026-11-02T08:15:30.123Z"
    assert t("iso8601", 1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert t("iso8601", 1_700_000_000, {"unit": "s"}) == "2023-11-14T22:13:20.000Z"
    assert t("iso8601", "2026-11-02T09:15:30+01:00") == "2026-11-02T08:15:30.000Z"
    assert t("iso8601", dt.date(2026, 1, 2)) == "2026-01-02"
    with pytest.raises(ValueError, match="ISO 8601"):
        t("iso8601", "yesterday")


def test_date_from_date_datetime_and_avro_epoch_days() -> None:
    assert t("date", dt.date(1990, 4, 17)) == "1990-04-17"
    assert t("date", AT) == "2026-11-02"
    assert t("date", 7411) == "1990-04-17"
    assert t("date", "1990-04-17") == "1990-04-17"


def test_strftime() -> None:
    assert t("strftime", AT, "%Y-%m-%dT%H:%M") == "2026-11-02T08:15"
    assert t("strftime", dt.date(1990, 4, 17), {"format": "%Y-%m-%dT%H:%M"}) == "1990-04-17T00:00"


def test_minor_units_and_numbers_are_exact() -> None:
    assert t("minor_units", 28890) == 288.9
    assert t("minor_units", 1999, {"exponent": 3}) == 1.999
    assert t("minor_units", 500, 0) == 500.0
    assert t("number", Decimal("0.1")) == 0.1
    assert t("number", "12.50") == 12.5
    assert t("integer", Decimal("3")) == 3
    assert t("round", Decimal("2.345"), 1) == 2.3
    with pytest.raises(ValueError, match="whole number"):
        t("integer", 2.5)
    with pytest.raises(TypeError):
        t("number", True)


def test_string_keeps_decimals_exact() -> None:
    assert t("string", Decimal("12.50")) == "12.50"
    assert t("string", 3) == "3"
    assert t("string", True) == "true"
    assert t("string", AT) == "2026-11-02T08:15:30.123Z"


def test_lookup_default_passthrough_and_missing() -> None:
    table = {"MALE": "Male", "FEMALE": "Female"}
    assert t("lookup", "MALE", {"table": table}) == "Male"
    assert t("lookup", "X", {"table": table, "default": "Unknown"}) == "Unknown"
    assert t("lookup", "X", {"table": table, "passthrough": True}) == "X"
    assert t("lookup", "true", {"table": {True: "yes"}}) == "yes"
    with pytest.raises(ValueError, match="not in the lookup table"):
        t("lookup", "X", {"table": table})


def test_split_truncate_flatten() -> None:
    assert t("split", "en-GB", "-") == "en"
    assert t("split", "a/b/c", {"separator": "/", "index": -1}) == "c"
    assert t("split", "en", {"separator": "-", "index": 1}) is None
    assert t("truncate", "abcdef", 3) == "abc"
    assert t("flatten", {"a": {"b": 1}, "c": 2}) == {"a_b": 1, "c": 2}


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("nope", None, "unknown transform"),
        ("upper", "x", "takes no arguments"),
        ("minor_units", {"exponent": -1}, "exponent must be"),
        ("minor_units", {"exp": 2}, "knows only"),
        ("iso8601", {"unit": "days"}, "unit must be"),
        ("strftime", None, "needs a format"),
        ("lookup", {"FROM": "TO"}, "needs {table"),
        ("lookup", {"table": {"a": "b"}, "default": "x", "passthrough": True}, "either"),
        ("split", {"separator": ""}, "non-empty"),
        ("truncate", None, "length must be"),
    ],
)
def test_bad_arguments_are_refused_at_build_time(name: str, args: Any, message: str) -> None:
    with pytest.raises(TransformArgError, match=message):
        build_transform(name, args)
