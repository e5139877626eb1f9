"""Decoded clickstream records (the shape of CONTRACTS.md), one per event type."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

AT = dt.datetime(2026, 11, 2, 8, 15, 30, 123000, tzinfo=dt.UTC)


def envelope(event_type: str, payload: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "4f1c2a6e-8a55-4c9b-9d7e-0d8f3e1b2c11",
        "event_type": event_type,
        "occurred_at": AT,
        "anonymous_id": "b-6d7c1f0e",
        "user_id": "cust-100042",
        "session_id": "s-91a2",
        "page": {
            "url": "https://shop.example.com/p/trail-runner-2",
            "title": "Trail Runner 2",
            "referrer": None,
        },
        "locale": "en-GB",
        "currency": "GBP",
        "site": "shop.example.com",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "payload": payload,
    }
    record.update(overrides)
    return record


RECORDS: dict[str, dict[str, Any]] = {
    "PAGE_VIEW": envelope("PAGE_VIEW", {"page_type": "product"}),
    "PRODUCT_ADDED": envelope(
        "PRODUCT_ADDED",
        {
            "sku": "RUN-1042-42",
            "name": "Trail Runner 2 (EU 42)",
            "price": Decimal("119.95"),
            "category": "shoes/running",
            "quantity": 2,
        },
    ),
    "SEARCH": envelope("SEARCH", {"query": "rain jacket", "result_count": 17}),
    "ORDER_COMPLETED": envelope(
        "ORDER_COMPLETED",
        {
            "order_id": "ORD-12345678",
            "total_minor": 28890,
            "currency": "GBP",
            "status": "PLACED",
            "payment_type": "CARD",
            "items": [
                {
                    "sku": "RUN-1042-42",
                    "name": "Trail Runner 2 (EU 42)",
                    "quantity": 2,
                    "unit_price_minor": 11995,
                    "category": "shoes/running",
                },
                {
                    "sku": "TEE-0007-M",
                    "name": "Merino T-Shirt, M",
                    "quantity": 1,
                    "unit_price_minor": 4900,
                    "category": None,
                },
            ],
        },
    ),
    "IDENTIFY": envelope(
        "IDENTIFY",
        {
            "email": "emma.smith@example.org",
            "first_name": "Emma",
            "last_name": "Smith",
            "birth_date": dt.date(1990, 4, 17),
            "gender": "FEMALE",
            "phone": None,
            "identifiers": [{"provider": "crm", "id": "C1234567"}],
        },
    ),
    "CUSTOM": envelope(
        "CUSTOM", {"name": "wishlist_added", "attributes": {"source": "web", "variant": "B"}}
    ),
}


def record(event_type: str, **overrides: Any) -> dict[str, Any]:
    """A deep copy of the sample record of ``event_type``, top-level keys overridden."""
    out = copy.deepcopy(RECORDS[event_type])
    out.update(overrides)
    return out
