"""Named value transforms: built once from their YAML arguments, called per record.

A transform is built once at compile time from its YAML arguments (a bad
argument is a :class:`TransformArgError`, which the compiler reports with the
file and line) and then called per record with a non-null value; null values
skip transforms and fall through to ``default``. A transform that cannot
handle its input raises ``ValueError`` or ``TypeError``, which the mapper turns
into a MappingError naming the rule and field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.errors import InternalError
from connector.mapping.json_values import decimal_to_float, iso_datetime, json_safe

__all__ = ["TRANSFORMS", "Transform", "TransformArgError", "build_transform"]

Transform = Callable[[Any], Any]


class TransformArgError(InternalError, ValueError):
    """A transform's YAML arguments are invalid (a start-up error)."""


_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)


# ---------------------------------------------------------------------------
# Conversions used by several transforms


def _to_datetime(value: Any, unit: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if isinstance(value, bool):
        raise TypeError("expected a timestamp, got a boolean")
    if isinstance(value, int | float | Decimal):
        scale = _UNITS[unit]
        # Integer arithmetic keeps millisecond timestamps exact (no float rounding).
        if isinstance(value, int):
            return _EPOCH + dt.timedelta(microseconds=value * scale)
        return _EPOCH + dt.timedelta(microseconds=float(value) * scale)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)
    raise TypeError(f"expected a timestamp, got a {type(value).__name__}")


_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest repr, not the binary expansion
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    raise TypeError(f"expected a number, got a {type(value).__name__}")


def _require_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} expects a string, got a {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------
# Transform factories: (args, or None when none were given) -> Transform


def _no_args(name: str, args: Any) -> None:
    if args is not None:
        raise TransformArgError(f"transform {name!r} takes no arguments")


def _upper(args: Any) -> Transform:
    _no_args("upper", args)
    return lambda v: _require_str(v, "upper").upper()


def _lower(args: Any) -> Transform:
    _no_args("lower", args)
    return lambda v: _require_str(v, "lower").lower()


def _trim(args: Any) -> Transform:
    _no_args("trim", args)
    return lambda v: _require_str(v, "trim").strip()


def _string(args: Any) -> Transform:
    _no_args("string", args)

    def to_string(value: Any) -> str:
        if isinstance(value, Decimal):
            return str(value)  # exact: "12.50", not 12.5
        if isinstance(value, bool):
            return "true" if value else "false"
        safe = json_safe(value)
        if isinstance(safe, dict | list):
            raise TypeError(f"cannot turn a {type(value).__name__} into a string")
        return str(safe)

    return to_string


def _number(args: Any) -> Transform:
    _no_args("number", args)
    return lambda v: decimal_to_float(_to_decimal(v))


def _integer(args: Any) -> Transform:
    _no_args("integer", args)

    def to_int(value: Any) -> int:
        number = _to_decimal(value)
        if number != number.to_integral_value():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)

    return to_int


def _int_arg(name: str, args: Any, key: str, default: int, low: int, high: int) -> int:
    value = args.get(key, default) if isinstance(args, Mapping) else args
    if value is None:
        value = default
    if isinstance(args, Mapping) and set(args) - {key}:
        raise TransformArgError(f"transform {name!r} knows only the argument {key!r}")
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise TransformArgError(f"transform {name!r}: {key} must be an integer {low}..{high}")
    return value


def _minor_units(args: Any) -> Transform:
    exponent = _int_arg("minor_units", args, "exponent", 2, 0, 8)

    def to_major(value: Any) -> float:
        return decimal_to_float(_to_decimal(value).scaleb(-exponent))

    return to_major


def _round(args: Any) -> Transform:
    places = _int_arg("round", args, "places", 2, 0, 12)
    quantum = Decimal(1).scaleb(-places)

    def rounded(value: Any) -> float:
        return decimal_to_float(_to_decimal(value).quantize(quantum))

    return rounded


def _unit_arg(name: str, args: Any) -> str:
    if args is None:
        return "ms"
    unit = args.get("unit", "ms") if isinstance(args, Mapping) else args
    if isinstance(args, Mapping) and set(args) - {"unit"}:
        raise TransformArgError(f"transform {name!r} knows only the argument 'unit'")
    if unit not in _UNITS:
        raise TransformArgError(f"transform {name!r}: unit must be one of s, ms, us")
    return str(unit)


def _iso8601(args: Any) -> Transform:
    unit = _unit_arg("iso8601", args)

    def to_iso(value: Any) -> str:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value.isoformat()
        return iso_datetime(_to_datetime(value, unit))

    return to_iso


def _date(args: Any) -> Transform:
    _no_args("date", args)

    def to_date(value: Any) -> str:
        if isinstance(value, dt.datetime):
            return _to_datetime(value, "ms").date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, int) and not isinstance(value, bool):
            # Avro's `date` logical type: days since 1970-01-01.
            return (dt.date(1970, 1, 1) + dt.timedelta(days=value)).isoformat()
        return _to_datetime(value, "ms").date().isoformat()

    return to_date


