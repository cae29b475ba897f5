"""`ssl-coded attack RUN...`: attacks on trained classifiers, with and without randomized coded inference."""

from __future__ import annotations

import argparse

from ssl_coded.cli.common import DEVICE_HELP


def add_parser(commands: argparse._SubParsersAction) -> None:
    attack = commands.add_parser(
        "attack",
        help="attack trained classifiers, with and without randomized coded inference",
        description="FGSM, PGD, EOT-PGD, transfer from the surrogate and a Square-style search on a seeded test "
        "subset; writes attack.md, attack.json, fidelity.md and robustness.png.",
    )
    attack.add_argument("runs", nargs="+", help="classifier run directories (or a --compare parent directory)")
    attack.add_argument("--out", help="report directory (default: the run, or the runs' parent)")
    attack.add_argument("--set", nargs="*", default=[], metavar="attack.KEY=VALUE", help="e.g. attack.num_examples=100")
    attack.add_argument("--device", default="auto", help=DEVICE_HELP)


def run(args: argparse.Namespace) -> None:
    from ssl_coded.attacks import run_attack_command

    run_attack_command(args.runs, args.out, args.set, args.device)
