"""The sandbox's spec mode: validate event bodies with the AsyncAPI document's own schemas.

The pydantic models (``connector.cdp.asyncapi``) are what the connector sends
with; validating the sandbox's input with the same models would hide a model
bug. In this mode the sandbox checks each body with the JSON schema of the
message the document declares for its ``type`` (the message whose ``name`` is
the type, else ``CUSTOM``), with jsonschema and its format checks.

jsonschema is a dev extra, imported only when this mode is used: the sandbox
is a test tool, and the connector itself never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from connector.errors import ConfigError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["SpecValidator"]

_CUSTOM = "CUSTOM"


class SpecValidator:
    """One jsonschema validator per message of an AsyncAPI 2.x document."""

    def __init__(self, document: Path) -> None:
        try:
            import jsonschema  # a dev extra, needed only in this mode
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "the sandbox's --spec mode needs jsonschema (pip install 'cdp-connector[dev]')"
            ) from exc
        try:
            spec = yaml.safe_load(document.read_text(encoding="utf-8"))
            messages = spec["components"]["messages"]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise ConfigError(f"{document}: not an AsyncAPI document with messages") from exc
        cls = jsonschema.Draft202012Validator
        self._validators: dict[str, Validator] = {}
        for message in messages.values():
            # The document is the root so its "#/components/..." references resolve.
            schema = {**spec, **message["payload"]}
            self._validators[message["name"]] = cls(schema, format_checker=cls.FORMAT_CHECKER)
        if _CUSTOM not in self._validators:
            raise ConfigError(f"{document}: no {_CUSTOM} message")

    def errors(self, payload: dict[str, Any]) -> list[dict[str, str]]:
        """``[{"field", "message"}]`` for every schema error of ``payload`` in the document's
        order (base fields first); [] when valid. A missing field is named as the field."""
        event_type = payload.get("type")
        name = event_type if isinstance(event_type, str) else _CUSTOM
        validator = self._validators.get(name, self._validators[_CUSTOM])
        found: list[dict[str, str]] = []
        required_seen: set[tuple[object, ...]] = set()
        for error in validator.iter_errors(payload):
            path = [str(p) for p in error.absolute_path]
            required = error.validator_value if error.validator == "required" else None
            if isinstance(required, list) and isinstance(error.instance, dict):
                # jsonschema reports each missing name of one "required" list separately.
                where = (*path, "@", *error.absolute_schema_path)
                if where in required_seen:
                    continue
                required_seen.add(where)
                for missing in (n for n in required if n not in error.instance):
                    field = ".".join([*path, str(missing)])
                    found.append({"field": field, "message": f"{missing!r} is a required property"})
                continue
            found.append({"field": ".".join(path) or "body", "message": error.message})
        return found
