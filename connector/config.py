"""The connector's configuration: one YAML file, validated once at start.

``load_config(path)`` returns ``Settings`` or raises ``ConfigError`` whose message
names the file, the dotted field path and what was expected. Secrets are never
in the file: they are read from environment variables or mounted files named by
``*_env`` / ``*_file`` fields, and held as ``SecretStr`` so they never print.
Relative paths in the file (mapping, schemas) are resolved against the file's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from connector.cdp.transport import default_transport
from connector.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """A secret from a mounted file (preferred when set) or an environment variable."""
    if file is not None:
        try:
            return SecretStr(file.read_text().strip())
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from exc
    if env:
        value = os.environ.get(env)
        return SecretStr(value) if value else None
    return None


class KafkaSettings(_Section):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    group_id: str = Field("cdp-connector", min_length=1, description="consumer group")
    client: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="extra librdkafka settings passed through (security.protocol, "
        "sasl.mechanism, sasl.username, ssl.ca.location, ...); never a password",
    )
    sasl_password_env: str | None = Field("KAFKA_SASL_PASSWORD", description="env var")
    sasl_password_file: Path | None = Field(None, description="mounted secret file")
    commit_interval_seconds: float = Field(1.0, gt=0, le=60, description="async commit period")
    poll_batch: int = Field(500, ge=1, le=100_000, description="records per consume() call")

    @model_validator(mode="after")
    def _no_secrets_inline(self) -> KafkaSettings:
        for key in self.client:
            if "password" in key or key.endswith(".secret"):
                raise ValueError(
                    f"client.{key}: secrets are not taken from the file; "
                    "use sasl_password_env or sasl_password_file"
                )
        return self

    def librdkafka(self) -> dict[str, Any]:
        """Common librdkafka settings for consumer and producer, secrets included."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, **self.client}
        password = read_secret(self.sasl_password_env, self.sasl_password_file, "kafka")
        if password is not None and "sasl.mechanism" in conf:
            conf["sasl.password"] = password.get_secret_value()
        return conf


class TopicSettings(_Section):
    name: str | None = Field(None, description="topic name")
    pattern: str | None = Field(None, description="regex subscription (librdkafka '^...')")
    decoder: Literal["confluent", "schemaless"] = "confluent"
    schema_path: Path | None = Field(None, alias="schema", description="schemaless writer .avsc")
    reader_schema: Path | None = Field(None, description="reader .avsc for evolution")
    key: Literal["string", "bytes", "avro"] = "string"

    @model_validator(mode="after")
    def _one_of_name_or_pattern(self) -> TopicSettings:
        if (self.name is None) == (self.pattern is None):
            raise ValueError("give exactly one of 'name' or 'pattern'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regex: {exc}") from exc
        if self.decoder == "schemaless" and self.schema_path is None:
            raise ValueError("decoder 'schemaless' needs 'schema' (the writer .avsc)")
        return self

    @property
    def subscription(self) -> str:
        """What to pass to subscribe(): the name, or the pattern with librdkafka's '^'."""
        if self.pattern is None:
            return str(self.name)
        return self.pattern if self.pattern.startswith("^") else f"^{self.pattern}"

    def matches(self, topic: str) -> bool:
        if self.pattern is None:
            return topic == self.name
        return re.fullmatch(self.pattern.lstrip("^"), topic) is not None


class RegistrySettings(_Section):
    url: str = Field(..., description="Confluent-compatible schema registry base URL")
    username_env: str | None = None
    password_env: str | None = None
    timeout_seconds: float = Field(5.0, gt=0)

    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) when both are configured, for HTTP Basic auth."""
        user = read_secret(self.username_env, None, "schema_registry.username")
        password = read_secret(self.password_env, None, "schema_registry.password")
        if user is None or password is None:
            return None
        return user.get_secret_value(), password.get_secret_value()


class BrowserIdSettings(_Section):
    """Where browser ids made for ``browser_id_for`` mappings are kept (connector.browser_ids)."""

    topic: str = Field(
        "cdp.browser-ids", min_length=1, description="compacted topic: visitor id → browser id"
    )
    create_topic: bool = Field(True, description="create it (compacted) if it does not exist")
    partitions: int = Field(3, ge=1, le=10_000, description="when creating the topic")
    replication_factor: int = Field(-1, ge=-1, description="when creating; -1: broker default")
    max_entries: int = Field(
        1_000_000, ge=1, description="ids held in memory (LRU); evicted visitors get a new id"
    )
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="load / produce timeout")


class CdpSettings(_Section):
    dialect: Literal["asyncapi", "sitecore"] = "asyncapi"
    transport: Literal["post-basic", "post-events", "get-query"] | None = Field(
        None,
        description="how events travel; default per dialect: asyncapi → post-basic, "
        "sitecore → post-events (connector/cdp/transport.py)",
    )
    browser_ids: BrowserIdSettings = BrowserIdSettings()
    points_of_sale: list[str] = Field(
        default_factory=list, description="pos values `check` probes with one event each"
    )
    region: Literal["eu", "us", "ap", "jp"] | None = "eu"
    base_url: str | None = Field(None, description="overrides region (sandbox, proxy)")
    client_key_env: str | None = "CDP_CLIENT_KEY"
    client_key_file: Path | None = None
    api_token_env: str | None = "CDP_API_TOKEN"  # noqa: S105 - a variable name, not a secret
    api_token_file: Path | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    http_client: Literal["builtin", "aiohttp"] = Field(
        "builtin",
        description="builtin: the connector's small HTTP/1.1 client (about 6x less CPU per "
        "event, docs/benchmarks.md); aiohttp: the general-purpose client",
    )

    @model_validator(mode="after")
    def _base_url_shape(self) -> CdpSettings:
        if self.base_url is not None and not re.match(r"https?://[^/\s]+", self.base_url):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.base_url is None and self.region is None:
            raise ValueError("give a region (eu, us, ap, jp) or a base_url")
        return self

    def client_key(self) -> SecretStr:
        return self._required_secret(self.client_key_env, self.client_key_file, "client_key")

    @property
    def effective_transport(self) -> Literal["post-basic", "post-events", "get-query"]:
        """``transport``, or the dialect's default."""
        return self.transport or default_transport(self.dialect)

    def api_token_if_needed(self) -> str:
        """The API token for post-basic; the other transports send none (empty string)."""
        if self.effective_transport != "post-basic":
            return ""
        return self.api_token().get_secret_value()

    def api_token(self) -> SecretStr:
        return self._required_secret(self.api_token_env, self.api_token_file, "api_token")

    @staticmethod
    def _required_secret(env: str | None, file: Path | None, name: str) -> SecretStr:
        value = read_secret(env, file, f"cdp.{name}")
        if value is None:
            where = f"file {file}" if file else f"environment variable {env}"
            raise ConfigError(f"cdp.{name}: no value in {where}")
        return value