def _strftime(args: Any) -> Transform:
    fmt = args.get("format") if isinstance(args, Mapping) else args
    if not isinstance(fmt, str) or not fmt:
        raise TransformArgError("transform 'strftime' needs a format string, e.g. '%Y-%m-%dT%H:%M'")
    if isinstance(args, Mapping) and set(args) - {"format"}:
        raise TransformArgError("transform 'strftime' knows only the argument 'format'")
    try:
        _EPOCH.strftime(fmt)
    except ValueError as exc:
        raise TransformArgError(f"transform 'strftime': bad format {fmt!r}: {exc}") from exc

    def formatted(value: Any) -> str:
        return _to_datetime(value, "ms").astimezone(_UTC).strftime(fmt)

    return formatted


_MISSING = object()


def _lookup(args: Any) -> Transform:
    if not isinstance(args, Mapping) or "table" not in args:
        raise TransformArgError(
            "transform 'lookup' needs {table: {FROM: TO, ...}} and optionally default: VALUE "
            "or passthrough: true"
        )
    unknown = set(args) - {"table", "default", "passthrough"}
    if unknown:
        raise TransformArgError(f"transform 'lookup': unknown argument(s) {sorted(unknown)}")
    table = args["table"]
    if not isinstance(table, Mapping) or not table:
        raise TransformArgError("transform 'lookup': table must be a non-empty mapping")
    passthrough = args.get("passthrough", False)
    if not isinstance(passthrough, bool):
        raise TransformArgError("transform 'lookup': passthrough must be true or false")
    default = args.get("default", _MISSING)
    if passthrough and default is not _MISSING:
        raise TransformArgError("transform 'lookup': use either default or passthrough, not both")
    return _Lookup(table, default, passthrough)


class _Lookup:
    """A lookup table; ``outputs`` lets the compiler check them against the target's enum."""

    def __init__(self, table: Mapping[Any, Any], default: Any, passthrough: bool) -> None:
        # YAML reads `true`, `1` keys as non-strings while records carry enum symbols as
        # strings, so the string spelling of each key matches too.
        self.table = {**{_key_text(k): v for k, v in table.items()}, **table}
        self.default = default
        self.passthrough = passthrough
        self.outputs = set(table.values()) | ({default} if default is not _MISSING else set())

    def __call__(self, value: Any) -> Any:
        try:
            return self.table[value]
        except (KeyError, TypeError):  # TypeError: an unhashable value (a list, a dict)
            if self.passthrough:
                return value
            if self.default is _MISSING:
                raise ValueError(
                    f"value {value!r} is not in the lookup table and no default is given"
                ) from None
            return self.default


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _split(args: Any) -> Transform:
    if isinstance(args, str):
        args = {"separator": args}
    if not isinstance(args, Mapping) or set(args) - {"separator", "index"}:
        raise TransformArgError(
            "transform 'split' takes {separator: '-', index: 0} (index defaults to 0)"
        )
    sep = args.get("separator")
    index = args.get("index", 0)
    if not isinstance(sep, str) or not sep:
        raise TransformArgError("transform 'split': separator must be a non-empty string")
    if not isinstance(index, int) or isinstance(index, bool):
        raise TransformArgError("transform 'split': index must be an integer (-1 is the last)")

    def part(value: Any) -> str | None:
        pieces = _require_str(value, "split").split(sep)
        try:
            return pieces[index]
        except IndexError:
            return None  # no such part: the value is missing, so `default` applies

    return part


def _truncate(args: Any) -> Transform:
    length = _int_arg("truncate", args, "length", 0, 1, 1_000_000)
    return lambda v: _require_str(v, "truncate")[:length]


def _flatten(args: Any) -> Transform:
    sep = args.get("separator", "_") if isinstance(args, Mapping) else (args or "_")
    if not isinstance(sep, str):
        raise TransformArgError("transform 'flatten': separator must be a string")

    def flat(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise TypeError(f"flatten expects an object, got a {type(value).__name__}")
        out: dict[str, Any] = {}

        def walk(prefix: str, item: Any) -> None:
            if isinstance(item, Mapping):
                for key, child in item.items():
                    walk(f"{prefix}{sep}{key}" if prefix else str(key), child)
            else:
                out[prefix] = item

        walk("", value)
        return out

    return flat


TRANSFORMS: dict[str, Callable[[Any], Transform]] = {
    "upper": _upper,
    "lower": _lower,
    "trim": _trim,
    "string": _string,
    "number": _number,
    "integer": _integer,
    "round": _round,
    "minor_units": _minor_units,
    "iso8601": _iso8601,
    "date": _date,
    "strftime": _strftime,
    "lookup": _lookup,
    "split": _split,
    "truncate": _truncate,
    "flatten": _flatten,
}
"""Every transform by the name used in mapping files."""


def build_transform(name: str, args: Any) -> Transform:
    """Build the named transform; unknown name or bad arguments → TransformArgError."""
    try:
        factory = TRANSFORMS[name]
    except KeyError:
        raise TransformArgError(f"unknown transform {name!r}") from None
    return factory(args)
