"""Session fixture: a real schema registry (Apicurio, Confluent-compatible API) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.services import registry


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry.Registry]:
    """Apicurio Registry with in-memory storage for the whole session; ``.url`` is ccompat."""
    service = registry.start_registry(tmp_path_factory.mktemp("registry"))
    yield service
    service.stop()
