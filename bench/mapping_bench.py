"""Micro-benchmark of the map stage: decoded record → validated, serialized JSON body.

    .venv/bin/python bench/mapping_bench.py [--records 20000] [--rounds 3]
    .venv/bin/python bench/mapping_bench.py \
        --mapping config/mappings.sitecore.yaml --dialect sitecore

Uses the example rules (config/mappings.example.yaml, or ``--mapping``), the real
``asyncapi`` dialect (or ``--dialect``) when ``connector.cdp`` is present (else the test dialect in
tests/unit/mapping_dialect.py, said in the output), and records from
``connector.sample_clickstream`` when present (else the six test records, repeated).
Prints records/s of ``Mapper.map`` (best of the rounds, one core), then the
cost of one plain path lookup with the fast path and with JMESPath.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jmespath  # noqa: E402

from connector.errors import MappingError  # noqa: E402
from connector.mapping import compile_mapping  # noqa: E402
from connector.mapping.paths import compile_path  # noqa: E402


def _dialect(name: str) -> tuple[Any, str]:
    try:
        from connector.cdp.dialect import get_dialect
    except ImportError:
        from tests.unit.mapping_dialect import flat_dialect

        return flat_dialect(), "test dialect (connector.cdp not present)"
    return get_dialect(name), f"{name} dialect"


def _records(n: int, version: int) -> tuple[list[dict[str, Any]], str]:
    try:
        from connector.sample_clickstream import sample_records
    except ImportError:
        from tests.unit.mapping_records import RECORDS

        base = list(RECORDS.values())
        return [base[i % len(base)] for i in range(n)], "the six test records, repeated"
    return sample_records(n, guests=300, seed=7, version=version), (
        f"connector.sample_clickstream.sample_records, schema v{version}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mapping", type=Path, default=ROOT / "config" / "mappings.example.yaml")
    parser.add_argument("--dialect", default="asyncapi", help="asyncapi or sitecore")
    parser.add_argument("--schema-version", type=int, default=3, help="sample records of v1 or v3")
    args = parser.parse_args()

    dialect, dialect_note = _dialect(args.dialect)
    records, records_note = _records(args.records, args.schema_version)
    mapper = compile_mapping(args.mapping, dialect)
    # Records the rules or the dialect refuse (e.g. non-ASCII sample emails) are timed apart:
    # their cost is building a MappingError, not a body.
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    events = 0
    for record in records:
        try:
            events += len(mapper.map(record, "clickstream").events)
            good.append(record)
        except MappingError:
            bad.append(record)

    def run_good() -> None:
        for record in good:
            mapper.map(record, "clickstream")

    def run_bad() -> None:
        for record in bad:
            with contextlib.suppress(MappingError):
                mapper.map(record, "clickstream")

    best = min(timeit.repeat(run_good, number=1, repeat=args.rounds))
    print(f"dialect: {dialect_note}; records: {records_note}")
    print(f"{len(good)} records → {events} events")
    print(
        f"map: {len(good) / best:,.0f} records/s  ({best / len(good) * 1e6:.1f} µs/record,"
        f" best of {args.rounds}, one core)"
    )
    if bad:
        worst = min(timeit.repeat(run_bad, number=1, repeat=args.rounds))
        print(
            f"{len(bad)} records fail mapping: {worst / len(bad) * 1e6:.1f} µs/record"
            " (MappingError built)"
        )

    sample = records[0]
    fast = compile_path("page.url")
    slow = jmespath.compile("page.url")
    loops = 200_000
    t_fast = min(timeit.repeat(lambda: fast(sample), number=loops, repeat=3)) / loops
    t_slow = min(timeit.repeat(lambda: slow.search(sample), number=loops, repeat=3)) / loops
    print(
        f"path 'page.url': fast path {t_fast * 1e9:.0f} ns, JMESPath {t_slow * 1e9:.0f} ns "
        f"({t_slow / t_fast:.0f}x)"
    )
    cond = "event_type == 'PAGE_VIEW'"
    fast_c, slow_c = compile_path(cond), jmespath.compile(cond)
    t_fast = min(timeit.repeat(lambda: fast_c(sample), number=loops, repeat=3)) / loops
    t_slow = min(timeit.repeat(lambda: slow_c.search(sample), number=loops, repeat=3)) / loops
    print(
        f"condition {cond!r}: fast path {t_fast * 1e9:.0f} ns, JMESPath {t_slow * 1e9:.0f} ns "
        f"({t_slow / t_fast:.0f}x)"
    )
    started = time.perf_counter()
    compile_mapping(args.mapping, dialect)
    print(f"compile {args.mapping.name}: {(time.perf_counter() - started) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
