"""`ssl-coded recipes`: the bundled recipes, one line each."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("recipes", help="list the bundled recipes")


def run(args: argparse.Namespace) -> None:
    from ssl_coded.training.config import available_recipes, resolve_recipe

    for name in available_recipes():
        first = resolve_recipe(name).read_text().splitlines()[0].lstrip("# ")
        print(f"{name:<28} {first}")
