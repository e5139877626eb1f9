"""The connector's configuration: one YAML file, validated once at start.

``load_config(path)`` returns ``Settings`` or raises ``ConfigError`` whose message
names the file, the dotted field path and what was expected. Secrets are never
in the file: they are read from environment variables or mounted files named by
``*_env`` / ``*_file`` fields, and held as ``SecretStr`` so they never print.
Relative paths in the file (mapping, schemas) are resolved against the file's folder.
Every field's ``description`` is its documentation: docs/configuration.md's field table
is generated from these models (scripts/config-reference).

The sections by concern, each a module: ``kafka`` (broker, topics read, schema
registry), ``cdp`` (the Stream API, browser ids), ``delivery`` (concurrency, retry,
circuit, dead letters), ``service`` (observability, shutdown), ``loading`` (the whole
file, its loading and its error messages); ``base`` is what they share. Import from
here: this package's ``__all__`` is the interface.
"""

from __future__ import annotations

from connector.config.base import read_secret
from connector.config.cdp import BrowserIdSettings, CdpSettings
from connector.config.delivery import (
    CircuitSettings,
    DeadLetterSettings,
    DeliverySettings,
    RetrySettings,
)
from connector.config.kafka import KafkaSettings, RegistrySettings, TopicSettings
from connector.config.loading import Settings, format_validation_error, load_config
from connector.config.service import ObservabilitySettings, ShutdownSettings

__all__ = [
    "BrowserIdSettings",
    "CdpSettings",
    "CircuitSettings",
    "DeadLetterSettings",
    "DeliverySettings",
    "KafkaSettings",
    "ObservabilitySettings",
    "RegistrySettings",
    "RetrySettings",
    "Settings",
    "ShutdownSettings",
    "TopicSettings",
    "format_validation_error",
    "load_config",
    "read_secret",
]
