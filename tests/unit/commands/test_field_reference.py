"""``cdp-connector fields`` and docs/mapping.md: one reference, generated from the models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.cdp.dialect import get_dialect
from connector.cli import main
from connector.commands import field_reference as reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "mapping.md"


@pytest.mark.parametrize("dialect", ["asyncapi", "sitecore"])
def test_the_docs_carry_the_generated_tables(dialect: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- fields {dialect}:[^\n]*-->\n\n(.*?)<!-- end fields {dialect} -->", text, re.S
    )
    assert match is not None, f"docs/mapping.md has no generated table for {dialect}"
    assert match.group(1) == reference.markdown(get_dialect(dialect)), (
        f"regenerate: cdp-connector fields --dialect {dialect} --format markdown"
    )


def test_nested_fields_required_types_and_allowed_values_are_listed() -> None:
    rows = {
        r.path: r for r in reference.event_rows(get_dialect("sitecore").models["ORDER_CHECKOUT"])
    }
    assert rows["order"].required and rows["order.referenceId"].required
    assert not rows["order.cardType"].required
    assert rows["order.price"].type == "number, >= 0"
    assert rows["order.orderItems[].quantity"].type.startswith("integer")
    assert "WEB" in rows["channel"].allowed.split(", ")


def test_fields_prints_one_type_of_a_dialect(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fields", "--dialect", "asyncapi", "order_checkout"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ORDER_CHECKOUT (asyncapi)\n")
    assert re.search(r"items\[\]\.quantity\s+required\s+integer, >= 1", out)
    assert re.search(r"payment_type\s+optional\s+enum\s+\[CREDIT_CARD, DEBIT_CARD", out)
    assert "VIEW (asyncapi)" not in out


def test_fields_of_an_unknown_type_suggests_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fields", "VEIW"]) == 2
    assert "no event type 'VEIW' (did you mean 'VIEW'?)" in capsys.readouterr().err


def test_fields_markdown_is_the_docs_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fields", "--dialect", "sitecore", "--format", "markdown", "SEARCH"]) == 0
    assert capsys.readouterr().out == reference.markdown(get_dialect("sitecore"), "SEARCH")
