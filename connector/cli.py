"""The ``cdp-connector`` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from connector import __version__
from connector.cdp.sandbox import cli as cdp_sandbox
from connector.commands import dry_run as dryrun
from connector.commands import mapping_tests, studio
from connector.errors import ConfigError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``cdp-connector`` command line: one subcommand per operator task, each
    bound to the function that runs it (``func``)."""
    parser = argparse.ArgumentParser(
        prog="cdp-connector",
        description="Kafka clickstream (Avro) to the Sitecore CDP Stream API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="consume, map and deliver (the long-running service)")
    run.add_argument("--config", required=True, help="connector YAML file")
    run.set_defaults(func=_run)
    check = sub.add_parser(
        "check",
        help="validate config and mapping, then reach the broker, topics, registry and CDP",
    )
    check.add_argument("--config", required=True, help="connector YAML file")
    check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds each check may take (default 10)"
    )
    check.set_defaults(func=_check)
    replay = sub.add_parser(
        "replay-dlq",
        help="re-run decode/map/deliver for the dead-letter topic's records (up to its end)",
        description="Read the dead-letter topic with its own consumer group up to the end "
        "as of start; deliver what now succeeds, write what fails again back with "
        "cdp.errors.replay.attempts + 1; commit only records with an outcome.",
    )
    replay.add_argument("--config", required=True, help="connector YAML file")
    replay.add_argument("--group", help="consumer group (default: <kafka.group_id>.dlq-replay)")
    replay.add_argument("--since", help="only dead letters written at/after this ISO 8601 time")
    replay.add_argument("--until", help="only dead letters written before this ISO 8601 time")
    replay.add_argument(
        "--filter",
        help="JMESPath over the record's headers (name -> text), e.g. "
        "\"cdp.errors.stage\" == 'deliver'; records not matching stay where they are",
    )
    replay.set_defaults(func=_replay)
    sandbox = sub.add_parser(
        "sandbox", help="serve a local CDP Stream API stand-in (auth, validation, faults)"
    )
    cdp_sandbox.add_arguments(sandbox)
    sandbox.set_defaults(func=_sandbox)
    dryrun.add_parser(sub)
    fields = sub.add_parser(
        "fields",
        help="the fields of every event type: required or optional, type, allowed values",
        description="Generated from the dialect's payload models (docs/mapping.md has the "
        "same tables). Nested fields are written order.referenceId, items[].sku.",
    )
    fields.add_argument("type", nargs="?", help="one event type (VIEW, ORDER_CHECKOUT, CUSTOM)")
    fields.add_argument("--dialect", default="asyncapi", help="asyncapi (default) or sitecore")
    fields.add_argument("--format", choices=("text", "markdown"), default="text")
    fields.set_defaults(func=_fields)
    mapping_tests.add_parser(sub)
    studio.add_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    from connector import pipeline
    from connector.config import load_config
    from connector.logs import setup_logging

    settings = load_config(args.config)
    setup_logging(settings.observability.log_format, settings.observability.log_level)
    return pipeline.main(settings)


def _check(args: argparse.Namespace) -> int:
    from connector.commands import check

    return check.main(args.config, args.timeout)


def _replay(args: argparse.Namespace) -> int:
    from connector import pipeline
    from connector.config import load_config
    from connector.logs import setup_logging
    from connector.source import replay_reader as replay

    options = replay.ReplayOptions(
        group=args.group,
        since=replay.parse_time(args.since) if args.since else None,
        until=replay.parse_time(args.until) if args.until else None,
        filter=args.filter,
    )
    settings = load_config(args.config)
    setup_logging(settings.observability.log_format, settings.observability.log_level)
    return pipeline.replay_main(settings, options)


def _fields(args: argparse.Namespace) -> int:
    from connector.commands import field_reference as reference

    dialect = dryrun.load_dialect(args.dialect)
    render = reference.markdown if args.format == "markdown" else reference.text
    print(render(dialect, args.type), end="")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    return cdp_sandbox.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point: run the chosen subcommand; its exit code, 2 for a
    ConfigError (message on stderr), 130 on Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"cdp-connector: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
