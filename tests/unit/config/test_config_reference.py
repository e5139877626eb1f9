"""docs/configuration.md's field table is the one the models generate: docs cannot drift."""

from __future__ import annotations

from scripts.config_reference import DOC, fields, table, with_table


def test_the_documented_table_is_the_generated_one() -> None:
    doc = DOC.read_text()
    assert with_table(doc) == doc, (
        "docs/configuration.md's field table differs from the models in connector/config/: "
        "run scripts/config-reference --write"
    )


def test_every_field_has_a_description() -> None:
    missing = [f.path for f in fields() if not (f.info.description or "").strip()]
    assert missing == []


def test_the_table_covers_nested_sections_lists_and_aliases() -> None:
    paths = {f.path for f in fields()}
    assert {"topics[]", "topics[].schema", "delivery.retry.max_attempts",
            "cdp.browser_ids.topic", "schema_registry.url", "mapping"} <= paths  # fmt: skip
    assert "source" not in paths  # internal, not a setting
    rows = table().splitlines()
    assert "| `delivery.max_in_flight` | integer, ≥ 1, ≤ 10000 | `256` |" in "\n".join(rows)
    assert "| `cdp.region` | `eu`, `us`, `ap`, `jp` | `eu` |" in "\n".join(rows)
