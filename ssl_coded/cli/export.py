"""`ssl-coded export RUN [--format pt|safetensors] [--checkpoint best|last] [--out DIR]`: the encoder in its
library's format."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a run's encoder in its library's format (torchvision, timm) into RUN/export/",
        description="Write a run's backbone as a state_dict with the key names of the library that builds it "
        "(torchvision ResNets and ViT, timm models, the project's small CNN), with encoder.json (input size, "
        "channels, mean and std, the checkpoint and its hash) and a README of the lines that load it.",
    )
    export.add_argument("run", help="a pretraining run directory")
    export.add_argument("--format", default="pt", choices=("pt", "safetensors"), help="weights file format")
    export.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which checkpoint")
    export.add_argument("--out", help="the export folder (default: RUN/export)")


def run(args: argparse.Namespace) -> None:
    from ssl_coded.export import export_run, readme_path

    folder = export_run(args.run, format=args.format, checkpoint=args.checkpoint, out=args.out)
    print(f"exported: {folder} (load it as {readme_path(folder)} shows, or `ssl-coded eval knn {folder}`)")
