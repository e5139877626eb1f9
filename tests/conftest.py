"""Fixtures shared by the whole suite: real services started once per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from scripts.services import kafka
from scripts.services.kafka_cluster import Cluster, start_cluster

# CI is a cold machine with other work on it: a property is judged by what its examples
# check, not by how fast a loaded core runs one (the 200 ms default deadline failed there).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

# Fixtures of other services live in their own modules.
pytest_plugins = [
    "tests.fixtures_registry",
    "tests.fixtures_sandbox",
    "tests.fixtures_k8s",
    "tests.integration.connector_proc",
    "tests.integration.streams",
]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka.Broker]:
    """A real single-node Kafka broker on a free loopback port, for the whole session."""
    broker = kafka.start_broker(tmp_path_factory.mktemp("kafka"), partitions=3)
    yield broker
    broker.stop()


SASL_USER = kafka.SaslUser("cdp-connector", "scram-test-password-4b1d")


@pytest.fixture(scope="session")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka.Broker]:
    """A second broker whose client listener is SASL_SSL: SCRAM-SHA-512 (user ``SASL_USER``)
    over TLS with a CA made at start (``.sasl``: port, CA file, client settings). Its
    PLAINTEXT listener (``.bootstrap``) is for test setup and checks only. Started only
    by the tests that ask for it (≈15 s)."""
    broker = kafka.start_broker(tmp_path_factory.mktemp("kafka-sasl"), partitions=1,
                                heap="384m", sasl=SASL_USER)  # fmt: skip
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


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three Kafka nodes on loopback (replication factor 3, min.insync.replicas=2), for
    the whole session; started only when a test asks for it (the ``cluster`` tests)."""
    cluster = start_cluster(tmp_path_factory.mktemp("kafka-cluster"))
    yield cluster
    cluster.discard()
