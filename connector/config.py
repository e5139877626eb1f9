"""The connector's configuration: one YAML file, validated once at start.

``load_config(path)`` returns ``Settings`` or raises ``ConfigError`` whose message
names the file, the dotted field path and what was expected. Secrets are never
in the file: they are read from environment variables or mounted files named by
``*_env`` / ``*_file`` fields, and held as ``SecretStr`` so they never print.
Relative paths in the file (mapping, schemas) are resolved against the file's folder.
Every field's ``description`` is its documentation: docs/configuration.md's field table
is generated from these models (scripts/config-reference). ``KafkaSettings`` builds
the librdkafka settings of each kind of client, so none is handed a key it ignores.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.cdp.transport import default_transport
from connector.errors import ConfigError
from connector.librdkafka_keys import CONSUMER_ONLY, OWNED_KEYS, PRODUCER_ONLY


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# What Kubernetes accepts as an environment variable name (the chart fills them).
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


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
    """The broker connection; ``*_conf()`` build each kind of client's librdkafka settings."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", min_length=1, description="brokers, `host:port[,host:port...]`"
    )
    group_id: str = Field(
        "cdp-connector",
        min_length=1,
        description="consumer group; replicas with the same id share the partitions",
    )
    group_instance_id_env: str | None = Field(
        None,
        pattern=ENV_NAME,
        description="environment variable holding this replica's `group.instance.id` "
        "(static membership: a restart within `session.timeout.ms` keeps the partitions, "
        "no rebalance); each replica needs its own value, so the Helm chart sets it from the "
        "pod name (`staticMembership.enabled`). Unset: dynamic membership",
    )
    client: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="extra librdkafka settings, e.g. `security.protocol: SASL_SSL`, "
        "`sasl.mechanism: SCRAM-SHA-512`, `sasl.username`, `ssl.ca.location`, "
        "`session.timeout.ms`. Consumer-only keys go to the consumers only, producer-only "
        "keys to the producers only (librdkafka's own table), the rest to every client. "
        "`auto.offset.reset` defaults to `earliest` (a group without committed offsets "
        "reads from the start; `latest` skips the backlog). Never a password",
    )
    sasl_password_env: str | None = Field(
        "KAFKA_SASL_PASSWORD",
        pattern=ENV_NAME,
        description="environment variable holding the SASL password",
    )
    sasl_password_file: Path | None = Field(
        None, description="mounted file holding the SASL password (wins over the variable)"
    )
    commit_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="period of the asynchronous commit of finished offsets"
    )
    poll_batch: int = Field(
        500,
        ge=1,
        le=100_000,
        description="records per `consume()` call (never more than the room left under "
        "`delivery.max_buffered_records`)",
    )

    @field_validator("client")
    @classmethod
    def _no_secrets_or_owned_keys(cls, client: dict[str, Any]) -> dict[str, Any]:
        for key in client:
            if "password" in key or key.endswith(".secret"):
                raise ValueError(
                    f"{key}: secrets are not taken from the file; "
                    "use sasl_password_env or sasl_password_file"
                )
            if key in OWNED_KEYS:
                raise ValueError(f"{key}: set by the connector; use {OWNED_KEYS[key]} instead")
        return client

    def admin_conf(self) -> dict[str, Any]:
        """Settings every client understands (AdminClient uses only these), secrets included.

        librdkafka's log lines go through ``logging`` (JSON in containers), not raw stderr.
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": logging.getLogger("librdkafka"),
            **{k: v for k, v in self.client.items() if k not in CONSUMER_ONLY | PRODUCER_ONLY},
        }
        password = read_secret(self.sasl_password_env, self.sasl_password_file, "kafka")
        if password is not None and "sasl.mechanism" in conf:
            conf["sasl.password"] = password.get_secret_value()
        return conf

    def consumer_conf(self) -> dict[str, Any]:
        """A consumer's settings: ``admin_conf()`` plus the consumer-only ``client`` keys."""
        conf = {**self.admin_conf(), "auto.offset.reset": "earliest"}
        return conf | {k: v for k, v in self.client.items() if k in CONSUMER_ONLY}

    def producer_conf(self) -> dict[str, Any]:
        """A producer's settings: ``admin_conf()`` plus the producer-only ``client`` keys."""
        return self.admin_conf() | {k: v for k, v in self.client.items() if k in PRODUCER_ONLY}

    def member_conf(self) -> dict[str, Any]:
        """``group.id``, and ``group.instance.id`` when static membership is configured.

        Only for the consumer of ``run`` (the one group member per replica); raises
        ConfigError when the named environment variable is unset or empty.
        """
        conf: dict[str, Any] = {"group.id": self.group_id}
        if self.group_instance_id_env:
            value = os.environ.get(self.group_instance_id_env, "").strip()
            if not value:
                raise ConfigError(
                    f"kafka.group_instance_id_env: environment variable "
                    f"{self.group_instance_id_env} is not set (each replica needs its own "
                    "value, e.g. the pod name); set it or remove group_instance_id_env"
                )
            conf["group.instance.id"] = value
        return conf


