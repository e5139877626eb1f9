"""Realistic, deterministic clickstream records (schema v1, or v3) for tests, the demo and
benchmarks.

``sample_records`` returns records in exactly the shape the decoder produces (plain dicts,
aware UTC datetimes, ``Decimal`` prices, ``date`` birth dates), so ``decode(encode(r)) == r``.
The ``encode_*`` helpers and ``writable`` add what an Avro writer needs on top: the name of
the ``payload`` union branch, which plain dicts cannot carry unambiguously.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import struct
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from fastavro import schemaless_writer

__all__ = [
    "EVENT_TYPES",
    "PAYLOAD_TYPES",
    "SITES",
    "encode_confluent",
    "encode_schemaless",
    "sample_records",
    "writable",
]

NAMESPACE = "com.example.clickstream"

# event_type → full name of the payload union branch it carries.
PAYLOAD_TYPES: dict[str, str] = {
    "PAGE_VIEW": f"{NAMESPACE}.PageView",
    "PRODUCT_ADDED": f"{NAMESPACE}.ProductAdded",
    "SEARCH": f"{NAMESPACE}.Search",
    "ORDER_COMPLETED": f"{NAMESPACE}.OrderCompleted",
    "IDENTIFY": f"{NAMESPACE}.Identify",
    "CUSTOM": f"{NAMESPACE}.Custom",
}
EVENT_TYPES = tuple(PAYLOAD_TYPES)
# Roughly what a storefront sees: mostly page views, few orders.
_WEIGHTS = (55, 12, 12, 5, 6, 10)

_SITES = (
    ("shop.example.com", "en-GB", "GBP"),
    ("shop.example.de", "de-DE", "EUR"),
    ("shop.example.fr", "fr-FR", "EUR"),
    ("shop.example.us", "en-US", "USD"),
)
#: The points of sale (``site``) the sample records come from.
SITES: tuple[str, ...] = tuple(site for site, _, _ in _SITES)
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
_FIRST = ("Emma", "Liam", "Sofia", "Noah", "Mia", "Lukas", "Chloé", "Oliver", "Anna", "Mateo")
_LAST = ("Smith", "Müller", "Dubois", "Johnson", "García", "Rossi", "Novak", "Jensen", "Brown")
# sku, name, price, category
_PRODUCTS = (
    ("RUN-1042-42", "Trail Runner 2 (EU 42)", Decimal("119.95"), "shoes/running"),
    ("RUN-1042-44", "Trail Runner 2 (EU 44)", Decimal("119.95"), "shoes/running"),
    ("TEE-0007-M", "Merino T-Shirt, M", Decimal("49.00"), "apparel/tops"),
    ("JKT-2210-L", "Rain Shell Jacket, L", Decimal("189.50"), "apparel/jackets"),
    ("BAG-0300", "Daypack 22 L", Decimal("74.99"), "bags"),
    ("SOC-0101-3P", "Running Socks, 3 pairs", Decimal("14.90"), None),
    ("BTL-0500", "Steel Bottle 0.5 L", Decimal("24.00"), "accessories"),
)
_QUERIES = ("running shoes", "rain jacket", "merino", "daypack", "socks", "gift card", "trail")
_PAGES = (
    ("/", "Home", "home"),
    ("/c/shoes/running", "Running shoes", "category"),
    ("/p/trail-runner-2", "Trail Runner 2", "product"),
    ("/cart", "Your basket", "cart"),
    ("/checkout", "Checkout", "checkout"),
    ("/help/returns", "Returns", None),
)
_REFERRERS = (None, None, "https://www.google.com/", "https://www.instagram.com/")
# v3 page.utm: most page URLs carry none; campaign traffic carries a few parameters.
_UTMS: tuple[dict[str, str | None] | None, ...] = (
    None,
    None,
    None,
    {"source": "newsletter", "medium": "email", "campaign": "winter-sale", "term": None,
     "content": "hero-banner"},
    {"source": "google", "medium": "cpc", "campaign": "running-shoes", "term": "trail runner",
     "content": None},
    {"source": "instagram", "medium": "social", "campaign": None, "term": None,
     "content": None},
)  # fmt: skip
_CUSTOM = ("wishlist_added", "newsletter_opened", "store_locator_used", "size_guide_viewed")
_PAYMENTS = ("CARD", "CARD", "DEBIT_CARD", "PAYPAL", "GIFT_CARD", "OTHER")
_STATUSES = ("PLACED", "PLACED", "CONFIRMED", "PENDING", "CANCELLED")
_START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _guest(rng: random.Random, index: int) -> dict[str, Any]:
    site, locale, currency = rng.choice(_SITES)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "anonymous_id": _uuid(rng),
        "user_id": f"cust-{100000 + index}" if rng.random() < 0.4 else None,
        "session_id": _uuid(rng),
        "site": site,
        "locale": locale,
        "currency": currency,
        "user_agent": rng.choice(_AGENTS),
        "first_name": first,
        "last_name": last,
        # Mailbox names are ASCII (the spec's `email` format); "Müller" → "muller".
        "email": _ascii(f"{first}.{last}.{index}@example.org").lower(),
    }


def _payload(rng: random.Random, event_type: str, guest: Mapping[str, Any]) -> dict[str, Any]:
    if event_type == "PAGE_VIEW":
        return {"page_type": rng.choice(_PAGES)[2]}
    if event_type == "PRODUCT_ADDED":
        sku, name, price, category = rng.choice(_PRODUCTS)
        quantity = rng.choice((1, 1, 1, 2, 3))
        return {
            "sku": sku,
            "name": name,
            "price": price,
            "category": category,
            "quantity": quantity,
        }
    if event_type == "SEARCH":
        return {"query": rng.choice(_QUERIES), "result_count": rng.choice((None, 0, 3, 17, 42))}
    if event_type == "ORDER_COMPLETED":
        lines = rng.sample(_PRODUCTS, rng.randint(1, 3))
        items: list[dict[str, Any]] = [
            {
                "sku": sku,
                "name": name,
                "quantity": rng.randint(1, 2),
                "unit_price_minor": int(price * 100),
                "category": category,
            }
            for sku, name, price, category in lines
        ]
        return {
            "order_id": f"ORD-{rng.randint(10_000_000, 99_999_999)}",
            "total_minor": sum(item["quantity"] * item["unit_price_minor"] for item in items),
            "currency": guest["currency"],
            "status": rng.choice(_STATUSES),
            "payment_type": rng.choice(_PAYMENTS),
            "items": items,
        }
    if event_type == "IDENTIFY":
        has_birth = rng.random() < 0.5
        return {
            "email": guest["email"],
            "first_name": guest["first_name"],
            "last_name": guest["last_name"],
            "birth_date": dt.date(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
            if has_birth
            else None,
            "gender": rng.choice((None, "MALE", "FEMALE", "OTHER", "UNKNOWN")),
            "phone": f"+4477009{rng.randint(10000, 99999)}" if rng.random() < 0.3 else None,
            "identifiers": [{"provider": "crm", "id": f"C{rng.randint(1000000, 9999999)}"}]
            if guest["user_id"]
            else [],
        }
    return {
        "name": rng.choice(_CUSTOM),
        "attributes": {"source": rng.choice(("web", "app")), "variant": rng.choice("ABC")},
    }


def sample_records(
    n: int, guests: int = 300, seed: int = 7, *, version: int = 1
) -> list[dict[str, Any]]:
    """``n`` valid records of schema ``version`` (1 or 3) from ``guests`` visitors; the same
    arguments give the same records.

    The first six records cover every event type in order; the rest follow a storefront mix.
    Version 3 records also carry ``consent_given`` (v2; None or true) and ``page.utm``;
    version 1 records are the same as before version 3 existed (same seed, same records).
    """
    if version not in (1, 3):
        raise ValueError(f"sample records exist for schema v1 and v3, not v{version}")
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    pool = [_guest(rng, i) for i in range(max(guests, 1))]
    records: list[dict[str, Any]] = []
    at = _START
    for i in range(n):
        event_type = (
            EVENT_TYPES[i] if i < len(EVENT_TYPES) else rng.choices(EVENT_TYPES, _WEIGHTS)[0]
        )
        guest = rng.choice(pool)
        at += dt.timedelta(milliseconds=rng.randint(5, 4000))
        url, title, _ = rng.choice(_PAGES)
        record: dict[str, Any] = {
            "event_id": _uuid(rng),
            "event_type": event_type,
            "occurred_at": at,
            "anonymous_id": guest["anonymous_id"],
            "user_id": guest["user_id"],
            "session_id": guest["session_id"],
            "page": {
                "url": f"https://{guest['site']}{url}",
                "title": title,
                "referrer": rng.choice(_REFERRERS),
            },
            "locale": guest["locale"],
            "currency": guest["currency"],
            "site": guest["site"],
            "user_agent": guest["user_agent"],
            "payload": _payload(rng, event_type, guest),
        }
        if version == 3:
            # Drawn only for v3: v1 records stay exactly as they were before v3 existed.
            record["consent_given"] = rng.choice((None, True))
            utm = rng.choice(_UTMS)
            record["page"]["utm"] = None if utm is None else dict(utm)
            if utm is not None:
                query = "&".join(f"utm_{k}={v}" for k, v in utm.items() if v)
                record["page"]["url"] += "?" + query.replace(" ", "+")
        records.append(record)
    return records


def writable(record: Mapping[str, Any], _ctx: object = None) -> dict[str, Any]:
    """The record with its payload tagged by union branch, as Avro writers need it.

    Usable as ``to_dict`` of confluent-kafka's ``AvroSerializer`` (hence the context argument).
    """
    out = dict(record)
    out["payload"] = (PAYLOAD_TYPES[record["event_type"]], record["payload"])
    return out


def encode_schemaless(records: Iterable[Mapping[str, Any]], schema: Any) -> list[bytes]:
    """Schemaless Avro bodies of ``records`` written with the parsed ``schema``."""
    out: list[bytes] = []
    for record in records:
        buf = io.BytesIO()
        schemaless_writer(buf, schema, writable(record))
        out.append(buf.getvalue())
    return out


def encode_confluent(
    records: Iterable[Mapping[str, Any]], schema: Any, schema_id: int
) -> list[bytes]:
    """Confluent wire format (magic 0, big-endian schema id, Avro body) of ``records``."""
    header = struct.pack(">bI", 0, schema_id)
    return [header + body for body in encode_schemaless(records, schema)]
