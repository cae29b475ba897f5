"""`ssl-coded study FILE`: recipes x settings x seeds, resumable, one table with mean +- std."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    study = commands.add_parser(
        "study",
        help="run a study: recipes x settings x seeds, resumable, one table with mean +- std",
        description="Run (or continue) a study file: every unfinished cell pretrains and evaluates in a child "
        "process; finished cells are kept. Writes results.md, results.csv, cells.csv and a plot per metric.",
    )
    study.add_argument("study", help="path to a study YAML file (see studies/)")
    study.add_argument("--summary", action="store_true", help="only rebuild the tables from finished cells")


def run(args: argparse.Namespace) -> None:
    from ssl_coded.study import load_study, run_study, study_root, summarise

    if args.summary:
        study_file = load_study(args.study)
        summarise(study_file, study_root(study_file))
    else:
        run_study(args.study)
