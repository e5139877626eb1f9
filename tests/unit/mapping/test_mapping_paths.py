"""Fast-path expressions agree with JMESPath, and literals fold into constants."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jmespath.exceptions import JMESPathError

from connector.mapping import paths

KEYS = st.sampled_from(["a", "b", "c", "event_type", "x_1"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False), st.text(max_size=3)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=8,
)
DOCS = st.dictionaries(KEYS, VALUES, max_size=5)
DOTTED = st.lists(KEYS, min_size=1, max_size=5).map(".".join)
LITERALS = st.sampled_from(["'X'", "'a'", "`0`", "`1`", "`true`", "`false`", "`null`", "`2.5`"])


@st.composite
def expressions(draw: st.DrawFn) -> str:
    """Expressions in the shapes the fast path compiles."""
    kind = draw(st.sampled_from(["path", "eq", "ne", "and", "or", "not", "func"]))
    left, right = draw(DOTTED), draw(DOTTED)
    if kind == "path":
        return left
    if kind in ("eq", "ne"):
        op = "==" if kind == "eq" else "!="
        return f"{left} {op} {draw(st.one_of(LITERALS, DOTTED))}"
    if kind == "and":
        return f"{left} && {right}"
    if kind == "or":
        return f"{left} || {right}"
    if kind == "not":
        return f"!{left}"
    name = draw(st.sampled_from(["contains", "starts_with", "ends_with"]))
    return f"{name}({left}, {draw(st.one_of(LITERALS, DOTTED))})"


def _outcome(fn: Any, doc: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(doc)
    except (JMESPathError, TypeError) as exc:
        return "error", type(exc).__name__ if not isinstance(exc, JMESPathError) else "jmespath"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, path=DOTTED)
def test_fast_dotted_path_agrees_with_jmespath(doc: dict[str, Any], path: str) -> None:
    assert paths.compile_path(path)(doc) == jmespath.search(path, doc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, expression=expressions())
def test_fast_expressions_agree_with_jmespath(doc: dict[str, Any], expression: str) -> None:
    fast = paths.compile_path(expression)
    slow = paths.compile_path(expression, fast=False)
    assert fast is not slow
    got, want = _outcome(fast, doc), _outcome(slow, doc)
    assert got == want
    if got[0] == "ok":
        assert type(got[1]) is type(want[1])


@st.composite
def shaped(draw: st.DrawFn, depth: int = 2) -> str:
    """List and object shapes (multi-select, projections, filters, flatten) around others."""
    inner = expressions() if depth == 0 else st.one_of(expressions(), shaped(depth - 1))
    kind = draw(st.sampled_from(["list", "dict", "project", "filter", "flatten", "flat-list"]))
    a, b, left, right = draw(inner), draw(inner), draw(DOTTED), draw(DOTTED)
    if kind == "list":
        return f"[{a}, {b}]"
    if kind == "dict":
        return f"{{x: {a}, y: {b}}}"
    if kind == "project":
        return f"{left}[*].{right}"
    if kind == "filter":
        return f"{left}[?{a}].{right}" if draw(st.booleans()) else f"[{a}, {b}][?{right}]"
    if kind == "flatten":
        return f"{left}[].{right}" if draw(st.booleans()) else f"{left}[]"
    return f"[{a}, {b}][]"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS, expression=shaped())
def test_fast_list_and_object_shapes_agree_with_jmespath(
    doc: dict[str, Any], expression: str
) -> None:
    fast = paths.compile_path(expression)
    assert "search" not in repr(fast)  # compiled to closures, not the visitor
    got, want = _outcome(fast, doc), _outcome(paths.compile_path(expression, fast=False), doc)
    assert got == want
    if got[0] == "ok":
        assert type(got[1]) is type(want[1])


def test_the_sitecore_identifiers_expression_is_fast_and_exact() -> None:
    expression = (
        "[[{id: payload.email, provider: 'email'}, {id: user_id, provider: 'shop_customer'}]"
        "[?id], payload.identifiers][]"
    )
    fast = paths.compile_path(expression)
    assert "search" not in repr(fast)
    for doc in (
        {"payload": {"email": "a@b.c", "identifiers": [{"id": "x", "provider": "crm"}]}},
        {"user_id": "u1", "payload": {"email": None, "identifiers": []}},
        {"payload": None},
    ):
        assert fast(doc) == jmespath.search(expression, doc)


def test_plain_paths_use_the_fast_path() -> None:
    assert "search" not in repr(paths.compile_path("page.url"))
    assert "search" in repr(paths.compile_path("payload.items[0].sku"))


def test_non_fast_expressions_still_work() -> None:
    doc = {"payload": {"items": [{"sku": "A"}, {"sku": "B"}]}}
    assert paths.compile_path("payload.items[].sku")(doc) == ["A", "B"]
    assert paths.compile_path("length(payload.items)")(doc) == 2


def test_literals_are_recognised() -> None:
    assert paths.literal_value("'WEB'") == "WEB"
    assert paths.literal_value('`{"a": 1}`') == {"a": 1}
    assert not paths.is_literal(paths.literal_value("page.url"))


def test_syntax_error_is_a_path_syntax_error() -> None:
    with pytest.raises(paths.PathSyntaxError):
        paths.compile_path("page..url")


def test_jmespath_falsiness() -> None:
    assert all(paths.is_falsy(v) for v in (None, False, "", [], {}))
    assert not any(paths.is_falsy(v) for v in (0, 0.0, "x", [0], {"a": None}, True))
