"""The `ssl-coded` command line: one module per subcommand, each thin (its parser, then a call into the
library and a report). Bad input: one line on stderr, exit status 2; SIGINT / SIGTERM: one line, 130 / 143.

A subcommand's module imports nothing heavy at the top, so that building the parser (and `--help`)
stays fast; what it calls is imported when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from types import ModuleType

from ssl_coded.extras import MissingExtraError
from ssl_coded.notices import RunWarning
from ssl_coded.rundir import RunInterrupted, interruptible

# the subcommands, in the order `ssl-coded --help` lists them -> their module in this package
SUBCOMMANDS = {
    "pretrain": "pretrain",
    "recipes": "recipes",
    "train": "train",
    "attack": "attack",
    "attack-seeds": "attack_seeds",
    "eval": "eval",
    "study": "study",
    "export": "export",
    "embed": "embed",
    "runs": "runs",
}


def subcommand(name: str) -> ModuleType:
    """The module of a subcommand: `add_parser(commands)` and `run(args)`."""
    return importlib.import_module(f"{__name__}.{SUBCOMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssl-coded", description="Coded-smoothing for self-supervised learning.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        subcommand(name).add_parser(commands)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Options anywhere, also after the positional overrides (`train RECIPE --compare seed=0 --attack`):
    argparse's intermixed parsing, per subcommand (it does not take subparsers itself)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if not argv or argv[0] not in commands.choices:
        return parser.parse_args(argv)  # --help, or an unknown command: argparse's own message
    args = commands.choices[argv[0]].parse_intermixed_args(argv[1:])
    args.command = argv[0]
    return args


def show_run_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings about the run as one line each; others as Python shows them."""
    if issubclass(category, RunWarning):
        print(f"ssl-coded: warning: {message}", file=file or sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    args.argv = argv  # the command as given, for the records a subcommand writes
    previous, warnings.showwarning = warnings.showwarning, show_run_warning
    try:
        with interruptible():
            subcommand(args.command).run(args)
    except (ValueError, OSError, MissingExtraError) as error:  # OSError: e.g. an unwritable output folder
        message = str(error)
        if isinstance(error, OSError) and error.filename and error.strerror:
            message = f"{error.strerror}: {error.filename}"
        print(f"ssl-coded: error: {message}", file=sys.stderr)
        return 2
    except RunInterrupted as interrupted:  # SIGINT / SIGTERM: one line, what was kept, 130 / 143
        print(f"ssl-coded: {interrupted.message()}{resume_hint(argv, interrupted)}", file=sys.stderr)
        return interrupted.exit_status
    finally:
        warnings.showwarning = previous
    return 0


def resume_hint(argv: list[str], interrupted: RunInterrupted) -> str:
    """The command that continues an interrupted training, where it left a checkpoint to continue from."""
    if "--resume" not in interrupted.where:
        return ""
    return f": ssl-coded {' '.join(argv)}{'' if '--resume' in argv else ' --resume'}"
