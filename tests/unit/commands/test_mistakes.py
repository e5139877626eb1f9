"""The mistake table of docs/mapping.md, made and run as a user would.

Each row is one mistake made on the Divolte example (``docs/examples/divolte*``: a
public project's Avro schema, a mapping to the sitecore dialect, records and cases):
the files are copied, the mistake is written into them, and the CLI runs in their
folder (``main`` in-process, as ``cdp-connector …`` would). The exit code and the line
the tool prints are checked here, and the docs' table is exactly these rows (one test
keeps the two the same), so no row can say what the tool does not, and none is silent.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.cli import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
DOC = ROOT / "docs" / "mapping.md"
FILES = (
    "divolte-DefaultEventRecord.avsc",
    "divolte.mapping.yaml",
    "divolte.jsonl",
    "divolte-cases.yaml",
)
MAPPING = "divolte.mapping.yaml"
SCHEMA = "divolte-DefaultEventRecord.avsc"
POS = "shop.example.com,shop.example.de"

MAP = ("map", "--mapping", MAPPING, "--input", "divolte.jsonl", "--points-of-sale", POS)
MAP_SCHEMA = (*MAP, "--schema", SCHEMA)
MAP_CONFIG = ("map", "--config", "connector.yaml", "--input", "divolte.jsonl")

CONFIG = """\
topics: [{name: clicks, decoder: schemaless, schema: divolte-DefaultEventRecord.avsc}]
mapping: divolte.mapping.yaml
cdp:
  dialect: sitecore
  base_url: http://127.0.0.1:9
  region: null
  points_of_sale: [shop.example.com, shop.example.de]
"""
# A record from a host the tenant has no point of sale for (note the typo in it).
STRAY = {
    **json.loads((EXAMPLES / "divolte.jsonl").read_text().splitlines()[0]),
    "location": "https://shop.exampel.com/p/city-loafer",
}
EXT_51 = "".join(f"\n          a{i}: {{const: {i}}}" for i in range(51))
# The same schema before it had clientTimestamp (as divolte-schema 0.1 was).
OLD_SCHEMA = "divolte-0.1.avsc"
TWO_VERSIONS = f"""\
mapping: divolte.mapping.yaml
points_of_sale: [shop.example.com]
tests:
  - name: a click written with the old schema
    schema: {OLD_SCHEMA}
    record: {{partyId: p1, eventType: click, pageViewId: v1, timestamp: 1, firstInSession: true,
             detectedDuplicate: false, detectedCorruption: false, remoteHost: h,
             location: "https://shop.example.com/"}}
    expect: {{no_match: true}}
  - name: a click written with today's schema
    schema: {SCHEMA}
    record: {{partyId: p1, eventType: click, pageViewId: v1, timestamp: 1, clientTimestamp: 2,
             firstInSession: true, detectedDuplicate: false, detectedCorruption: false,
             remoteHost: h, location: "https://shop.example.com/"}}
    expect: {{events: [{{channel: WEB, type: CLICK, language: EN, currency: EUR,
                        page: "https://shop.example.com/", pos: shop.example.com,
                        browser_id: p1, requested_at: "1970-01-01T00:00:00.001Z",
                        ext: {{pageViewId: v1}}}}]}}
