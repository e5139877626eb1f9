"""The naive baseline: what a user writes first, for the side-by-side in bench/e2e.py.

    python -m bench.naive --bootstrap B --topic T --group G --registry URL --sink URL
                          [--seconds 15] [--records N]

One record at a time: poll, decode, map (the connector's own decoder and rules, so
the per-record work is the same), POST each event synchronously over one
keep-alive ``http.client`` connection, commit that record's offset synchronously.
Runs until ``--records`` are done or ``--seconds`` pass; prints one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import time
from urllib.parse import urlsplit

from confluent_kafka import Consumer

from bench.e2e_parts import API_TOKEN, CLIENT_KEY
from connector.cdp.dialect import get_dialect
from connector.cdp.transport import EVENT_PATH
from connector.decode.decoders import ConfluentAvroDecoder
from connector.decode.registry import RegistryClient
from connector.mapping import compile_mapping
from scripts.services.common import REPO_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("--bootstrap", "--topic", "--group", "--registry", "--sink"):
        parser.add_argument(name, required=True)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--records", type=int, default=10**12)
    args = parser.parse_args()

    decoder = ConfluentAvroDecoder(RegistryClient(args.registry))
    mapper = compile_mapping(REPO_ROOT / "config" / "mappings.example.yaml",
                             get_dialect("asyncapi"))  # fmt: skip
    sink = urlsplit(args.sink)
    conn = http.client.HTTPConnection(sink.hostname or "127.0.0.1", sink.port, timeout=10)
    auth = "Basic " + base64.b64encode(f"{CLIENT_KEY}:{API_TOKEN}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([args.topic])

    records = events = failed = 0
    first: float | None = None
    started = time.monotonic()
    while records < args.records and time.monotonic() - started < args.seconds + 30:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() is not None:
            continue
        first = first or time.monotonic()
        try:
            result = mapper.map(decoder.decode(msg.value() or b""), args.topic)
        except Exception:  # noqa: BLE001 - a naive loop logs and moves on
            failed += 1
        else:
            for event in result.events:
                conn.request("POST", EVENT_PATH, body=event.body, headers=headers)
                response = conn.getresponse()
                response.read()
                events += 1
        consumer.commit(message=msg, asynchronous=False)
        records += 1
        if time.monotonic() - first >= args.seconds:
            break
    elapsed = time.monotonic() - (first or started)
    consumer.close()
    print(json.dumps({"records": records, "events": events, "failed": failed,
                      "seconds": elapsed}))  # fmt: skip


if __name__ == "__main__":
    main()
