"""The `ssl-coded` command line: parse, call, report."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from ssl_coded.demo import DemoConfig, run_demo


def _add_dataclass_options(parser: argparse.ArgumentParser, config_type: type) -> None:
    for field in fields(config_type):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default, dest=field.name
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssl-coded", description="Coded-smoothing for self-supervised learning.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="SimCLR on the embedded digits dataset, with and without coded-smoothing, compared"
    )
    _add_dataclass_options(demo, DemoConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            options = {f.name: getattr(args, f.name) for f in fields(DemoConfig)}
            run_demo(DemoConfig(**options))
    except (ValueError, FileNotFoundError) as error:
        print(f"ssl-coded: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
