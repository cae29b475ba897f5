"""`ssl-coded train RECIPE`: a classifier (ERM, mixup, coded-smoothing, ...), optionally compared and attacked."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a classifier (ERM, mixup or coded-smoothing) from a supervised recipe",
        description="Train a classifier from a supervised recipe, e.g. `ssl-coded train supervised-digits "
        "method.regularizer=coded`; --compare trains ERM, mixup and coded side by side, --attack then runs "
        "the attack harness (with randomized coded inference) on them.",
    )
    train.add_argument("recipe", help="recipe name or path to a YAML file")
    train.add_argument("overrides", nargs="*", help="key=value overrides (e.g. coded.weight=1.0)")
    train.add_argument("--resume", action="store_true", help="continue unfinished runs, keep finished ones")
    train.add_argument(
        "--compare", action="store_true", help="train erm, mixup and coded into <name>/{erm,mixup,coded}"
    )
    train.add_argument(
        "--regularizers",
        help="with --compare: the regularizers trained side by side, comma-separated (default erm,mixup,coded; "
        "also manifold_mixup, noise)",
    )
    train.add_argument("--attack", action="store_true", help="then attack the trained models (and RCI)")
    train.add_argument("--overwrite", action="store_true", help="replace what earlier runs left under their names")
    train.add_argument("--verbose", action="store_true", help="show the frameworks' own messages and warnings")


def run(args: argparse.Namespace) -> None:
    from ssl_coded.commands import run_train

    run_train(
        args.recipe,
        args.overrides,
        resume=args.resume,
        compare=args.compare,
        attack=args.attack,
        regularizers=tuple(r.strip() for r in args.regularizers.split(",") if r.strip())
        if args.regularizers is not None
        else None,
        overwrite=args.overwrite,
        verbose=args.verbose,
        command=["ssl-coded", *args.argv],
    )
