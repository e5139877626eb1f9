"""The connector's exceptions, grouped by what the caller does about them.

    ConnectorError                 base; ``retriable`` says whether trying again can help
    ├── ConfigError                bad config or mapping at start-up → exit code 2
    ├── RecordError                this one record cannot be processed → dead-letter topic
    │   ├── DecodeError            bytes are not a valid Avro record for the schema
    │   ├── MappingError           no rule matched (when configured so) or a field failed
    │   └── DeliveryRejected       the CDP answered a permanent 4xx for this event
    ├── TransientError             not about one record (registry or CDP down) → retry
    └── FatalError                 the connector cannot go on safely → halt, commit nothing
        └── AuthError              the CDP answered 401/403: credentials are wrong

``RecordError`` carries ``stage`` (decode, map, validate, deliver), the name the
dead-letter headers use for where it failed.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    retriable: bool = False


class ConfigError(ConnectorError):
    """Configuration or mapping rules are invalid; the message names file and field."""


class RecordError(ConnectorError):
    """One record cannot be processed; it goes to the dead-letter topic."""

    stage: str = "unknown"

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


class DecodeError(RecordError):
    """The record's bytes are not valid for its schema (magic byte, schema id, body)."""

    stage = "decode"


class MappingError(RecordError):
    """The mapping rules could not turn the record into a valid event."""

    stage = "map"


class DeliveryRejected(RecordError):
    """The CDP refused the event for good (a 4xx other than 401/403/408/429)."""

    stage = "deliver"

    def __init__(self, message: str, *, status: int, rule: str | None = None) -> None:
        super().__init__(message, rule=rule)
        self.status = status


class TransientError(ConnectorError):
    """A dependency is unavailable for now; the same work may succeed later."""

    retriable = True


class FatalError(ConnectorError):
    """The connector must stop making progress (and commit nothing) until fixed."""


class AuthError(FatalError):
    """The CDP refused the credentials (401/403)."""
