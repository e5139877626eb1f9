"""The studio's work without a browser: preview, problems on lines, saving, the token."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import fastavro
import pytest
from aiohttp.test_utils import TestClient, TestServer

from connector.commands import mapping_tests
from connector.commands.dry_run import as_decoded
from connector.commands.studio import make_app, session_from_args
from connector.commands.studio_sample import to_json
from connector.commands.studio_session import Conflict, StudioSession, _warning, split_problems
from connector.config import load_config
from connector.decode.schemas import load_schema
from connector.errors import ConfigError
from connector.pipeline import build_mapper
from connector.sample_clickstream import sample_records, writable
from connector.settle.record_paths import check_record_paths
from tests.unit.commands.studio_files import (
    EXAMPLE,
    GOOD_LINE,
    ROOT,
    TYPO_LINE,
    line_of,
    workspace,
)


@pytest.fixture
def session(tmp_path: Path) -> StudioSession:
    config, _, records = workspace(tmp_path)
    lines = records.read_text(encoding="utf-8").splitlines()
    return StudioSession(load_config(config), "clickstream", lines)


def test_preview_shows_each_records_rule_and_bodies(session: StudioSession) -> None:
    text = session.load()["text"]
    answer = session.preview(text, session.records)
    assert answer["problems"] == []
    first = answer["results"][0]
    assert first["rule"] == "page-view"
    body = json.loads(first["events"][0]["body"])
    assert body["type"] == "VIEW"
    assert body["session_id"] == "s-91a2"
    assert "client_key" not in first["events"][0]["body"]
    assert [kind["type"] for kind in answer["fields"]][:2] == ["VIEW", "ADD"]
    view = {row["path"]: row["required"] for row in answer["fields"][0]["fields"]}
    assert view["browser_id"] is True


def test_a_path_typo_is_marked_on_its_line_with_the_suggestion(session: StudioSession) -> None:
    text = session.load()["text"].replace(GOOD_LINE, TYPO_LINE)
    answer = session.preview(text, session.records)
    assert answer["results"] == []
    (problem,) = answer["problems"]
    assert problem["line"] == line_of(text, TYPO_LINE)
    assert "sesion_id" in problem["message"]
    assert "did you mean 'session_id'?" in problem["message"]


def test_compile_problems_are_the_compilers_messages_by_line(session: StudioSession) -> None:
    text = session.load()["text"].replace("type: VIEW", "type: VEIW")
    problems = session.preview(text, [])["problems"]
    assert any(
        p["line"] == line_of(text, "      type: VEIW")
        and "unknown event type 'VEIW'" in p["message"]
        for p in problems
    )
    broken = session.preview("rules: [", [])["problems"]
    assert broken[0]["line"] == 1 and "invalid YAML" in broken[0]["message"]


def test_split_problems_keeps_lines_it_cannot_place() -> None:
    text = "2 problems in mapping rules:\n  m.yaml:3: bad\n  m.yaml: the mapping file is empty"
    assert split_problems(text, "m.yaml") == [
        {"line": 3, "message": "bad"},
        {"line": None, "message": "the mapping file is empty"},
    ]


def test_a_record_that_fits_no_rule_or_schema_shows_the_dead_letter_reason(
    session: StudioSession,
) -> None:
    text = session.load()["text"].replace("{event_type: PAGE_VIEW}", "{event_type: VIEWED}")
    record = json.loads(session.records[0])
    odd = json.dumps({**record, "event_type": "SOMETHING_ELSE"})
    answer = session.preview(text, [session.records[0], odd, "{not json"])
    no_rule, misfit, not_json = answer["results"]
    assert "no rule matched" in no_rule["dead_letter"]
    assert "'page-view'" in no_rule["dead_letter"]  # the rules tried
    assert "does not fit the schema: 'SOMETHING_ELSE'" in misfit["dead_letter"]
    assert "not valid JSON" in not_json["dead_letter"]


def test_save_mapping_refuses_a_file_changed_on_disk(session: StudioSession) -> None:
    loaded = session.load()
    edited = loaded["text"] + "# edited in the studio\n"
    new_digest = session.save_mapping(edited, loaded["digest"])
    assert session.mapping_path.read_text(encoding="utf-8") == edited
    session.mapping_path.write_text(edited + "# changed by someone else\n", encoding="utf-8")
    with pytest.raises(Conflict, match="changed on disk"):
        session.save_mapping(edited + "# mine\n", new_digest)
    assert session.mapping_path.read_text(encoding="utf-8").endswith("someone else\n")


def test_saved_test_cases_pass_cdp_connector_test(session: StudioSession) -> None:
    text = session.load()["text"]
    first = session.save_test_case(text, session.records[0], "a page view")
    assert first["expect"]["events"][0]["type"] == "VIEW"
    test_file = Path(first["test_file"])
    test_file.write_text(
        "# kept: a comment\n" + test_file.read_text(encoding="utf-8"), encoding="utf-8"
    )
    session.save_test_case(text, session.records[1], "added to the cart")
    assert test_file.read_text(encoding="utf-8").startswith("# kept: a comment\n")
    out = io.StringIO()
    assert mapping_tests.run_file(test_file, out) == (2, 2), out.getvalue()


async def test_requests_without_the_token_are_refused(session: StudioSession) -> None:
    async with TestClient(TestServer(make_app(session, "s3cret"))) as client:
        for path in ("/", "/api/state", "/static/studio.js", "/?token=wrong"):
            response = await client.get(path)
            assert response.status == 403, path
        refused = await client.post("/api/save-mapping", json={"text": "", "digest": ""})
        assert refused.status == 403
        page = await client.get("/?token=s3cret")
        assert page.status == 200
        assert "s3cret" in await page.text()
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        state = await client.get("/api/state", headers={"X-Studio-Token": "s3cret"})
        assert (await state.json())["topic"] == "clickstream"


def test_decoded_records_written_as_json_read_back_equal() -> None:
    schema = load_schema(ROOT / "avro" / "clickstream-v1.avsc")
    for record in sample_records(60, guests=10, seed=5):  # every event kind, logical types
        text = json.dumps(to_json(schema, record))
        assert as_decoded(json.loads(text), schema) == record


def test_an_avro_file_input_is_shown_as_json_and_decoded_with_its_own_schema(
    tmp_path: Path,
) -> None:
    config, _, _ = workspace(tmp_path)
    schema = load_schema(ROOT / "avro" / "clickstream-v1.avsc")
    records = sample_records(5, guests=2, seed=8)
    avro = tmp_path / "records.avro"
    with avro.open("wb") as out:
        fastavro.writer(out, schema, [writable(r) for r in records])
    args = argparse.Namespace(config=config, input=avro, topic=None, count=20)

    session = session_from_args(args)

    assert [json.loads(t)["event_id"] for t in session.records] == [r["event_id"] for r in records]
    assert session.load()["schema"].startswith("the schema of ")
    answer = session.preview(session.load()["text"], session.records)
    assert len(answer["results"]) == 5
    assert all("events" in r or "skipped_by" in r for r in answer["results"])


def test_a_topic_record_that_cannot_be_decoded_shows_why(session: StudioSession) -> None:
    text = session.load()["text"]
    why = "the topic's record cannot be decoded: magic byte is 7"
    (result,) = session.preview(text, [json.dumps({"-studio": why})])["results"]
    assert result == {"dead_letter": f"decode: {why}"}


def test_saving_a_test_case_says_when_the_mapping_is_unsaved(session: StudioSession) -> None:
    text = session.load()["text"] + "# not saved yet\n"
    answer = session.save_test_case(text, session.records[0], "a page view")
    assert "unsaved changes" in answer["note"]


SITECORE = ROOT / "config" / "mappings.sitecore.yaml"
# (mapping to start from, dialect, the edit that makes the mistake)
MISTAKES = {
    "a record path typo": (EXAMPLE, "asyncapi", (GOOD_LINE, TYPO_LINE)),
    "an unknown event type": (EXAMPLE, "asyncapi", ("type: VIEW", "type: VEIW")),
    "a rule for a topic not configured": (
        EXAMPLE,
        "asyncapi",
        ("    when: {event_type: SEARCH}", "    topics: [clicks]\n    when: {event_type: SEARCH}"),
    ),
    # Sitecore drops an event whose pos the tenant lacks after answering 201: what run
    # refuses at start (the points of sale it is given) the studio must show too.
    "a point of sale the tenant does not have": (
        SITECORE,
        "sitecore",
        ("    pos: site", "    pos: {const: shop.exmaple.com}"),
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_the_studio_reports_what_run_reports_at_start(tmp_path: Path, mistake: str) -> None:
    """The page shows whatever run refuses to start with: the same compile, the same options."""
    source, dialect, (good, bad) = MISTAKES[mistake]
    config, mapping, _ = workspace(tmp_path)
    text = source.read_text(encoding="utf-8")
    assert good in text
    mapping.write_text(text.replace(good, bad, 1), encoding="utf-8")
    config.write_text(
        config.read_text(encoding="utf-8")
        + f"cdp: {{dialect: {dialect}, points_of_sale: [shop.example.com]}}\n",
        encoding="utf-8",
    )
    settings = load_config(config)
    try:
        check_record_paths(settings, build_mapper(settings))
        run: list[dict[str, object]] = []
    except ConfigError as exc:
        run = split_problems(str(exc), str(mapping))

    session = StudioSession(settings, "clickstream", [])
    studio = session.preview(mapping.read_text(encoding="utf-8"), [])["problems"]

    assert studio == run
    if dialect == "asyncapi":
        assert studio, "the mistake is one run refuses"


def test_a_when_typo_is_an_error_placed_on_its_line(session: StudioSession) -> None:
    # A when: path that no version of the schema has stops run (issue 27), so the page
    # marks it as an error on its line, with the suggestion.
    typo = "    when: {event_typ: PAGE_VIEW}"
    text = session.load()["text"].replace("    when: {event_type: PAGE_VIEW}", typo)
    answer = session.preview(text, [])
    (problem,) = answer["problems"]
    assert problem["line"] == line_of(text, typo)
    assert problem["message"].startswith("rule 'page-view', field 'when'")
    assert "(did you mean 'event_type'?)" in problem["message"]


def test_a_warning_is_placed_on_the_line_it_names() -> None:
    text = "topic clickstream: m.yaml:12: rule 'v', field 'ext.note': only in version 3"
    assert _warning(text, "m.yaml") == {
        "line": 12,
        "message": "topic clickstream: rule 'v', field 'ext.note': only in version 3",
    }
    assert _warning("no subject yet", "m.yaml") == {"line": None, "message": "no subject yet"}
