"""The studio's sample records from a real topic: the latest ones, decoded as ``run`` decodes
them, read without joining the group and without committing anything."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.commands.dry_run import as_decoded
from connector.commands.studio import session_from_args
from connector.decode.decoders import ConfluentAvroDecoder, RegistryClient
from connector.sample_clickstream import sample_records, writable
from scripts.services.registry import Registry
from tests.integration.connector_proc import committed
from tests.integration.kafka_helpers import create_topic, produce
from tests.unit.commands.studio_files import EXAMPLE, ROOT

pytestmark = pytest.mark.integration


def test_studio_reads_the_latest_records_without_joining_or_committing(
    bootstrap: str, schema_registry: Registry, unique: str, tmp_path: Path
) -> None:
    topic, group = f"studio-{unique}", f"connector-{unique}"
    create_topic(bootstrap, topic, partitions=2)
    records = sample_records(12, guests=4, seed=30)
    with SchemaRegistryClient({"url": schema_registry.url}) as client:
        schema = (ROOT / "avro" / "clickstream-v1.avsc").read_text()
        serialize = AvroSerializer(client, schema, to_dict=writable)
        context = SerializationContext(topic, MessageField.VALUE)
        values: list[tuple[bytes | None, bytes]] = [(None, serialize(r, context)) for r in records]
    produce(bootstrap, topic, values[:6], partition=0)
    produce(bootstrap, topic, values[6:], partition=1)
    shutil.copy(EXAMPLE, tmp_path / "mappings.yaml")
    config = tmp_path / "connector.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{bootstrap}', group_id: {group}}}\n"
        f"topics: [{{name: {topic}, decoder: confluent}}]\n"
        f"schema_registry: {{url: '{schema_registry.url}'}}\n"
        "mapping: mappings.yaml\n",
        encoding="utf-8",
    )
    args = argparse.Namespace(config=config, input=None, topic=None, count=4)

    session = session_from_args(args)

    # The last 4 of each partition's end, newest by timestamp: 4 of the 12, each as the run
    # decodes it (edited JSON goes back through the same decoder: the round trip is exact).
    assert len(session.records) == 4
    decoder = ConfluentAvroDecoder(RegistryClient(schema_registry.url))
    decoded = {r["event_id"]: r for r in (decoder.decode(v) for _, v in values)}
    for text in session.records:
        record = json.loads(text)
        assert as_decoded(record, session.schema) == decoded[record["event_id"]]
    tails = {r["event_id"] for r in records[2:6] + records[8:]}
    assert {json.loads(t)["event_id"] for t in session.records} <= tails
    answer = session.preview(session.load()["text"], session.records)
    assert answer["problems"] == []
    assert all("events" in r or "skipped_by" in r for r in answer["results"]), answer["results"]

    assert committed(bootstrap, group, topic, 2) == {}
    listed = AdminClient({"bootstrap.servers": bootstrap}).list_consumer_groups().result()
    groups = [g.group_id for g in listed.valid]
    assert group not in groups
    assert not [g for g in groups if g.startswith("cdp-connector-studio-")]