"""


@dataclass(frozen=True)
class Mistake:
    """One row: what was done wrong, how it was run, what the tool answers."""

    what: str  # the mistake, as the table says it (Markdown)
    edits: tuple[tuple[str, str, str], ...]  # (file, old, new); old "" appends new
    command: tuple[str, ...]
    code: int
    says: str  # the line (or part of it) the tool prints, as the table shows it

    @property
    def shown(self) -> str:
        """The command as the table shows it: ``map`` is ``MAP`` (the docs say so)."""
        command = self.command
        if command == MAP_SCHEMA:
            return "map --schema"
        if command == MAP:
            return "map"
        if command[:2] == ("map", "--config"):
            return "map --config"
        if command[0] == "map":
            return "map without --points-of-sale"
        return " ".join(command)


def _rule(old: str, new: str) -> tuple[str, str, str]:
    return (MAPPING, old, new)


MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "A path spelt as it is spelt elsewhere: `referrer: referrer` (Divolte keeps HTTP's "
        "`referer`)",
        (_rule("referrer: referer ", "referrer: referrer"),),
        MAP_SCHEMA,
        2,
        "divolte.mapping.yaml:31: rule 'page-view', VIEW, field 'referrer': path 'referrer': "
        "DefaultEventRecord has no field 'referrer' (did you mean 'referer'?)",
    ),
    Mistake(
        "A typo in a condition: `userAgentTyp == 'Robot'` (the robots would be mapped)",
        (_rule("userAgentType == 'Robot'", "userAgentTyp == 'Robot'"),),
        MAP_SCHEMA,
        2,
        "divolte.mapping.yaml:24: rule 'robots', field 'when': path \"userAgentTyp == 'Robot'\": "
        "DefaultEventRecord has no field 'userAgentTyp' (did you mean 'userAgentType'?)",
    ),
    Mistake(
        "A condition on a field only a later version of the schema has: `when: clientTimestamp`, "
        "records written before it was added, the newer schema in another case",
        (_rule("when: pageViewId", "when: clientTimestamp"), ("cases.yaml", "", TWO_VERSIONS)),
        ("test", "cases.yaml"),
        0,
        "warning: divolte.mapping.yaml:37: rule 'signal', field 'when': path 'clientTimestamp': "
        "DefaultEventRecord has no field 'clientTimestamp' (did you mean 'timestamp'?); "
        "divolte-DefaultEventRecord.avsc has it: null for records written with this version",
    ),
    Mistake(
        "No schema at hand, a typo in a path: `page: {coalesce: [locaton, …]}`",
        (_rule("[location, {const", "[locaton, {const"),),
        MAP,
        0,
        "warning: divolte.mapping.yaml:20: field 'page': path 'locaton': the input has no field "
        "'locaton' (did you mean 'location'?)",
    ),
    Mistake(
        "… and the line that says how far that check went",
        (_rule("[location, {const", "[locaton, {const"),),
        MAP,
        0,
        "note: record paths checked against the 3 input records only (no schema: --schema checks "
        "them against the records' schema)",
    ),
    Mistake(
        "No schema at hand, a typo in a condition: `userAgentTyp == 'Robot'`",
        (_rule("userAgentType == 'Robot'", "userAgentTyp == 'Robot'"),),
        MAP,
        0,
        "warning: divolte.mapping.yaml:24: rule 'robots', field 'when': path \"userAgentTyp == "
        "'Robot'\": the input has no field 'userAgentTyp' (did you mean 'userAgentType'?)",
    ),
    Mistake(
        "Epoch milliseconds into a date-time text without a transform: `requested_at: timestamp`",
        (
            _rule(
                "requested_at: {path: timestamp, transform: {iso8601: {unit: ms}}}",
                "requested_at: timestamp",
            ),
        ),
        MAP_SCHEMA,
        2,
        "divolte.mapping.yaml:21: field 'requested_at': 'timestamp' is integer: the field takes a "
        "string, UTC date-time, ISO 8601 ending in Z (or +00:00), e.g. 2026-11-02T08:15:30.123Z: "
        "add transform: {iso8601: {unit: ms}}",
    ),
    Mistake(
        "A constant in the wrong case: `language: {const: en}`",
        (_rule("language: {const: EN}", "language: {const: en}"),),
        MAP,
        2,
        "divolte.mapping.yaml:19: field 'language': 'en': expected uppercase ISO 639-1 code, "
        "e.g. EN — or add transform: upper",
    ),
    Mistake(
        "A constant of the wrong type: `ext: {tags: {const: [sale, new]}}`",
        (
            _rule(
                "firstInSession: firstInSession",
                "firstInSession: firstInSession\n          tags: {const: [sale, new]}",
            ),
        ),
        MAP,
        2,
        "divolte.mapping.yaml:34: rule 'page-view', VIEW, field 'ext.tags': ['sale', 'new']: "
        "expected true or false, an integer, a number or text",
    ),
    Mistake(
        "An `ext` attribute that is not camelCase: `first_in_session: firstInSession`",
        (_rule("firstInSession: firstInSession", "first_in_session: firstInSession"),),
        MAP,
        2,
        "divolte.mapping.yaml:33: rule 'page-view', VIEW, field 'ext.first_in_session': attribute "
        "name 'first_in_session': expected camelCase (a lowercase letter, then letters and "
        "digits), e.g. pageType — write firstInSession",
    ),
    Mistake(
        "More than 50 `ext` attributes",
        (
            _rule(
                "deviceCategory: userAgentDeviceCategory",
                "deviceCategory: userAgentDeviceCategory" + EXT_51,
            ),
        ),
        MAP,
        2,
        "divolte.mapping.yaml:33: rule 'page-view', VIEW, field 'ext': 54 attributes: at most 50 "
        "are allowed (put what belongs together in fewer attributes)",
    ),
    Mistake(
        "An attribute one indent short, beside `ext:` instead of under it",
        (
            _rule(
                "          deviceCategory: userAgentDeviceCategory",
                "        deviceCategory: userAgentDeviceCategory",
            ),
        ),
        MAP,
        2,
        "divolte.mapping.yaml:35: rule 'page-view', VIEW, field 'deviceCategory': ViewEvent has "
        "no field 'deviceCategory' (an ext attribute? put it under ext:)",
    ),
    Mistake(
        "A payload field written beside the rule's `name:`",
        (_rule("  - name: signal\n", "  - name: signal\n    page: location\n"),),
        MAP,
        2,
        "divolte.mapping.yaml:37: rule 'signal': unknown key 'page' (payload fields go under "
        "emit: fields:)",
    ),
    Mistake(
        "A point of sale the tenant does not have, as a constant: `pos: {const: shop.exmaple.com}`",
        (
            _rule(
                'pos: {path: location, transform: {split: {separator: "/", index: 2}}}',
                "pos: {const: shop.exmaple.com}",
            ),
        ),
        MAP,
        2,
        "divolte.mapping.yaml:17: field 'pos': 'shop.exmaple.com' is not in --points-of-sale "
        "(shop.example.com, shop.example.de) (did you mean 'shop.example.com'?)",
    ),
    Mistake(
        "A page on a host the tenant has no point of sale for (`pos` read from the record)",
        (("divolte.jsonl", "", json.dumps(STRAY) + "\n"),),
        MAP,
        1,
        "line 4: FAILED: rule 'page-view', VIEW: field 'pos': 'shop.exampel.com' is not in "
        "--points-of-sale (shop.example.com, shop.example.de) (did you mean 'shop.example.com'?); "
        "the CDP would accept the event and drop it",
    ),
    Mistake(
        "No points of sale given to `map` in the sitecore dialect",
        (),
        ("map", "--mapping", MAPPING, "--input", "divolte.jsonl"),
        0,
        "note: pos not checked against the tenant's points of sale (Sitecore drops events with "
        "an unknown one): give --points-of-sale a,b",
    ),
    Mistake(
        "A sitecore config without `cdp.points_of_sale`",
        (("connector.yaml", "  points_of_sale: [shop.example.com, shop.example.de]\n", ""),),
        MAP_CONFIG,
        2,
        "connector.yaml:3: cdp: points_of_sale is required in the sitecore dialect: list the "
        "tenant's points of sale (e.g. points_of_sale: [shop.example.com]); Sitecore accepts an "
        "event with any other pos and silently drops it",
    ),
    Mistake(
        "A lookup value the field does not take: `channel` by device, `Smartphone: MOBILE`",
        (
            _rule(
                "channel: {const: WEB}",
                "channel: {path: userAgentDeviceCategory, transform: {lookup: {table: "
                "{Personal computer: WEB, Smartphone: MOBILE}, default: OTHER}}}",
            ),
        ),
        MAP,
        2,
        "divolte.mapping.yaml:14: field 'channel': lookup value 'MOBILE' is not one of: "
        "AIRPORT_KIOSK, BRANCH, CALL_CENTER, EMAIL, GDS, KIOSK, MOBILE_APP, MOBILE_WEB, OFFLINE, "
        "OTA, OTHER, SMS, WEB (did you mean 'MOBILE_WEB'?)",
    ),
    Mistake(
        "A custom event name in lower case: `custom: wishlist`",
        (_rule("custom: {path: eventType, transform: upper}", "custom: wishlist"),),
        MAP,
        2,
        "divolte.mapping.yaml:40: rule 'signal', field 'custom': custom event name 'wishlist': "
        "expected uppercase (no lowercase letters), not a reserved type — or add transform: upper",
    ),
    Mistake(
        "An event type typo: `type: VEIW`",
        (_rule("type: VIEW", "type: VEIW"),),
        MAP,
        2,
        "divolte.mapping.yaml:29: rule 'page-view': unknown event type 'VEIW' (did you mean "
        "'VIEW'?)",
    ),
    Mistake(
        "An allowed value written as a bare word: `channel: WEB`",
        (_rule("channel: {const: WEB}", "channel: WEB"),),
        MAP,
        2,
        "divolte.mapping.yaml:14: field 'channel': 'WEB' is read as a path into the record; for "
        "the constant write {const: WEB}",
    ),
    Mistake(
        "A required field left out: no `page`",
        (_rule("    page: {coalesce: [location, {const: unknown}]}\n", ""),),
        MAP,
        2,
        "divolte.mapping.yaml:30: rule 'page-view', VIEW, field 'page': required field(s) page "
        "have no expression",
    ),
    Mistake(
        "The sitecore mapping run with a config that says `cdp.dialect: asyncapi`",
        (("connector.yaml", "dialect: sitecore", "dialect: asyncapi"),),
        MAP_CONFIG,
        2,
        "divolte.mapping.yaml:10: the mapping is written for the sitecore dialect (dialect: "
        "sitecore), but cdp.dialect is asyncapi: make the two agree",
    ),
    Mistake(
        "… and the same without `dialect:` in the mapping",
        (
            ("connector.yaml", "dialect: sitecore", "dialect: asyncapi"),
            _rule("dialect: sitecore\n", ""),
        ),
        MAP_CONFIG,
        2,
        "these rules compile for the sitecore dialect, not asyncapi (from cdp.dialect); a mapping "
        "file can say dialect: sitecore",
    ),
    Mistake(
        "A misspelt dialect: `dialect: sitecor`",
        (_rule("dialect: sitecore", "dialect: sitecor"),),
        MAP,
        2,
        "divolte.mapping.yaml:10: dialect: 'sitecor' is not a dialect (asyncapi, sitecore) (did "
        "you mean 'sitecore'?)",
    ),
    Mistake(
        "A test file not named `*.test.yaml`, run through its mapping",
        (),
        ("test", MAPPING),
        0,
        "5 tests, 0 failed",
    ),
    Mistake(
        "`test` given a mapping that no test file names",
        (("divolte-cases.yaml", "mapping: divolte.mapping.yaml", "mapping: other.yaml"),),
        ("test", MAPPING),
        2,
        "divolte.mapping.yaml: a mapping without tests: no divolte.mapping.test.yaml beside it, "
        "and no test file in its folder names it (a test file has mapping: and tests:)",
    ),
    Mistake(
        "A test case that expects no rule to match a record the `robots` rule skips",
        (("divolte-cases.yaml", "expect: {skipped: robots}", "expect: {no_match: true}"),),
        ("test", "divolte-cases.yaml"),
        1,
        "got:      skipped by 'robots'",
    ),
)


def _made(tmp_path: Path, mistake: Mistake) -> None:
    for name in FILES:
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "connector.yaml").write_text(CONFIG)
    schema = json.loads((EXAMPLES / SCHEMA).read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "clientTimestamp"]
    (tmp_path / OLD_SCHEMA).write_text(json.dumps(schema))
    for name, old, new in mistake.edits:
        path = tmp_path / name
        text = path.read_text() if path.exists() else ""
        if old:
            assert old in text, f"{name} has no {old!r}"
            text = text.replace(old, new, 1)
        else:
            text += new
        path.write_text(text)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.what[:60])
def test_the_tool_says_it(
    mistake: Mistake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _made(tmp_path, mistake)
    monkeypatch.chdir(tmp_path)
    code = main(list(mistake.command))
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert mistake.says in said, said
    assert code == mistake.code, said


def table() -> str:
    """The docs' table: one row per mistake."""
    rows = ["| mistake | run | exit | what the tool says |", "|---|---|---|---|"]
    for m in MISTAKES:
        says = m.says.replace("|", "\\|")
        rows.append(f"| {m.what} | `{m.shown}` | {m.code} | `{says}` |")
    return "\n".join(rows) + "\n"


def test_the_docs_table_is_these_rows() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- mistakes:[^\n]*-->\n\n(.*?)<!-- end mistakes -->", text, re.S)
    assert found is not None, "docs/mapping.md has no mistake table"
    assert found.group(1) == table() + "\n", (
        "regenerate: python -m tests.unit.commands.test_mistakes"
    )


def test_the_shipped_divolte_example_maps_and_passes_its_cases(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(EXAMPLES)
    assert main([*MAP_SCHEMA]) == 0
    assert "3 records: 2 mapped (2 events), 1 skipped, 0 failed" in capsys.readouterr().out
    assert main(["test", "divolte-cases.yaml"]) == 0


if __name__ == "__main__":  # print the table for docs/mapping.md
    print(table())
