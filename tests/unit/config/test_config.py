"""connector.yaml: validated once; errors name the file, the field and the expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import load_config
from connector.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mappings.yaml").write_text("rules: []\n")
    path = tmp_path / "connector.yaml"
    path.write_text(text)
    return path


MINIMAL = """
topics: [{name: clicks, decoder: schemaless, schema: clicks.avsc}]
mapping: mappings.yaml
"""


def test_shipped_example_config_loads() -> None:
    settings = load_config(REPO / "config" / "connector.yaml")
    assert settings.topics[0].name == "clickstream"
    assert settings.mapping == REPO / "config" / "mappings.example.yaml"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, MINIMAL))
    assert settings.mapping == tmp_path / "mappings.yaml"
    assert settings.topics[0].schema_path == tmp_path / "clicks.avsc"


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, MINIMAL))
    assert settings.delivery.ordering == "key"
    assert settings.delivery.max_in_flight == 256
    assert settings.dead_letter.topic == "clickstream.dlq"


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ("delivery: {max_in_flight: 0}", "delivery.max_in_flight", "greater than or equal to 1"),
        ("delivery: {ordering: random}", "delivery.ordering", "'key', 'partition' or 'none'"),
        ("cdp: {region: mars}", "cdp.region", "'eu', 'us', 'ap' or 'jp'"),
        ("cdp: {base_url: 'ftp://x'}", "cdp", "http(s) URL"),
        ("delivery: {max_inflight: 3}", "delivery.max_inflight", "Extra inputs are not permitted"),
        ("kafka: {client: {sasl.password: x}}", "kafka", "secrets are not taken from the file"),
        (
            "kafka: {client: {group.id: x}}",
            "kafka.client",
            "group.id: set by the connector; use kafka.group_id instead",
        ),
        (
            "kafka: {client: {group.instance.id: x}}",
            "kafka.client",
            "use kafka.group_instance_id_env",
        ),
        (
            "kafka: {client: {enable.auto.commit: true}}",
            "kafka.client",
            "committed only after each",
        ),
        ("dead_letter: {topic: 'bad topic'}", "dead_letter.topic", "should match pattern"),
    ],
)
def test_bad_values_name_file_field_and_expectation(
    tmp_path: Path, extra: str, field: str, expected: str
) -> None:
    path = write(tmp_path, MINIMAL + extra + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f": {field}" in message
    assert expected in message


def test_topic_needs_a_name_or_a_pattern(tmp_path: Path) -> None:
    path = write(tmp_path, "topics: [{decoder: confluent}]\nmapping: mappings.yaml\n"
                 "schema_registry: {url: 'http://r'}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"topics\.0: .*exactly one of 'name' or 'pattern'"):
        load_config(path)


def test_confluent_topics_need_a_registry(tmp_path: Path) -> None:
    path = write(tmp_path, "topics: [{name: a}]\nmapping: mappings.yaml\n")
    with pytest.raises(ConfigError, match=r"schema_registry\.url is required"):
        load_config(path)


def test_missing_mapping_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("mappings.yaml", "nope.yaml"))
    with pytest.raises(ConfigError, match=r"mapping: file not found: .*nope\.yaml"):
        load_config(path)


def test_not_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "topics: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_secrets_come_from_env_or_files_and_never_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("file-token\n")
    path = write(tmp_path, MINIMAL + "cdp: {api_token_file: token}\n")
    monkeypatch.setenv("CDP_CLIENT_KEY", "env-key")
    settings = load_config(path)

    assert settings.cdp.client_key().get_secret_value() == "env-key"
    assert settings.cdp.api_token().get_secret_value() == "file-token"
    assert "file-token" not in repr(settings.cdp.api_token())


def test_missing_secret_says_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CDP_API_TOKEN", raising=False)
    settings = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"cdp\.api_token: no value in environment variable"):
        settings.cdp.api_token()


def test_client_keys_go_only_to_the_clients_that_understand_them(tmp_path: Path) -> None:
    extra = ("kafka: {client: {session.timeout.ms: 6000, auto.offset.reset: latest, "
             "linger.ms: 50, security.protocol: PLAINTEXT}}\n")  # fmt: skip
    kafka = load_config(write(tmp_path, MINIMAL + extra)).kafka

    consumer, producer, admin = kafka.consumer_conf(), kafka.producer_conf(), kafka.admin_conf()
    assert consumer["session.timeout.ms"] == 6000
    assert consumer["auto.offset.reset"] == "latest"  # the default is only a default
    assert "linger.ms" not in consumer
    assert producer["linger.ms"] == 50
    assert "session.timeout.ms" not in producer
    assert "auto.offset.reset" not in producer
    assert {"session.timeout.ms", "linger.ms"}.isdisjoint(admin)
    for conf in (consumer, producer, admin):
        assert conf["security.protocol"] == "PLAINTEXT"
        assert conf["bootstrap.servers"] == "127.0.0.1:9092"
        assert "group.id" not in conf  # only member_conf() joins the group


def test_offset_reset_defaults_to_earliest(tmp_path: Path) -> None:
    kafka = load_config(write(tmp_path, MINIMAL)).kafka
    assert kafka.consumer_conf()["auto.offset.reset"] == "earliest"


def test_fetch_queue_backoff_defaults_to_10_ms_and_can_be_set(tmp_path: Path) -> None:
    kafka = load_config(write(tmp_path, MINIMAL)).kafka
    assert kafka.consumer_conf()["fetch.queue.backoff.ms"] == 10
    assert "fetch.queue.backoff.ms" not in kafka.producer_conf()
    extra = "kafka: {client: {fetch.queue.backoff.ms: 500}}\n"
    tuned = load_config(write(tmp_path, MINIMAL + extra)).kafka
    assert tuned.consumer_conf()["fetch.queue.backoff.ms"] == 500


def test_static_membership_reads_the_instance_id_from_the_named_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL + "kafka: {group_id: g, group_instance_id_env: POD_NAME}\n")
    kafka = load_config(path).kafka
    monkeypatch.setenv("POD_NAME", "cdp-connector-7d9f-x2x4q")
    assert kafka.member_conf() == {"group.id": "g", "group.instance.id": "cdp-connector-7d9f-x2x4q"}
    assert "group.instance.id" not in kafka.consumer_conf()  # replay, browser ids: no member


def test_static_membership_without_the_variable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL + "kafka: {group_instance_id_env: POD_NAME}\n")
    kafka = load_config(path).kafka
    monkeypatch.delenv("POD_NAME", raising=False)
    with pytest.raises(ConfigError, match=r"kafka\.group_instance_id_env: environment variable "
                       r"POD_NAME is not set"):  # fmt: skip
        kafka.member_conf()


def test_dynamic_membership_by_default(tmp_path: Path) -> None:
    kafka = load_config(write(tmp_path, MINIMAL)).kafka
    assert kafka.member_conf() == {"group.id": "cdp-connector"}


def test_role_tables_do_not_overlap() -> None:
    from connector.config.librdkafka_keys import CONSUMER_ONLY, OWNED_KEYS, PRODUCER_ONLY

    assert CONSUMER_ONLY.isdisjoint(PRODUCER_ONLY)
    assert {"session.timeout.ms", "auto.offset.reset", "max.poll.interval.ms"} <= CONSUMER_ONLY
    assert {"linger.ms", "acks", "compression.type"} <= PRODUCER_ONLY
    assert "group.instance.id" in OWNED_KEYS


def test_each_problem_names_its_line_and_an_unknown_key_gets_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "delivery:\n  ordering: key\n  max_inflight: 3\n"
                 "cdp:\n  region: mars\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:6: delivery.max_inflight: Extra inputs are not permitted" in message
    assert "(did you mean max_in_flight?)" in message
    assert f"{path}:8: cdp.region: Input should be 'eu', 'us', 'ap' or 'jp'" in message


def test_a_problem_inside_a_list_of_sections_names_the_item_line(tmp_path: Path) -> None:
    text = ("topics:\n  - name: a\n    decoder: schemaless\n    schema: a.avsc\n"
            "  - name: b\n    decodr: confluent\nmapping: mappings.yaml\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert ":6: topics.1.decodr: Extra inputs are not permitted" in str(info.value)
    assert "(did you mean decoder?)" in str(info.value)


def test_the_sitecore_dialect_needs_the_tenants_points_of_sale(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("rules: [{name: x, skip: true}]\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "topics: [{name: t, decoder: schemaless, schema: s.avsc}]\nmapping: m.yaml\n"
        "cdp: {dialect: sitecore, base_url: 'http://x'}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert f"{config}:3: cdp: points_of_sale is required in the sitecore dialect" in str(info.value)
    config.write_text(config.read_text().replace("}\n", ", points_of_sale: [shop.example]}\n"))
    assert load_config(config).cdp.points_of_sale == ["shop.example"]
