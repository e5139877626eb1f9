"""The transport is chosen once: one place knows each dialect's default and each path;
``CdpClient`` holds one transport object; the dialects are a closed, plain registry."""

from __future__ import annotations

import os
import random
from typing import get_args
from urllib.parse import quote

import pytest

from connector.cdp.client import CdpClient
from connector.cdp.dialect import get_dialect
from connector.cdp.transport import (
    DEFAULT_TRANSPORT,
    TRANSPORT_CLASSES,
    TRANSPORTS,
    TransportName,
    query_url,
    splice_client_key,
)
from connector.config import CdpSettings
from connector.errors import ConfigError


@pytest.mark.parametrize(("dialect", "default"), [("asyncapi", "post-basic"),
                                                  ("sitecore", "post-events")])  # fmt: skip
def test_each_dialect_has_one_default_that_config_and_dialect_agree_on(
    dialect: str, default: str
) -> None:
    assert DEFAULT_TRANSPORT[dialect] == default
    assert get_dialect(dialect).transport == default
    pos = ["shop.example.com"]  # the sitecore dialect needs them
    assert CdpSettings(dialect=dialect, points_of_sale=pos).effective_transport == default  # type: ignore[arg-type]
    chosen = CdpSettings(dialect=dialect, transport="get-query", points_of_sale=pos)  # type: ignore[arg-type]
    assert chosen.effective_transport == "get-query"


def test_every_config_dialect_exists_and_others_are_a_config_error() -> None:
    names = get_args(CdpSettings.model_fields["dialect"].annotation)
    assert {get_dialect(name).name for name in names} == set(names) == set(DEFAULT_TRANSPORT)
    with pytest.raises(ConfigError, match="unknown CDP dialect 'dialect'"):
        get_dialect("dialect")


@pytest.mark.parametrize(
    ("transport", "path"),
    [("post-basic", "/v1.2/event/create.json"), ("post-events", "/v1.2/events"),
     ("get-query", "/v1.2/event/create.json")],
)  # fmt: skip
async def test_the_client_holds_the_transport_it_was_given(
    transport: TransportName, path: str
) -> None:
    client = CdpClient("http://127.0.0.1:9/", "key", "token", transport=transport)
    assert (client.transport, client.url) == (transport, "http://127.0.0.1:9" + path)
    with pytest.raises(RuntimeError, match="before start"):
        await client.send(b"{}")
    async with client:
        assert type(client._transport) is TRANSPORT_CLASSES[transport]
    assert set(TRANSPORT_CLASSES) == set(TRANSPORTS)


@pytest.mark.parametrize("alphabet", [range(256), range(0x20, 0x7F)], ids=["bytes", "ascii"])
def test_query_url_percent_encodes_like_urllib(alphabet: range) -> None:
    rng = random.Random(5)
    for _ in range(1000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(80)))
        if alphabet.stop == 256:
            body += os.urandom(2)
        url = query_url("/e", "k&y", body)
        assert url == f"/e?client_key=k%26y&message={quote(body, safe=':,')}"


def test_client_key_is_spliced_into_the_body() -> None:
    assert splice_client_key(b'{"a":1}', b'"k"') == b'{"client_key":"k","a":1}'
    assert splice_client_key(b"{}", b'"k"') == b'{"client_key":"k"}'
