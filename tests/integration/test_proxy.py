"""The connector behind a real forward proxy (tinyproxy) to an https sandbox with mutual TLS.

The sandbox serves https with a certificate from a private CA that the connector
trusts only through ``cdp.tls.ca_file``, and wants a client certificate signed by a
client CA (``cdp.tls.cert_file`` / ``key_file``). The proxy accepts one Basic
credential. What each test shows, from what the connector leaves behind (the
sandbox's accepted events, the dead-letter topic, the proxy's log, /readyz):

- events reach the API through a CONNECT tunnel, with either HTTP client;
- wrong proxy credentials halt delivery (407, like a 401) and it resumes by itself
  once the proxy accepts them; nothing is dead-lettered;
- ``NO_PROXY`` sends the API's traffic past the proxy, even a configured one;
- the proxy stopped mid-stream (6 s here, not the 30 s of the issue: the suite's time)
  opens the circuit, /readyz says the proxy is the problem, and delivery resumes by
  itself: nothing lost, nothing dead-lettered;
- a client certificate the API does not trust gets nothing delivered and nothing
  dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.sample_clickstream import sample_records
from scripts.services.common import free_port
from tests.fixtures_sandbox import SandboxProcess, start_sandbox, stop_sandbox
from tests.integration.connector_proc import ConnectorFactory, wait_for
from tests.integration.forward_proxy import Tinyproxy, TlsMaterial, make_tls_material
from tests.integration.guarantee_helpers import Stream, delivery_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROXY_USER = ("cdp-egress", "proxy-pass-Qw81")
OUTAGE_SECONDS = 6.0


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_sandbox_server(
    tmp_path_factory: pytest.TempPathFactory, tls: TlsMaterial
) -> Iterator[SandboxProcess]:
    sandbox = start_sandbox(
        tmp_path_factory.mktemp("tls-sandbox"),
        "--tls-cert", str(tls.server), "--tls-key", str(tls.server_key),
        "--tls-client-ca", str(tls.client_ca),
        context=tls.admin_context(),
    )  # fmt: skip
    assert sandbox.url.startswith("https://127.0.0.1:")
    yield sandbox
    stop_sandbox(sandbox)


@pytest.fixture
def tls_sandbox(tls_sandbox_server: SandboxProcess) -> SandboxProcess:
    tls_sandbox_server.reset()
    return tls_sandbox_server


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    proxy = Tinyproxy(tmp_path / "proxy", PROXY_USER).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def stream(bootstrap: str, schema_registry: Any, unique: str) -> Iterator[Stream]:
    stream = Stream(bootstrap, schema_registry.url, unique)
    yield stream
    stream.close()


def tls_config(tls: TlsMaterial, *, rogue: bool = False) -> dict[str, str]:
    cert, key = (tls.rogue, tls.rogue_key) if rogue else (tls.client, tls.client_key)
    return {"ca_file": str(tls.ca), "cert_file": str(cert), "key_file": str(key)}


def configure(
    stream: Stream,
    factory: ConnectorFactory,
    sandbox: SandboxProcess,
    tls: TlsMaterial,
    *,
    cdp: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The stream's config to the https sandbox; ``env`` goes to the connector's env."""
    factory.env = {
        **factory.env,
        "CDP_PROXY_USERNAME": PROXY_USER[0],
        "CDP_PROXY_PASSWORD": PROXY_USER[1],
        **(env or {}),
    }
    return stream.config(
        factory, sandbox.url, cdp={"tls": tls_config(tls), **(cdp or {})}, **sections
    )


def authority(sandbox: SandboxProcess) -> str:
    return sandbox.url.split("://", 1)[1]


def all_delivered_once_or_more(stream: Stream, sandbox: SandboxProcess) -> None:
    counts = delivery_counts(sandbox)
    missing = [r["event_id"] for r in stream.records if counts[r["event_id"]] == 0]
    assert missing == [], f"{len(missing)} records never reached the API"
    assert stream.dead_letters(0, timeout=1) == []


@pytest.mark.parametrize("http_client", ["builtin", "aiohttp"])
def test_events_reach_an_https_api_through_a_connect_tunnel_with_mutual_tls(
    stream: Stream,
    connector_factory: ConnectorFactory,
    tls_sandbox: SandboxProcess,
    tls: TlsMaterial,
    proxy: Tinyproxy,
    http_client: str,
) -> None:
    stream.produce(sample_records(150, guests=30, seed=2801))
    connector_factory.start(
        configure(stream, connector_factory, tls_sandbox, tls,
                  cdp={"proxy": proxy.url, "http_client": http_client})
    )  # fmt: skip
    stream.caught_up(60)
    all_delivered_once_or_more(stream, tls_sandbox)
    assert proxy.connects(authority(tls_sandbox)) >= 1
    # A tunnel: the proxy saw where, never what (no path, no event).
    assert "/v1.2/" not in proxy.log.read_text()