class RetrySettings(_Section):
    max_attempts: int = Field(8, ge=1, le=1000)
    initial_backoff_seconds: float = Field(0.2, gt=0)
    max_backoff_seconds: float = Field(30.0, gt=0)
    max_elapsed_seconds: float = Field(300.0, gt=0)


class CircuitSettings(_Section):
    failure_threshold: int = Field(
        20, ge=1, description="consecutive retryable failures that open the circuit"
    )
    open_seconds: float = Field(5.0, gt=0, description="first wait before a probe")
    max_open_seconds: float = Field(60.0, gt=0)


class DeliverySettings(_Section):
    ordering: Literal["key", "partition", "none"] = "key"
    max_in_flight: int = Field(256, ge=1, le=10_000)
    max_buffered_records: int = Field(20_000, ge=1, le=10_000_000)
    rate_limit_per_second: float | None = Field(None, gt=0)
    retry: RetrySettings = RetrySettings()
    circuit: CircuitSettings = CircuitSettings()
    on_retries_exhausted: Literal["dead_letter", "halt"] = "dead_letter"
    auth_probe_seconds: float = Field(
        30.0, gt=0, description="how often a halted connector re-tries after 401/403"
    )


class DeadLetterSettings(_Section):
    topic: str = Field("clickstream.dlq", min_length=1)


class ObservabilitySettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod
    port: int = Field(9400, ge=0, le=65535, description="0 = any free port")
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ShutdownSettings(_Section):
    drain_timeout_seconds: float = Field(30.0, ge=0, le=3600)


class Settings(_Section):
    """The whole connector.yaml."""

    kafka: KafkaSettings = KafkaSettings()
    topics: list[TopicSettings] = Field(..., min_length=1)
    schema_registry: RegistrySettings | None = None
    mapping: Path
    cdp: CdpSettings = CdpSettings()
    delivery: DeliverySettings = DeliverySettings()
    dead_letter: DeadLetterSettings = DeadLetterSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    source: Path | None = Field(None, exclude=True, description="the file this came from")

    @model_validator(mode="after")
    def _registry_when_needed(self) -> Settings:
        if self.schema_registry is None and any(t.decoder == "confluent" for t in self.topics):
            raise ValueError("schema_registry.url is required for topics with decoder 'confluent'")
        return self

    def topic_for(self, topic: str) -> TopicSettings:
        for spec in self.topics:
            if spec.matches(topic):
                return spec
        raise KeyError(topic)


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the file's relative paths relative to the file, not the working directory."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str(base / value)
        return value

    if "mapping" in raw:
        raw["mapping"] = fix(raw["mapping"])
    for topic in raw.get("topics") or []:
        if isinstance(topic, dict):
            for key in ("schema", "reader_schema"):
                if key in topic:
                    topic[key] = fix(topic[key])
    for section, keys in (("kafka", ("sasl_password_file",)),
                          ("cdp", ("client_key_file", "api_token_file"))):  # fmt: skip
        block = raw.get(section)
        if isinstance(block, dict):
            for key in keys:
                if key in block:
                    block[key] = fix(block[key])


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: file, dotted field path, what was expected, what was given."""
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        given = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.80})"
        lines.append(f"  {source}: {path}: {err['msg']}{given}")
    return "\n".join(lines)


def load_config(path: str | Path) -> Settings:
    """Read and validate connector.yaml; raise ConfigError naming file, field and expectation."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    _resolve_paths(raw, path.parent)
    try:
        settings = Settings.model_validate({**raw, "source": path})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from exc
    if not settings.mapping.is_file():
        raise ConfigError(f"{path}: mapping: file not found: {settings.mapping}")
    return settings
