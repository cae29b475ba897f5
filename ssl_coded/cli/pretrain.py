"""`ssl-coded pretrain RECIPE [key=value ...]`: pretrain an encoder from a recipe."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    pretrain = commands.add_parser(
        "pretrain",
        help="pretrain an encoder from a recipe",
        description="Pretrain an encoder from a recipe (a name from `ssl-coded recipes` or a YAML path), "
        "with key=value overrides, e.g. `ssl-coded pretrain simclr-digits coded.enabled=true trainer.max_epochs=5`.",
    )
    pretrain.add_argument("recipe", help="recipe name or path to a YAML file")
    pretrain.add_argument("overrides", nargs="*", help="key=value overrides (e.g. trainer.devices=2)")
    pretrain.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    pretrain.add_argument(
        "--compare", action="store_true", help="also train the same recipe with coded-smoothing off (or on) and compare"
    )
    pretrain.add_argument("--overwrite", action="store_true", help="replace what an earlier run left under its name")
    pretrain.add_argument("--verbose", action="store_true", help="show the frameworks' own messages and warnings")


def run(args: argparse.Namespace) -> None:
    from ssl_coded.commands import run_pretrain

    run_pretrain(
        args.recipe,
        args.overrides,
        resume=args.resume,
        compare=args.compare,
        overwrite=args.overwrite,
        verbose=args.verbose,
        command=["ssl-coded", *args.argv],
    )
