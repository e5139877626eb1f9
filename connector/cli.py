"""The ``cdp-connector`` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from connector import __version__
from connector.cdp import sandbox as cdp_sandbox
from connector.errors import ConfigError
from connector.mapping import dryrun


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdp-connector",
        description="Kafka clickstream (Avro) to the Sitecore CDP Stream API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="consume, map and deliver (the long-running service)")
    run.add_argument("--config", required=True, help="connector YAML file")
    run.set_defaults(func=_run)
    sandbox = sub.add_parser(
        "sandbox", help="serve a local CDP Stream API stand-in (auth, validation, faults)"
    )
    cdp_sandbox.add_arguments(sandbox)
    sandbox.set_defaults(func=_sandbox)
    dryrun.add_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    from connector import pipeline
    from connector.config import load_config
    from connector.logs import setup_logging

    settings = load_config(args.config)
    setup_logging(settings.observability.log_format, settings.observability.log_level)
    return pipeline.main(settings)


def _sandbox(args: argparse.Namespace) -> int:
    return cdp_sandbox.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"cdp-connector: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
