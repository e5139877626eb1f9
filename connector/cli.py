"""The ``cdp-connector`` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from connector import __version__
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
    run.set_defaults(func=_not_yet)
    dryrun.add_parser(sub)
    return parser


def _not_yet(args: argparse.Namespace) -> int:
    print(f"cdp-connector {args.command}: not yet implemented", file=sys.stderr)
    return 1


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
