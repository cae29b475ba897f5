"""`ssl-coded runs [DIR ...] [--table] [--csv FILE]`: every run directory found, its status, and one table."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser(
        "runs",
        help="list run directories (recipe, method, coded, status, best metric) or table their results",
        description="List every run directory under the folders given (default: runs): recipe, method, "
        "coded-smoothing on/off, status (running, finished, failed, interrupted, not started, replaced: from "
        "what the directory holds), epochs, best validation metric, last evaluation, run id. --table prints one "
        "table of their results.json rows instead; --csv also writes it as CSV.",
    )
    runs.add_argument("folders", nargs="*", default=["runs"], metavar="DIR", help="folders holding run directories")
    runs.add_argument("--table", action="store_true", help="one table of the runs' evaluation results")
    runs.add_argument("--csv", metavar="FILE", help="with --table: also write the table as CSV (a new file)")


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ssl_coded.errors import ConfigError
    from ssl_coded.io import write_text
    from ssl_coded.runs import find_runs, list_table, results_table

    if args.csv and not args.table:
        raise ConfigError("--csv writes the --table; add --table")
    if args.csv and Path(args.csv).exists():
        raise ConfigError(f"{args.csv} exists; give a new file for --csv")
    found = list(find_runs(Path(folder) for folder in args.folders))
    if not found:
        raise ConfigError(f"no run directories (folders with config.yaml) under {', '.join(args.folders)}")
    if not args.table:
        print(list_table(found))
        return
    markdown, csv = results_table(found)
    print(markdown)
    if args.csv:
        write_text(args.csv, csv)
