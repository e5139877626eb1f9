"""Which proxy CDP traffic takes, where its credentials come from, what its errors mean."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from connector.cdp.answer import Outcome, classify, network_error
from connector.cdp.proxy import Proxy, ProxyAuthRefused, ProxyError, choose_proxy
from connector.config import CdpSettings
from connector.errors import ConfigError
from connector.http_auth import basic_auth_header

API = "https://api-engage-eu.sitecorecloud.io"


def test_no_proxy_anywhere_means_direct() -> None:
    assert choose_proxy(API, None, None, environ={}) is None


def test_https_proxy_from_the_environment_lowercase_winning() -> None:
    env = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:8080"}
    assert choose_proxy(API, None, None, environ=env) == Proxy("lower", 8080)
    assert choose_proxy(API, None, None, environ={"HTTPS_PROXY": "corp:3128"}) == Proxy(
        "corp", 3128
    )


def test_http_proxy_only_for_http_apis() -> None:
    env = {"HTTP_PROXY": "http://plain:3128"}
    assert choose_proxy(API, None, None, environ=env) is None
    assert choose_proxy("http://sandbox:8080", None, None, environ=env) == Proxy("plain", 3128)


def test_configured_proxy_wins_over_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://env:3128"}
    assert choose_proxy(API, "http://conf:9000", None, environ=env) == Proxy("conf", 9000)


def test_environment_ignored_when_told() -> None:
    env = {"HTTPS_PROXY": "http://env:3128"}
    assert choose_proxy(API, None, None, from_environment=False, environ=env) is None


@pytest.mark.parametrize(
    "no_proxy", ["sitecorecloud.io", ".sitecorecloud.io", "*", "a, sitecorecloud.io"]
)
def test_no_proxy_applies_to_the_configured_proxy_too(no_proxy: str) -> None:
    env = {"HTTPS_PROXY": "http://env:3128", "NO_PROXY": no_proxy}
    assert choose_proxy(API, "http://conf:9000", None, environ=env) is None
    assert choose_proxy(API, None, None, environ=env) is None


def test_no_proxy_for_another_host_changes_nothing() -> None:
    env = {"no_proxy": "localhost,127.0.0.1", "HTTPS_PROXY": "http://env:3128"}
    assert choose_proxy(API, None, None, environ=env) == Proxy("env", 3128)


def test_credentials_from_config_win_over_the_environment_url() -> None:
    env = {"HTTPS_PROXY": "http://envuser:envpass@env:3128"}
    from_url = choose_proxy(API, None, None, environ=env)
    assert from_url is not None
    assert from_url.authorization == basic_auth_header("envuser", "envpass")
    configured = choose_proxy(API, None, ("me", "s3cret"), environ=env)
    assert configured is not None
    assert configured.authorization == basic_auth_header("me", "s3cret")
    assert "s3cret" not in repr(configured) and "envpass" not in repr(from_url)


@pytest.mark.parametrize("url", ["https://tls-proxy:443", "socks5://s:1080", "http://"])
def test_only_http_proxies(url: str) -> None:
    with pytest.raises(ConfigError, match="http://host:port"):
        choose_proxy(API, url, None, environ={})


def test_credentials_never_in_the_yaml() -> None:
    with pytest.raises(ValueError, match="must not carry credentials"):
        CdpSettings(proxy="http://user:pw@proxy:3128")


def test_settings_read_proxy_credentials_from_env_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("CDP_PROXY_USERNAME", "svc")
    monkeypatch.setenv("CDP_PROXY_PASSWORD", "from-env")
    password = tmp_path / "password"
    password.write_text("from-file\n")
    settings = CdpSettings(proxy="http://proxy.corp:3128", proxy_password_file=password)
    proxy = settings.proxy_for(API)
    assert proxy == Proxy("proxy.corp", 3128, basic_auth_header("svc", "from-file"))
    monkeypatch.delenv("CDP_PROXY_USERNAME")
    assert settings.proxy_for(API) == Proxy("proxy.corp", 3128, None)


def test_connect_request_names_the_api_and_carries_the_credentials() -> None:
    proxy = Proxy("p", 3128, "Basic eDp5")
    assert proxy.connect_request("api.example", 443) == (
        b"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n"
        b"Proxy-Authorization: Basic eDp5\r\n\r\n"
    )


def test_407_to_connect_halts_like_401() -> None:
    refused = Proxy("p", 3128, "Basic eDp5").refused(407, "Proxy Authentication Required", "a:443")
    assert isinstance(refused, ProxyAuthRefused) and isinstance(refused, ConnectionError)
    answer = network_error(refused)
    assert (answer.outcome, answer.status) == (Outcome.FATAL, 407)
    assert "proxy http://p:3128 refused its credentials" in answer.reason
    plain = classify(407, {}, b"<html>auth</html>")
    assert (plain.outcome, plain.status) == (Outcome.FATAL, 407)


@pytest.mark.parametrize("status", [502, 503, 403])
def test_other_connect_refusals_and_an_unreachable_proxy_are_an_outage(status: int) -> None:
    proxy = Proxy("p", 3128)
    for error in (
        proxy.refused(status, "Bad Gateway", "a:443"),
        proxy.unreachable(OSError(111, "refused")),
    ):
        assert isinstance(error, ProxyError) and not isinstance(error, ProxyAuthRefused)
        answer = network_error(error)
        assert answer.outcome is Outcome.RETRYABLE
        assert "proxy http://p:3128" in answer.reason and "CDP" in answer.reason


def test_tls_context_checks_names_and_loads_the_files(tmp_path: Path) -> None:
    context = CdpSettings().tls.context()
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    missing = CdpSettings.model_validate({"tls": {"ca_file": str(tmp_path / "none.pem")}})
    with pytest.raises(ConfigError, match=r"cdp\.tls\.ca_file .*none\.pem"):
        missing.tls.context()
    with pytest.raises(ValueError, match="key_file needs cert_file"):
        CdpSettings.model_validate({"tls": {"key_file": "k.pem"}})
