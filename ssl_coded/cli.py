"""The `ssl-coded` command line: parse, call, report. Bad input: one line on stderr, exit status 2."""

from __future__ import annotations

import argparse
import sys
import warnings

from ssl_coded.extras import MissingExtraError
from ssl_coded.notices import RunWarning
from ssl_coded.rundir import RunInterrupted, interruptible

DEVICE_HELP = "auto (a GPU where there is one), cpu, cuda or cuda:N"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssl-coded", description="Coded-smoothing for self-supervised learning.")
    commands = parser.add_subparsers(dest="command", required=True)

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

    commands.add_parser("recipes", help="list the bundled recipes")

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

    seeds = commands.add_parser(
        "attack-seeds",
        help="supervised and attack results of several seeds: mean +- std, paired differences",
        description="Summarise one `train RECIPE --compare --attack seed=k` directory per seed: writes seeds.md, "
        "seeds.csv and robustness-seeds.png (mean +- std over seeds, differences paired by seed).",
    )
    seeds.add_argument("runs", nargs="+", help="the --compare directories, one per seed")
    seeds.add_argument("--out", required=True, help="directory for seeds.md, seeds.csv and robustness-seeds.png")

    evaluate = commands.add_parser(
        "eval",
        help="evaluate encoders from anywhere: kNN and retrieval, linear probe, beside the floors",
        description="Evaluate encoders: ssl-coded runs or checkpoints, or torchvision:NAME, timm:NAME, "
        "module.path:callable with --weights (a state_dict or a lightly / solo-learn / Lightning checkpoint), e.g. "
        "`ssl-coded eval all torchvision:resnet18 --weights w.pt --dataset name=imagefolder root=DIR image_size=32`. "
        "Writes results.json, results-eval.md and plots into --out (default: the run directory, or "
        "eval-runs/<name>) and prints one table with a row per encoder and floor.",
    )
    evaluate.add_argument("protocol", choices=("knn", "linear", "all"))
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
        "--probe", choices=("lbfgs", "sgd"), default="lbfgs", help="linear probe: L-BFGS (C on validation) or SGD"
    )

    study = commands.add_parser(
        "study",
        help="run a study: recipes x settings x seeds, resumable, one table with mean +- std",
        description="Run (or continue) a study file: every unfinished cell pretrains and evaluates in a child "
        "process; finished cells are kept. Writes results.md, results.csv, cells.csv and a plot per metric.",
    )
    study.add_argument("study", help="path to a study YAML file (see studies/)")
    study.add_argument("--summary", action="store_true", help="only rebuild the tables from finished cells")

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
    previous, warnings.showwarning = warnings.showwarning, show_run_warning
    try:
        with interruptible():
            run(args)
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


def run(args: argparse.Namespace) -> None:
    """Carry out one parsed command."""
    if args.command == "recipes":
        from ssl_coded.training.config import available_recipes, resolve_recipe

        for name in available_recipes():
            first = resolve_recipe(name).read_text().splitlines()[0].lstrip("# ")
            print(f"{name:<28} {first}")
    elif args.command == "eval":
        from ssl_coded.commands import run_eval

        if args.batch_size < 1 or args.workers < 0:
            raise ValueError("--batch-size must be >= 1 and --workers >= 0")
        run_eval(
            args.protocol,
            args.encoders,
            args.dataset,
            floors=not args.no_floors,
            index_kind=args.index,
            probe=args.probe,
            weights=args.weights,
            prefix=args.prefix,
            normalize=args.normalize,
            out=args.out,
            device=args.device,
            batch_size=args.batch_size,
            num_workers=args.workers,
        )
    elif args.command == "train":
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
        )
    elif args.command == "attack":
        from ssl_coded.commands import run_attack_command

        run_attack_command(args.runs, args.out, args.set, args.device)
    elif args.command == "attack-seeds":
        from ssl_coded.eval.robustness.seeds import summarise_seeds

        print(summarise_seeds(args.runs, args.out))
    elif args.command == "study":
        from ssl_coded.study import load_study, run_study, study_root, summarise

        if args.summary:
            study_file = load_study(args.study)
            summarise(study_file, study_root(study_file))
        else:
            run_study(args.study)
    elif args.command == "pretrain":
        from ssl_coded.commands import run_pretrain

        run_pretrain(
            args.recipe,
            args.overrides,
            resume=args.resume,
            compare=args.compare,
            overwrite=args.overwrite,
            verbose=args.verbose,
        )


if __name__ == "__main__":
    sys.exit(main())
