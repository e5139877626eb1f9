"""CPU per record of the dispatcher alone: lanes, workers, gate, tracker, metrics.

    PYTHONPATH=. .venv/bin/python -m bench.dispatch_bench [--records 100000]
        [--guests 2000] [--in-flight 256] [--no-metrics] [--repeat 3]

A sender that answers at once (one ``await asyncio.sleep(0)``, so every request
yields to the loop as a real one does), one-event records over ``--guests`` keys,
the shipped delivery settings, uvloop. Prints the best of ``--repeat`` runs as
records/s and process CPU µs per record; the sender's own cost (~0.5 µs) is in it.
No Kafka, no HTTP: this isolates ``connector.delivery.dispatcher`` and the Prometheus observer.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from connector.cdp.client import Answer, Outcome
from connector.config import DeliverySettings
from connector.delivery.dispatcher import Dispatcher
from connector.mapping import MappedEvent
from connector.observability import Metrics
from connector.offsets.tracker import OffsetTracker
from connector.records import Failure, Work
from connector.run_state import RunState

OK = Answer(Outcome.DELIVERED, 201, "OK")


class _Sender:
    async def send(self, body: bytes) -> Answer:
        await asyncio.sleep(0)
        return OK


class _NoDeadLetters:
    def publish_failure(self, work: Work, failure: Failure, on_done: object) -> None:
        raise AssertionError(failure)


async def _run(records: int, guests: int, in_flight: int, metrics: bool) -> tuple[float, float]:
    tracker = OffsetTracker()
    tp = ("clicks", 0)
    epoch = tracker.assign(tp)
    settings = DeliverySettings(max_in_flight=in_flight)
    observer = Metrics() if metrics else None
    dispatcher = Dispatcher(_Sender(), _NoDeadLetters(), tracker, settings, RunState(), observer)
    works = []
    for offset in range(records):
        key = f"guest-{offset % guests}"
        tracker.add(tp, offset)
        event = MappedEvent("rule", "VIEW", key, b'{"type":"VIEW"}')
        works.append(Work(tp, offset, epoch, None, b"v", None, key, (event,)))
    cpu, wall = time.process_time(), time.perf_counter()
    dispatcher.start()
    for start in range(0, records, 500):  # the consumer thread's batches
        dispatcher.submit(works[start : start + 500])
        await asyncio.sleep(0)
    while tracker.pending:  # noqa: ASYNC110 - polling is what a bench may do
        await asyncio.sleep(0.001)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await dispatcher.stop()
    return records / wall, cpu / records * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--guests", type=int, default=2_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [
        uvloop.run(_run(args.records, args.guests, args.in_flight, not args.no_metrics))
        for _ in range(args.repeat)
    ]
    rate, cpu_us = max(runs)
    print(f"dispatch {'' if args.no_metrics else '+ metrics '}in flight {args.in_flight}: "
          f"{rate:,.0f} records/s, {cpu_us:.2f} µs CPU/record (best of {args.repeat})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
