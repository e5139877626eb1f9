"""Fixtures shared by the whole suite: real services started once per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.services import kafka

# Fixtures of other services live in their own modules.
pytest_plugins = [
    "tests.fixtures_registry",
    "tests.fixtures_sandbox",
    "tests.fixtures_k8s",
    "tests.integration.connector_proc",
]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka.Broker]:
    """A real single-node Kafka broker on a free loopback port, for the whole session."""
    broker = kafka.start_broker(tmp_path_factory.mktemp("kafka"), partitions=3)
    yield broker
    broker.stop()


@pytest.fixture
def bootstrap(kafka_broker: kafka.Broker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def unique() -> str:
    """A short unique suffix so each test has its own topics and groups."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
