"""`ssl-coded embed ENCODER --out DIR [--dataset KEY=VALUE ...]`: the embeddings of a dataset, for downstream use."""

from __future__ import annotations

import argparse

from ssl_coded.cli.common import DEVICE_HELP


def add_parser(commands: argparse._SubParsersAction) -> None:
    embed = commands.add_parser(
        "embed",
        help="write the embeddings of a dataset (every split) with items.csv, provenance and a FAISS index",
        description="Write the features of every image of a dataset (every split by default) into "
        "OUT/embeddings.npy (memory-mapped while written), with OUT/items.csv (row, split, index, path, label), "
        "OUT/embed.json (what made them) and optionally a FAISS index, e.g. `ssl-coded embed runs/simclr-digits "
        "--out embeddings/digits` or `ssl-coded embed torchvision:resnet18 --weights w.pt --dataset "
        "name=imagefolder root=DIR --out e`. Run again after an interruption to continue.",
    )
    embed.add_argument(
        "encoder", metavar="ENCODER", help="run directory, export folder, checkpoint, torchvision:NAME, ..."
    )
    embed.add_argument("--out", required=True, metavar="DIR", help="the folder the embeddings go to")
    embed.add_argument(
        "--dataset", nargs="*", default=[], metavar="KEY=VALUE", help="data settings, e.g. name=imagefolder root=/data"
    )
    embed.add_argument("--split", default="train,val,test", help="the splits, comma-separated (default: all)")
    embed.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="stored precision")
    embed.add_argument("--normalize", action="store_true", help="L2-normalise each embedding before it is stored")
    embed.add_argument("--index", choices=("flat", "ivf"), help="also write a FAISS index (index.faiss)")
    embed.add_argument("--weights", metavar="FILE", help="weights of a torchvision:/timm:/module: encoder")
    embed.add_argument("--prefix", help="prefix of the encoder's keys in --weights (default: found automatically)")
    embed.add_argument("--device", default="auto", help=DEVICE_HELP)
    embed.add_argument("--batch-size", type=int, default=256, help="images per encoder call (default 256)")
    embed.add_argument("--workers", type=int, default=0, help="DataLoader workers that load and decode images")


def run(args: argparse.Namespace) -> None:
    from ssl_coded.embed import EmbedSettings, embed
    from ssl_coded.eval.features import resolve_device

    settings = EmbedSettings(
        splits=tuple(s.strip() for s in args.split.split(",") if s.strip()),
        dtype=args.dtype,
        normalize=args.normalize,
        index=args.index,
        batch_size=args.batch_size,
    )
    settings.check()  # before the encoder and the data load
    folder = embed(
        args.encoder,
        args.out,
        settings,
        data=args.dataset,
        weights=args.weights,
        prefix=args.prefix,
        device=resolve_device(args.device),
        num_workers=args.workers,
        command=["ssl-coded", *args.argv],
    )
    print(f"embeddings: {folder / 'embeddings.npy'} (items.csv, embed.json beside it)")