class TopicSettings(_Section):
    name: str | None = Field(
        None, min_length=1, description="the topic's name (give `name` or `pattern`)"
    )
    pattern: str | None = Field(
        None,
        min_length=1,
        description="a regex: every matching topic is subscribed (librdkafka `^...`)",
    )
    decoder: Literal["confluent", "schemaless"] = Field(
        "confluent",
        description="`confluent`: Confluent wire format, schemas from the registry; "
        "`schemaless`: plain Avro with the writer schema in `schema`",
    )
    schema_path: Path | None = Field(
        None, alias="schema", description="writer schema `.avsc` for `schemaless` topics"
    )
    reader_schema: Path | None = Field(
        None, description="reader schema `.avsc` for schema evolution"
    )
    subject: str | None = Field(
        None,
        min_length=1,
        description="registry subject whose latest schema the mapping's record paths are "
        "checked against at start (default: <name>-value, TopicNameStrategy)",
    )

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
    url: str = Field(
        ...,
        pattern=r"^https?://",
        description="Confluent-compatible registry base URL (Confluent, Apicurio "
        "`/apis/ccompat/v7`, Karapace, Redpanda); the section is required for `confluent` "
        "topics",
    )
    username_env: str | None = Field(
        None, pattern=ENV_NAME, description="environment variable holding the HTTP Basic user"
    )
    password_env: str | None = Field(
        None, pattern=ENV_NAME, description="environment variable holding the HTTP Basic password"
    )
    timeout_seconds: float = Field(
        5.0, gt=0, description="per request; unreachable or 5xx pauses consumption and retries"
    )

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
        "cdp.browser-ids",
        min_length=1,
        description="compacted topic keeping visitor id → browser id, for mappings using "
        "`browser_id_for` ([mapping.md](mapping.md))",
    )
    create_topic: bool = Field(True, description="create it (compacted) when it is missing")
    partitions: int = Field(3, ge=1, le=10_000, description="when creating the topic")
    replication_factor: int = Field(
        -1, ge=-1, description="when creating the topic; -1: the broker's default"
    )
    max_entries: int = Field(
        1_000_000, ge=1, description="ids held in memory (LRU); evicted visitors get a new id"
    )
    timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="loading the topic at start, acknowledging a new id"
    )


class CdpSettings(_Section):
    dialect: Literal["asyncapi", "sitecore"] = Field(
        "asyncapi",
        description="payload models: `asyncapi` (the AsyncAPI spec) or `sitecore` (Sitecore "
        "data model 2.1)",
    )
    transport: Literal["post-basic", "post-events", "get-query"] | None = Field(
        None,
        description="`post-basic` (POST `/v1.2/event/create.json`, Basic auth; asyncapi's "
        "default), `post-events` (POST `/v1.2/events`, `client_key` in the body; sitecore's "
        "default), `get-query` (GET with `?client_key=…&message=…`; events whose URL would "
        "pass 8 KiB are dead-lettered). The keyed transports need no API token",
    )
    browser_ids: BrowserIdSettings = BrowserIdSettings()
    points_of_sale: list[str] = Field(
        default_factory=list,
        description="points of sale `cdp-connector check` probes with one event each (an "
        "unknown pos is accepted and silently dropped by Sitecore)",
    )
    region: Literal["eu", "us", "ap", "jp"] | None = Field(
        "eu", description="the Stream API's regional server (servers from the spec)"
    )
    base_url: str | None = Field(
        None, description="overrides the region: the sandbox, a proxy, a new region"
    )
    client_key_env: str | None = Field(
        "CDP_CLIENT_KEY",
        pattern=ENV_NAME,
        description="environment variable holding the client key",
    )
    client_key_file: Path | None = Field(
        None, description="mounted file holding the client key (wins over the variable)"
    )
    api_token_env: str | None = Field(
        "CDP_API_TOKEN",
        pattern=ENV_NAME,
        description="environment variable holding the API token (`post-basic` only)",
    )
    api_token_file: Path | None = Field(
        None, description="mounted file holding the API token (wins over the variable)"
    )
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="one whole request")
    http_client: Literal["builtin", "aiohttp"] = Field(
        "builtin",
        description="for every transport and browser ids: `builtin` (the connector's lean "
        "HTTP/1.1 client, about 4-6x less CPU per event; [benchmarks.md](benchmarks.md)) or "
        "`aiohttp`",
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
    max_attempts: int = Field(
        8,
        ge=1,
        le=1000,
        description="attempts for a retryable answer (network, timeout, 408, 429, 5xx) before "
        "`on_retries_exhausted`",
    )
    initial_backoff_seconds: float = Field(
        0.2, gt=0, description="first wait; exponential backoff with jitter, doubled per attempt"
    )
    max_backoff_seconds: float = Field(
        30.0, gt=0, description="ceiling of one wait, also of an honoured `Retry-After`"
    )
    max_elapsed_seconds: float = Field(300.0, gt=0, description="total backoff budget per event")


class CircuitSettings(_Section):
    failure_threshold: int = Field(
        20,
        ge=1,
        description="consecutive retryable failures that open the circuit (all workers wait; "
        "no retries are spent)",
    )
    open_seconds: float = Field(5.0, gt=0, description="first wait before a probe")
    max_open_seconds: float = Field(
        60.0, gt=0, description="ceiling of the wait, which doubles while probes fail"
    )


class DeliverySettings(_Section):
    ordering: Literal["key", "partition", "none"] = Field(
        "key",
        description="what is posted one after another, in offset order: `key` (records with "
        "the same guest key), `partition` (records of one partition), `none` (nothing: all "
        "concurrently)",
    )
    max_in_flight: int = Field(
        256, ge=1, le=10_000, description="concurrent requests (and HTTP connections)"
    )
    max_buffered_records: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="records held between poll and outcome; reaching it pauses the consumer",
    )
    max_run_ahead: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="how many offsets a partition may be read past its commit point before "
        "it is paused (also capped so its finished offsets fit the commit metadata)",
    )
    rate_limit_per_second: float | None = Field(
        None, gt=0, description="optional ceiling on events per second"
    )
    retry: RetrySettings = RetrySettings()
    circuit: CircuitSettings = CircuitSettings()
    on_retries_exhausted: Literal["dead_letter", "halt"] = Field(
        "dead_letter",
        description="`dead_letter` the record, or `halt` (stop delivering until restarted)",
    )
    auth_probe_seconds: float = Field(
        30.0, gt=0, description="how often a halted connector re-tries after 401/403"
    )


