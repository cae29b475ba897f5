"""`ssl-coded attack-seeds RUN...`: supervised and attack results of several seeds, paired by seed."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    seeds = commands.add_parser(
        "attack-seeds",
        help="supervised and attack results of several seeds: mean +- std, paired differences",
        description="Summarise one `train RECIPE --compare --attack seed=k` directory per seed: writes seeds.md, "
        "seeds.csv and robustness-seeds.png (mean +- std over seeds, differences paired by seed).",
    )
    seeds.add_argument("runs", nargs="+", help="the --compare directories, one per seed")
    seeds.add_argument("--out", required=True, help="directory for seeds.md, seeds.csv and robustness-seeds.png")


def run(args: argparse.Namespace) -> None:
    from ssl_coded.eval.robustness.seeds import summarise_seeds

    print(summarise_seeds(args.runs, args.out))
