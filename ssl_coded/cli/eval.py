"""`ssl-coded eval knn|linear|knn-sweep|fewshot|all ENCODER...`: encoders from anywhere, by the field's
protocols, beside the floors."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ssl_coded.cli.common import DEVICE_HELP

# the names on ssl_coded.eval.protocols.PROTOCOLS (tests/cli checks they agree); not imported, so that
# `ssl-coded eval --help` and its refusals come back without the evaluation's frameworks
PROTOCOL_NAMES = ("knn", "linear", "knn-sweep", "fewshot")
IMAGE_PROTOCOL_NAMES = ("probe-images", "finetune")  # ssl_coded.eval.protocols.IMAGE_PROTOCOLS
ALL = ("knn", "linear")  # what `all` runs: the registry's ANCHORS; the sweep and few-shot are asked for by name


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="evaluate encoders from anywhere: kNN and retrieval, linear probe, kNN sweep, few-shot, beside the floors",
        description="Evaluate encoders: ssl-coded runs or checkpoints, or torchvision:NAME, timm:NAME, "
        "module.path:callable with --weights (a state_dict or a lightly / solo-learn / Lightning checkpoint), e.g. "
        "`ssl-coded eval all torchvision:resnet18 --weights w.pt --dataset name=imagefolder root=DIR image_size=32`. "
        "`all` runs knn and linear; knn-sweep chooses k and T on validation, fewshot probes 1% and 10% of the "
        "labels over several draws, probe-images trains heads on augmented images (DINOv2), finetune the whole "
        "encoder, robust attacks the linear probe through the encoder. Writes results.json, results-eval.md and "
        "plots into --out (default: the run "
        "directory, or eval-runs/<name>) and prints one table with a row per encoder and floor.",
    )
    evaluate.add_argument("protocol", choices=(*PROTOCOL_NAMES, *IMAGE_PROTOCOL_NAMES, "all", "robust"))
    evaluate.add_argument(
        "encoders",
        nargs="+",
        metavar="ENCODER",
        help="run directory, checkpoint, torchvision:NAME, timm:NAME, module:fn",
    )
    evaluate.add_argument(
        "--dataset", nargs="*", default=[], metavar="KEY=VALUE", help="data settings, e.g. name=imagefolder root=/data"
    )
    evaluate.add_argument("--weights", metavar="FILE", help="weights of a torchvision:/timm:/module: encoder")
    evaluate.add_argument("--prefix", help="prefix of the encoder's keys in --weights (default: found automatically)")
    evaluate.add_argument(
        "--normalize",
        metavar="imagenet|dataset|none|M1,M2,M3:S1,S2,S3",
        help="mean/std of a foreign encoder's input (default: imagenet); runs use their stored ones",
    )
    evaluate.add_argument("--out", metavar="DIR", help="where results, feature caches and plots go")
    evaluate.add_argument("--device", default="auto", help=DEVICE_HELP)
    evaluate.add_argument("--batch-size", type=int, default=256, help="images per encoder call (default 256)")
    evaluate.add_argument("--workers", type=int, default=0, help="DataLoader workers that load and decode images")
    evaluate.add_argument("--no-floors", action="store_true", help="skip the raw-pixel and random-init rows")
    evaluate.add_argument(
        "--index",
        choices=("exact", "flat", "ivf"),
        default="exact",
        help="kNN search: exact (the project's certified search), flat (FAISS fp32), ivf (reports its recall)",
    )
    evaluate.add_argument(
        "--probe",
        choices=("lbfgs", "sgd"),
        default="lbfgs",
        help="linear probe: L-BFGS (C on validation) or SGD (lr on validation)",
    )
    evaluate.add_argument("--knn-k", type=numbers(int), metavar="K,K,...", help="knn-sweep's k (default 10,20,100,200)")
    evaluate.add_argument(
        "--knn-t", type=numbers(float), metavar="T,T,...", help="knn-sweep's T (default 0.02,0.05,0.07,0.1,0.2)"
    )
    evaluate.add_argument(
        "--fewshot", type=numbers(float), metavar="F,F,...", help="fewshot's fractions of the labels (default 0.01,0.1)"
    )
    evaluate.add_argument("--draws", type=int, default=5, help="fewshot's seeded draws per fraction (default 5)")
    images = evaluate.add_argument_group("probe-images and finetune: trained through the encoder on augmented images")
    images.add_argument(
        "--finetune-lr", type=numbers(float), metavar="LR,LR,...", help="finetune's lr grid (default 0.001,0.01,0.1)"
    )
    images.add_argument("--epochs", type=int, default=5, help="epochs of probe-images and finetune (default 5)")
    images.add_argument(
        "--augment", choices=("crop", "crop-flip", "none"), default="crop", help="their augmentation (default crop)"
    )
    robust = evaluate.add_argument_group("robust: the linear probe attacked through the encoder (torchattacks)")
    robust.add_argument(
        "--eps", type=numbers(float), metavar="E,E,...", help="L-inf radii on [0, 1] pixels (0.02,0.05,0.1)"
    )
    robust.add_argument("--examples", type=int, default=400, help="seeded test images attacked (default 400)")
    robust.add_argument("--steps", type=int, default=10, help="PGD and APGD steps (default 10)")
    robust.add_argument("--square-queries", type=int, default=100, help="Square's query budget (default 100)")
    robust.add_argument("--no-standard", action="store_true", help="skip torchattacks' APGD-CE, APGD-DLR, Square")
    evaluate.add_argument(
        "--sgd-lr", type=numbers(float), metavar="LR,LR,...", help="--probe sgd's lr grid (default 0.001-1.0)"
    )


def numbers(kind: type) -> Callable[[str], tuple]:
    """An argparse type: comma-separated numbers of `kind` (an argparse error names the bad one)."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {kind.__name__}s") from None

    return parse


