"""Finished offsets above the commit point survive the trip through commit metadata."""

from __future__ import annotations

import base64
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.kafka.commits import commit_metadata
from connector.offsets import metadata as om

PREFIX = commit_metadata("pod-7-1234")
COMMIT = 1_000


def _kind(text: str) -> str:
    field = text.rsplit(" ", 1)[-1].removeprefix(om.FIELD)
    return chr(base64.b64decode(field + "=" * (-len(field) % 4))[1])


@given(st.sets(st.integers(1, 5_000), max_size=400))
def test_scattered_finished_sets_round_trip(relative: set[int]) -> None:
    finished = sorted(COMMIT + r for r in relative)
    encoded = om.encode(PREFIX, COMMIT, finished)
    assert encoded.complete
    assert encoded.text.startswith(PREFIX)
    assert om.decode(encoded.text, COMMIT) == tuple(finished)


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 3_000)), max_size=12))
def test_finished_runs_round_trip(gaps_and_runs: list[tuple[int, int]]) -> None:
    finished: list[int] = []
    position = COMMIT
    for gap, run in gaps_and_runs:
        position += gap
        finished.extend(range(position, position + run))
        position += run
    encoded = om.encode(PREFIX, COMMIT, finished)
    assert encoded.complete
    assert om.decode(encoded.text, COMMIT) == tuple(finished)


def test_the_smaller_encoding_is_chosen() -> None:
    long_run = list(range(COMMIT + 1, COMMIT + 10_001))
    every_other = list(range(COMMIT + 1, COMMIT + 2_001, 2))
    assert _kind(om.encode(PREFIX, COMMIT, long_run).text) == "R"
    assert _kind(om.encode(PREFIX, COMMIT, every_other).text) == "B"
    assert len(om.encode(PREFIX, COMMIT, long_run).text) < len(PREFIX) + 20


def test_nothing_finished_is_the_prefix_alone() -> None:
    assert om.encode(PREFIX, COMMIT, []) == om.Encoded(PREFIX, True)
    assert om.decode(PREFIX, COMMIT) == ()


def test_any_set_within_capacity_fits_whole() -> None:
    span = om.capacity(PREFIX)
    assert span > 20_000  # 4096 bytes hold a bitmap of more than 20,000 offsets
    worst = list(range(COMMIT + 1, COMMIT + span, 2))  # scattered over the whole span
    encoded = om.encode(PREFIX, COMMIT, worst)
    assert encoded.complete
    assert len(encoded.text.encode()) <= om.MAX_METADATA_BYTES
    assert om.decode(encoded.text, COMMIT) == tuple(worst)


def test_a_set_that_does_not_fit_is_cut_to_its_lower_offsets() -> None:
    scattered = list(range(COMMIT + 1, COMMIT + 100_000, 3))
    encoded = om.encode(PREFIX, COMMIT, scattered, max_bytes=1024)
    assert not encoded.complete
    assert len(encoded.text.encode()) <= 1024
    kept = om.decode(encoded.text, COMMIT)
    assert kept
    assert kept == tuple(scattered[: len(kept)])  # a prefix of the set: never a wrong claim


def test_run_ahead_limit_leaves_room_for_one_more_batch() -> None:
    span = om.capacity(PREFIX)
    assert om.run_ahead_limit(PREFIX, 10**9, batch=500) == span - 500
    assert om.run_ahead_limit(PREFIX, 5_000, batch=500) == 5_000
    assert om.run_ahead_limit("x" * 5_000, 5_000, batch=500) == 1
    assert om.capacity("x" * 5_000) == 0


def test_no_committed_offset_means_nothing_known_and_is_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="connector.offsets.metadata"):
        assert om.decode(om.encode(PREFIX, 0, [3]).text, -1001) == ()
    assert caplog.records == []


def test_offsets_below_the_commit_are_left_out() -> None:
    encoded = om.encode(PREFIX, COMMIT, [COMMIT - 5, COMMIT + 3])
    assert om.decode(encoded.text, COMMIT) == (COMMIT + 3,)


def _field(*raw: int, version: int = 1, kind: str = "R", written_for: int = COMMIT) -> str:
    offset = bytearray()
    om._varint(offset, written_for)
    data = bytes((version, ord(kind))) + offset + bytes(raw)
    return f"{PREFIX} done:{base64.b64encode(data).decode()}"


def test_a_hand_built_field_reads() -> None:
    """The damaged fields below differ from this one only where their comment says."""
    assert om.decode(_field(1, 1), COMMIT) == (COMMIT + 1,)
    assert om.decode(_field(1, 1, kind="B"), COMMIT) == (COMMIT, COMMIT + 8)


@pytest.mark.parametrize(
    ("metadata", "warns"),
    [
        (None, False),
        ("", False),
        ("cdp-connector/0.0.9 old-pod-1", False),  # ours, from before the field existed
        ("some-other-tool v3", True),
        (f"{PREFIX} done:@@not base64@@", True),
        (f"{PREFIX} done:", True),
        (_field(1, 1, version=9), True),
        (_field(1, 1, kind="Z"), True),
        (_field(1), True),  # half a run
        (_field(1, 0x81), True),  # a varint cut short
        (_field(0, 0xFF, 0xFF, 0x7F), True),  # two million finished: no real set
        (_field(1, 1, written_for=COMMIT - 7), True),  # carried to another offset
        (f"{PREFIX} done:{base64.b64encode(bytes((1, 82, 0x80, 0x80))).decode()}", True),
    ],
)
def test_unreadable_or_foreign_metadata_means_nothing_known(
    metadata: str | None, warns: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="connector.offsets.metadata"):
        assert om.decode(metadata, COMMIT) == ()
    assert bool(caplog.records) == warns


@given(st.text(max_size=60))
def test_decode_never_raises_on_garbage(garbage: str) -> None:
    om.decode(f"{PREFIX} done:{garbage}", COMMIT)
    om.decode(garbage, COMMIT)