def test_wrong_proxy_credentials_halt_then_resume_when_the_proxy_accepts_them(
    stream: Stream,
    connector_factory: ConnectorFactory,
    tls_sandbox: SandboxProcess,
    tls: TlsMaterial,
    proxy: Tinyproxy,
) -> None:
    stream.produce(sample_records(60, guests=12, seed=2802))
    wrong = "not-the-proxy-password"
    connector = connector_factory.start(
        configure(stream, connector_factory, tls_sandbox, tls, cdp={"proxy": proxy.url},
                  env={"CDP_PROXY_PASSWORD": wrong}, delivery={"auth_probe_seconds": 0.5}),
        expect_errors=[r"delivery halted: proxy http://\S+ refused its credentials"],
    )  # fmt: skip

    def halted_by_the_proxy() -> bool:
        status, body = connector.readyz()
        why = f"halted: proxy {proxy.url} refused its credentials"
        return status == 503 and any(r.startswith(why) for r in body["reasons"])

    wait_for(halted_by_the_proxy, 30, "readiness false, naming the proxy's refusal")
    assert tls_sandbox.stats()["requests"] == 0
    assert connector.metric("cdp_connector_halted") == 1

    proxy.stop()  # the proxy's administrator changes the password to what we send
    proxy.start(credentials=(PROXY_USER[0], wrong))
    stream.caught_up(60)
    all_delivered_once_or_more(stream, tls_sandbox)
    assert connector.readyz()[0] == 200


def test_no_proxy_sends_the_api_traffic_past_even_a_configured_proxy(
    stream: Stream,
    connector_factory: ConnectorFactory,
    tls_sandbox: SandboxProcess,
    tls: TlsMaterial,
) -> None:
    stream.produce(sample_records(60, guests=12, seed=2803))
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: through it, nothing arrives
    connector_factory.start(
        configure(stream, connector_factory, tls_sandbox, tls, cdp={"proxy": nowhere},
                  env={"HTTPS_PROXY": nowhere, "NO_PROXY": "localhost,127.0.0.1"})
    )  # fmt: skip
    stream.caught_up(60)
    all_delivered_once_or_more(stream, tls_sandbox)


def test_proxy_stopped_mid_stream_opens_the_circuit_and_delivery_resumes_by_itself(
    stream: Stream,
    connector_factory: ConnectorFactory,
    tls_sandbox: SandboxProcess,
    tls: TlsMaterial,
    proxy: Tinyproxy,
) -> None:
    stream.produce(sample_records(240, guests=40, seed=2804))
    # From the environment this time (HTTPS_PROXY), as most deployments set it.
    connector = connector_factory.start(
        configure(stream, connector_factory, tls_sandbox, tls, env={"HTTPS_PROXY": proxy.url},
                  delivery={"rate_limit_per_second": 40})
    )  # fmt: skip
    wait_for(lambda: tls_sandbox.stats()["accepted"] >= 40, 30, "delivery under way")
    proxy.stop()
    down_at = time.monotonic()

    def proxy_named() -> bool:
        degraded = connector.readyz()[1]["degraded"]
        return any("circuit open" in d and f"proxy {proxy.url}" in d for d in degraded)

    wait_for(proxy_named, OUTAGE_SECONDS, "/readyz naming the proxy as the problem")
    assert stream.dead_letters(0, timeout=0.5) == []
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    proxy.start()

    stream.caught_up(90)
    all_delivered_once_or_more(stream, tls_sandbox)
    assert connector.readyz()[1]["degraded"] == []
    assert f"proxy {proxy.url} unreachable (the CDP was not reached)" in connector.output()


def test_a_client_certificate_the_api_does_not_trust_delivers_nothing_and_dead_letters_nothing(
    stream: Stream,
    connector_factory: ConnectorFactory,
    tls_sandbox: SandboxProcess,
    tls: TlsMaterial,
    proxy: Tinyproxy,
) -> None:
    stream.produce(sample_records(30, guests=6, seed=2805))
    connector = connector_factory.start(
        configure(stream, connector_factory, tls_sandbox, tls,
                  cdp={"proxy": proxy.url, "tls": tls_config(tls, rogue=True)},
                  delivery={"circuit": {"failure_threshold": 5}})
    )  # fmt: skip

    def circuit_open() -> bool:
        return any("circuit open" in d for d in connector.readyz()[1]["degraded"])

    wait_for(circuit_open, 30, "the circuit opened on refused handshakes")
    assert proxy.connects(authority(tls_sandbox)) >= 1  # the tunnel was there; TLS was not
    assert tls_sandbox.stats()["requests"] == 0
    assert stream.dead_letters(0, timeout=1) == []
    assert stream.nothing_committed()