class DeadLetterSettings(_Section):
    """The dead-letter topic; ``run`` verifies it at start (connector.deadletter.ensure_topic)."""

    topic: str = Field(
        "clickstream.dlq",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",  # Kafka's rule for topic names
        description="where failed records go, with headers saying where and why",
    )
    create_topic: bool = Field(
        True,
        description="`run` creates the topic at start when it is missing (as Kafka Connect "
        "does); `false`, or a broker that refuses (ACLs, replication factor), stops `run` "
        "with exit code 2 and says why. `check` asks the broker to validate the creation",
    )
    partitions: int = Field(1, ge=1, le=10_000, description="when creating the topic")
    replication_factor: int = Field(
        -1, ge=-1, description="when creating the topic; -1: the broker's default"
    )


class ObservabilitySettings(_Section):
    host: str = Field(
        "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the pod
        description="address of `/healthz`, `/readyz` and `/metrics`",
    )
    port: int = Field(9400, ge=0, le=65535, description="their port; 0 picks a free one")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`json` lines, or `text`; `auto`: json when not on a terminal"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="the lowest level logged"
    )


class ShutdownSettings(_Section):
    drain_timeout_seconds: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="on SIGTERM/SIGINT and on revoke: how long the requests in flight may "
        "take to answer before the commit; records not posted yet are not waited for (the "
        "next owner reads them). SIGTERM → exit takes at most this plus a few seconds; a "
        "second signal exits at once",
    )


class Settings(_Section):
    """The whole connector.yaml."""

    kafka: KafkaSettings = KafkaSettings()
    topics: list[TopicSettings] = Field(
        ..., min_length=1, description="one entry per topic: `name` **or** `pattern`"
    )
    schema_registry: RegistrySettings | None = None
    mapping: Path = Field(description="the mapping rules file ([mapping.md](mapping.md))")
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


def format_validation_error(source: str, exc: ValidationError, text: str | None = None) -> str:
    """One line per problem: file and line, dotted field path, what was expected, what was
    given, and for an unknown key the nearest known one. ``text``: the file's YAML, for
    the line numbers (without it, lines are left out)."""
    from connector.mapping.source import parse_yaml  # the YAML reader that keeps lines

    root = parse_yaml(text, source) if text else None
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        where = f"{source}:{root.line_of(loc)}" if root is not None else source
        path = ".".join(str(p) for p in loc) or "(top level)"
        given = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.80})"
        hint = _did_you_mean(loc) if err["type"] == "extra_forbidden" else ""
        lines.append(f"  {where}: {path}: {err['msg']}{given}{hint}")
    return "\n".join(lines)


def _did_you_mean(loc: tuple[str | int, ...]) -> str:
    """`` (did you mean X?)`` for an unknown key close to a field of its section."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue  # an item of a list of sections: same model
        info = next((i for n, i in model.model_fields.items() if (i.alias or n) == part), None)
        args = get_args(info.annotation) if info is not None else ()
        nested = [a for a in (info.annotation if info else None, *args) if _is_model(a)]
        nested += [b for a in args for b in get_args(a) if _is_model(b)]  # list[X] | None
        if not nested:
            return ""
        model = nested[0]
    names = [i.alias or n for n, i in model.model_fields.items() if not i.exclude]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def load_config(path: str | Path) -> Settings:
    """Read and validate connector.yaml; raise ConfigError naming file, field and expectation."""
    path = Path(path)
    try:
        text = path.read_text()
        raw = yaml.safe_load(text)
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
        raise ConfigError(format_validation_error(str(path), exc, text)) from exc
    if not settings.mapping.is_file():
        raise ConfigError(f"{path}: mapping: file not found: {settings.mapping}")
    return settings