def run(args: argparse.Namespace) -> None:
    from ssl_coded.commands import run_eval
    from ssl_coded.eval.settings import EvalSettings

    if args.protocol == "robust":
        return run_robust(args)

    settings = EvalSettings(
        protocols=ALL if args.protocol == "all" else (args.protocol,),
        floors=not args.no_floors,
        index_kind=args.index,
        probe=args.probe,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.workers,
        fewshot_draws=args.draws,
        image_epochs=args.epochs,
        image_augment=args.augment,
        **{
            name: value
            for name, value in {
                "knn_ks": args.knn_k,
                "knn_temperatures": args.knn_t,
                "fewshot_fractions": args.fewshot,
                "sgd_lrs": args.sgd_lr,
                "finetune_lrs": args.finetune_lr,
            }.items()
            if value is not None
        },
    )
    run_eval(args.encoders, settings, args.dataset, args.weights, args.prefix, args.normalize, args.out)


def run_robust(args: argparse.Namespace) -> None:
    from ssl_coded.attacks import attack_encoder
    from ssl_coded.errors import ConfigError
    from ssl_coded.eval.robustness.harness import AttackSettings

    if len(args.encoders) != 1:
        raise ConfigError(f"eval robust attacks one encoder at a time; got {len(args.encoders)}")
    eps = list(args.eps or (0.02, 0.05, 0.1))
    if not all(0 < e <= 1 for e in eps) or args.examples < 1 or args.steps < 1 or args.square_queries < 1:
        raise ConfigError(
            "--eps must be in (0, 1] (L-inf on [0, 1] pixels); --examples, --steps, --square-queries >= 1"
        )
    cfg = AttackSettings(
        eps=eps,
        steps=args.steps,
        square_queries=args.square_queries,
        num_examples=args.examples,
        standard=not args.no_standard,
        rci=False,
    )
    attack_encoder(
        args.encoders[0],
        cfg,
        data=args.dataset,
        weights=args.weights,
        prefix=args.prefix,
        normalize=args.normalize,
        out_dir=args.out,
        device=args.device,
        floors=not args.no_floors,
        batch_size=min(args.batch_size, 128),
    )
