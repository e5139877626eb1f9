"""The part of the CDP dialect the mapping compiler relies on.

``connector.cdp.dialect.Dialect`` satisfies this structurally; the mapping
package depends only on this protocol, so it can be tested with a small
dialect of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel

__all__ = ["DialectLike"]


class DialectLike(Protocol):
    """A set of CDP payload models, with validation and the exact serialization."""

    @property
    def name(self) -> str:
        """The dialect's name as the config spells it (``asyncapi``, ``sitecore``)."""
        ...

    @property
    def models(self) -> Mapping[str, type[BaseModel]]:
        """Models keyed by reserved event type, plus ``"CUSTOM"`` for any other name."""
        ...

    def model_for(self, event_type: str) -> type[BaseModel]:
        """The model for ``event_type``: its own, or the custom-event model."""
        ...

    def validate(self, payload: Mapping[str, Any]) -> BaseModel:
        """Validate a payload by its ``type``; raises pydantic.ValidationError."""
        ...

    def dump(self, model: BaseModel) -> bytes:
        """The compact JSON body to POST (no unset fields, no nulls)."""
        ...

    def encoder(self, event_type: str) -> Callable[[Mapping[str, Any]], bytes]:
        """``dump(validate(payload))`` for payloads of ``event_type``, its model chosen
        once: the compiler binds one per event of a rule. Raises what those raise."""
        ...
