"""The generated object builder keeps the field loop's semantics, field by field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connector.mapping.expressions import Compiled, FieldFailure
from connector.mapping.objects import object_builder


def _path(*keys: str, from_root: bool = False) -> Compiled:
    def slow(scope: object, root: object) -> object:
        raise AssertionError("a plain path of up to three keys is written out, not called")

    return Compiled(slow, ("$." if from_root else "") + ".".join(keys), path=keys,
                    from_root=from_root)  # fmt: skip


def _const(value: object) -> Compiled:
    return Compiled(lambda scope, root: value, f"constant {value!r}", value, True)


def test_inline_paths_constants_and_calls_in_order() -> None:
    build = object_builder((
        ("c", _const("WEB"), True),
        ("a", _path("x"), False),
        ("b", _path("x", "y", "z"), False),
        ("r", _path("top", from_root=True), False),
        ("f", Compiled(lambda scope, root: scope["n"] + 1, "n + 1"), True),
        ("weird 'key'", _path("x"), False),
    ))  # fmt: skip
    scope = {"x": {"y": {"z": 3}}, "n": 1}
    out = build(scope, {"top": "T"})
    assert out == {"c": "WEB", "a": {"y": {"z": 3}}, "b": 3, "r": "T", "f": 2,
                   "weird 'key'": {"y": {"z": 3}}}  # fmt: skip
    assert list(out) == ["c", "a", "b", "r", "f", "weird 'key'"]


def test_nulls_and_non_objects_on_the_way_leave_optional_fields_out() -> None:
    build = object_builder((("b", _path("x", "y"), False), ("s", _path("s", "t"), False)))
    assert build({"x": None, "s": "text"}, {}) == {}
    assert build("not a dict", {}) == {}


def test_a_missing_required_field_names_it_with_a_hint() -> None:
    build = object_builder((("email", _path("emial"), True),))
    with pytest.raises(FieldFailure) as failure:
        build({"email": "a@b"}, {})
    assert failure.value.path == ["email"]
    assert (
        failure.value.message == "required, but emial is missing or null (the record has 'email')"
    )


def test_runtime_errors_and_inner_failures_get_the_key() -> None:
    def inner(scope: object, root: object) -> object:
        raise FieldFailure(["deep"], "bad")

    def broken(scope: object, root: object) -> object:
        raise ValueError("no")

    with pytest.raises(FieldFailure) as failure:
        object_builder((("o", Compiled(inner, "object"), False),))({}, {})
    assert failure.value.path == ["o", "deep"]
    with pytest.raises(FieldFailure) as failure:
        object_builder((("v", Compiled(broken, "f(x)"), False),))({}, {})
    assert (failure.value.path, failure.value.message) == (["v"], "f(x): no")
    with pytest.raises(FieldFailure) as failure:  # json_safe refuses NaN on the inline path
        object_builder((("n", _path("x"), False),))({"x": Decimal("NaN")}, {})
    assert failure.value.path == ["n"]
    assert failure.value.message == "x: NaN is not a finite number"


def test_pipelines_are_written_out_with_the_same_default_and_errors() -> None:
    def upper(value: object) -> object:
        if not isinstance(value, str):
            raise TypeError("upper expects a string")
        return value.upper()

    def first(value: object) -> object:
        return str(value).split("-")[0] or None  # "" -> null -> the default

    def piped(*steps: object, default: object = None) -> Compiled:
        source = _path("p", "q")
        return Compiled(source.evaluate, source.source, pipe=(source, steps, default))

    build = object_builder((
        ("lang", piped(first, upper, default="EN"), True),
        ("plain", piped(default="none"), False),
        ("opt", piped(upper), False),
    ))  # fmt: skip
    assert build({"p": {"q": "en-GB"}}, {}) == {"lang": "EN", "plain": "en-GB", "opt": "EN-GB"}
    assert build({"p": {"q": "-x"}}, {}) == {"lang": "EN", "plain": "-x", "opt": "-X"}
    assert build({"p": None}, {}) == {"lang": "EN", "plain": "none"}
    with pytest.raises(FieldFailure) as failure:
        build({"p": {"q": 7}}, {})  # lang: first(7) is "7"; opt: upper(7) fails
    assert (failure.value.path, failure.value.message) == (["opt"], "p.q: upper expects a string")
