"""Micro-benchmark of the decode stage: records/s on one core for both value formats.

    /work/venv/bin/python bench/decode_bench.py [--records 5000] [--seconds 2]

Not a test: it prints figures. Uses the sample envelope (connector.sample, schema v1) and
a registry-free Confluent decoder (the schema is cached after the first record anyway).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.decode import ConfluentAvroDecoder, SchemalessAvroDecoder, load_schema
from connector.sample import encode_confluent, encode_schemaless, sample_records

AVRO = Path(__file__).resolve().parents[1] / "avro"


class _CachedRegistry:
    """Stands in for RegistryClient after its cache is warm: no HTTP in the loop."""

    def __init__(self, schema: Any) -> None:
        self._schema = schema

    def schema(self, schema_id: int) -> Any:
        return self._schema


def _rate(decode: Callable[[bytes], Any], batch: list[bytes], seconds: float) -> float:
    """Best of a few rounds, in records/s (the machine is shared: best is least disturbed)."""
    rates = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for data in batch:
            decode(data)
        rates.append(len(batch) / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=2.0, help="per case")
    args = parser.parse_args()

    v1, v2 = load_schema(AVRO / "clickstream-v1.avsc"), load_schema(AVRO / "clickstream-v2.avsc")
    records = sample_records(args.records, guests=300, seed=7)
    bodies = encode_schemaless(records, v1)
    framed = encode_confluent(records, v1, 1)
    size = sum(map(len, bodies)) / len(bodies)
    print(f"{len(records)} sample records, {size:.0f} bytes per Avro body on average")

    cases = [
        ("schemaless", SchemalessAvroDecoder(v1).decode, bodies),
        ("confluent", ConfluentAvroDecoder(_CachedRegistry(v1)).decode, framed),  # type: ignore[arg-type]
        ("schemaless v1→v2 reader", SchemalessAvroDecoder(v1, v2).decode, bodies),
        ("confluent v1→v2 reader", ConfluentAvroDecoder(_CachedRegistry(v1), v2).decode, framed),  # type: ignore[arg-type]
    ]
    for name, decode, batch in cases:
        best, median = _rate(decode, batch, args.seconds)
        print(f"{name:26s} {best:>10,.0f} records/s best   {median:>10,.0f} median")


if __name__ == "__main__":
    main()
