"""Decoded Avro values turned into JSON-safe ones, the same way every time.

Used by the mapping wherever a value leaves for the event body or a text template
(``expressions``, ``modifiers``, the transforms that give dates and numbers) and by
``map`` to print records. Pure; a value JSON cannot carry raises ``ValueError``
(NaN, infinities) or ``TypeError`` (an unknown type), which the mapper turns into a
MappingError naming the rule and field.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["decimal_to_float", "iso_datetime", "json_safe"]

_PRIMITIVES = frozenset({str, int, float, bool, type(None)})


def iso_datetime(value: dt.datetime) -> str:
    """``2024-05-01T12:34:56.789Z``: UTC, millisecond precision, fixed width (naive = UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decimal_to_float(value: Decimal) -> float:
    """A finite Avro decimal as a JSON number; ValueError for NaN or infinity."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return float(value)


def json_safe(value: Any) -> Any:
    """Turn decoded Avro values into what JSON can carry, the same way every time.

    datetime → ISO 8601 UTC string (milliseconds, ``Z``); date and time → ISO
    strings; Decimal → float; UUID → str; bytes → base64; tuples → lists;
    mapping keys → str. NaN and infinities are refused (JSON has no such numbers).
    """
    kind = type(value)
    if kind in _PRIMITIVES:
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    if isinstance(value, Decimal):
        return decimal_to_float(value)
    if isinstance(value, dt.datetime):
        return iso_datetime(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return json_safe(float(value))
    raise TypeError(f"a {kind.__name__} value cannot be sent as JSON")
