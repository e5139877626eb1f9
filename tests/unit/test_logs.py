"""RepeatFilter: one line per distinct Kafka client error per interval, whichever path
(librdkafka's own log, the connector's error_cb line) and client logged it."""

from __future__ import annotations

import logging

import pytest

from connector.logs import KAFKA_LOGGER, LIBRDKAFKA_LOGGER, RepeatFilter, setup_logging

REFUSED = "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def librdkafka(text: str) -> logging.LogRecord:
    """A record as confluent-kafka logs one of librdkafka's lines."""
    return logging.LogRecord(
        LIBRDKAFKA_LOGGER, logging.ERROR, "", 0, "%s [%s] %s",
        ("FAIL", "rdkafka#consumer-1", f"[thrd:127.0.0.1:9092/1]: {text}"), None,
    )  # fmt: skip


def ours(text: str) -> logging.LogRecord:
    return logging.LogRecord(
        KAFKA_LOGGER, logging.WARNING, "", 0, "Kafka client error: %s", (text,), None
    )


def test_both_paths_of_a_reconnect_failure_give_one_line_per_interval() -> None:
    clock = Clock()
    repeats = RepeatFilter(interval=10.0, clock=clock)
    passed: list[str] = []
    for second in range(25):  # a reconnect failure a second, each logged twice
        clock.now = float(second)
        for record in (
            librdkafka(f"{REFUSED} (after {second}ms in state CONNECT)"),
            ours(f"{REFUSED} (after {second}ms in state CONNECT, 2 identical error(s) suppressed)"),
        ):
            if repeats.filter(record):
                passed.append(record.getMessage())
    assert len(passed) == 3  # at 0 s, 10 s and 20 s
    assert passed[0].startswith("FAIL [rdkafka#consumer-1]")
    assert passed[1].endswith("(19 more in the last 10s)")
    assert passed[2].endswith("(19 more in the last 10s)")


def test_distinct_errors_each_get_their_line() -> None:
    repeats = RepeatFilter(interval=10.0, clock=Clock())
    assert repeats.filter(ours(REFUSED))
    assert repeats.filter(ours("1/1 brokers are down"))
    assert repeats.filter(ours(REFUSED.replace("9092/1", "9093/2")))
    assert not repeats.filter(ours(REFUSED))


def test_setup_logging_puts_one_filter_on_both_kafka_loggers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("text", "INFO")
        for _ in range(50):
            logging.getLogger(LIBRDKAFKA_LOGGER).error(
                "%s [%s] %s", "FAIL", "rdkafka#producer-2", f"[thrd:b]: {REFUSED}"
            )
            logging.getLogger(KAFKA_LOGGER).warning("Kafka client error: %s", REFUSED)
        lines = [line for line in capsys.readouterr().err.splitlines() if "refused" in line]
        assert len(lines) == 1, lines
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        for name in (LIBRDKAFKA_LOGGER, KAFKA_LOGGER):
            logging.getLogger(name).filters.clear()


def test_debug_output_is_never_held_back() -> None:
    repeats = RepeatFilter(interval=10.0, clock=Clock())
    debug = logging.LogRecord(
        LIBRDKAFKA_LOGGER, logging.DEBUG, "", 0, "%s [%s] %s", ("FETCH", "c", "same"), None
    )
    assert all(repeats.filter(debug) for _ in range(5))
