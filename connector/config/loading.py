"""The whole connector.yaml (``Settings``) and its loading, validated once at start.

``load_config(path)`` returns ``Settings`` or raises ``ConfigError`` whose message
names the file, the line, the dotted field path and what was expected (for an
unknown key the nearest known one). Relative paths in the file (mapping, schemas,
secret files) are resolved against the file's folder.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from connector.config.base import Section
from connector.config.cdp import CdpSettings
from connector.config.delivery import DeadLetterSettings, DeliverySettings
from connector.config.kafka import KafkaSettings, RegistrySettings, TopicSettings
from connector.config.service import ObservabilitySettings, ShutdownSettings
from connector.errors import ConfigError
from connector.yaml_lines import parse_yaml

__all__ = ["Settings", "format_validation_error", "load_config"]


class Settings(Section):
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
        """The first ``topics`` entry that matches ``topic``; KeyError when none does
        (settle dead-letters such a record as ``NotConfigured``)."""
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
    cdp_files = ("client_key_file", "api_token_file", "proxy_username_file",
                 "proxy_password_file")  # fmt: skip
    for section, keys in (("kafka", ("sasl_password_file",)), ("cdp", cdp_files)):
        block = raw.get(section)
        if isinstance(block, dict):
            for key in keys:
                if key in block:
                    block[key] = fix(block[key])
    tls = (raw.get("cdp") or {}).get("tls") if isinstance(raw.get("cdp"), dict) else None
    if isinstance(tls, dict):
        for key in ("ca_file", "cert_file", "key_file"):
            if key in tls:
                tls[key] = fix(tls[key])


def format_validation_error(source: str, exc: ValidationError, text: str | None = None) -> str:
    """One line per problem: file and line, dotted field path, what was expected, what was
    given, and for an unknown key the nearest known one. ``text``: the file's YAML, for
    the line numbers (without it, lines are left out)."""
    root = parse_yaml(text, source) if text else None
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        where = f"{source}:{root.line_of(loc)}" if root is not None else source
        path = ".".join(str(p) for p in loc) or "(top level)"
        whole_section = err["type"] == "value_error" and isinstance(err.get("input"), dict)
        given = (
            "" if err["type"] == "missing" or whole_section else f" (got {err.get('input')!r:.80})"
        )
        hint = _did_you_mean(loc) if err["type"] == "extra_forbidden" else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"  {where}: {path}: {message}{given}{hint}")
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
