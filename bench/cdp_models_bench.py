"""Events/s for validating one payload dict and dumping it to JSON bytes (asyncapi dialect).

python bench/cdp_models_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from connector.cdp import get_dialect

BASE: dict[str, Any] = {
    "channel": "WEB",
    "browser_id": "56860bff-94ba-4d84-aa37-2b5a83d5411b",
    "session_id": "0b0a2c1e-7a36-4a51-9e2f-8f7f2b7b0d11",
    "pos": "shop.example.com",
    "currency": "EUR",
    "language": "EN",
    "page": "https://shop.example.com/products/sku-123?ref=home",
}

PAYLOADS: list[dict[str, Any]] = [
    {**BASE, "type": "VIEW", "ext": {"pageType": "product", "loggedIn": False}},
    {**BASE, "type": "SEARCH", "search_term": "red shoes", "num_results": 42},
    {
        **BASE,
        "type": "ADD",
        "product": {"sku": "SKU-123", "name": "Red shoe", "price": 59.9, "category": "shoes"},
    },
    {
        **BASE,
        "type": "IDENTITY",
        "email": "jane.doe@example.com",
        "firstname": "Jane",
        "lastname": "Doe",
        "date_of_birth": "1990-04-01",
        "gender": "Female",
    },
    {
        **BASE,
        "type": "ORDER_CHECKOUT",
        "reference_id": "ORD-1",
        "total_price": 119.8,
        "status": "CONFIRMED",
        "payment_type": "CREDIT_CARD",
        "ordered_at": "2026-11-26T10:00:00Z",
        "items": [{"sku": "SKU-123", "quantity": 2, "price": 59.9}],
    },
    {**BASE, "type": "ADD_TO_WISHLIST", "ext": {"sku": "SKU-123", "listSize": 3}},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    dialect = get_dialect("asyncapi")
    for payload in PAYLOADS:  # warm-up and sanity
        dialect.validate_and_dump(payload)
    print(f"mean body size {sum(len(dialect.validate_and_dump(p)) for p in PAYLOADS) // 6} bytes")
    n = 0
    deadline = time.perf_counter() + args.seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(100):
            for payload in PAYLOADS:
                dialect.dump(dialect.validate(payload))
        n += 100 * len(PAYLOADS)
    elapsed = time.perf_counter() - start
    print(f"validate+dump: {n / elapsed:,.0f} events/s ({elapsed / n * 1e6:.1f} µs/event)")
    by_type = {}
    for payload in PAYLOADS:
        t0 = time.perf_counter()
        for _ in range(20_000):
            dialect.dump(dialect.validate(payload))
        by_type[payload["type"]] = (time.perf_counter() - t0) / 20_000 * 1e6
    print("µs/event by type: " + ", ".join(f"{k} {v:.1f}" for k, v in by_type.items()))


if __name__ == "__main__":
    main()
