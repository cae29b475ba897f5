"""The supervised and attack results of several seeds: mean +- std, and differences paired by seed.

One `ssl-coded train RECIPE --compare --attack seed=k name=<name>-seed<k>` per seed makes one
directory per seed (erm/, mixup/, coded/ and the attack report). This reads their summaries and
`attack.json` files and writes, into `out`:
- `seeds.md`: test accuracy (full test split) and clean / plain / adaptive robust accuracy, mean
  +- std over seeds; the paired differences that matter (coded-smoothing against ERM and mixup, RCI
  against the same model served without it), mean +- std with the paired t-test's p-value; and each
  seed's verdict on RCI with its count of passed sanity checks;
- `seeds.csv`: one line per seed and model;
- `robustness-seeds.png`: adaptive robust accuracy against eps, mean +- std over seeds.

Each seed attacks its own seeded subset of test images, so differences are paired within a seed
(same images, same attacks) and seeds add image sampling to the spread.

Example:
    >>> summarise_seeds(["runs/sup-seed0", "runs/sup-seed1", "runs/sup-seed2"], "docs/sup-seeds")
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from ssl_coded.eval.robustness.harness import plot_accuracy_against_eps, verdict
from ssl_coded.eval.robustness.standard import STANDARD
from ssl_coded.eval.statistics import csv_text, format_difference, format_spread, paired_by_seed, spread

from ssl_coded.io import write_text
from ssl_coded.tables import markdown_table

# (row, model, baseline): a difference is model minus baseline on each seed's own images
COMPARISONS = (
    ("coded - erm", "coded", "erm"),
    ("coded - mixup", "coded", "mixup"),
    ("coded - noise", "coded", "noise"),
    ("mixup - erm", "mixup", "erm"),
    ("manifold_mixup - erm", "manifold_mixup", "erm"),
    ("noise - erm", "noise", "erm"),
    ("coded + RCI - coded (the defence's gain)", "coded + RCI", "coded"),
)


def load_seed(run: str | Path) -> dict[str, Any]:
    """One seed's figures, read from a `train --compare --attack` directory.

    Args:
        run: the directory holding `attack.json` and one run directory per regularizer.

    Returns:
        {"run", "seed", "n" (images attacked), "eps", "settings" (attack and RCI settings), "models":
        {model: {column: accuracy}}, "verdict" (the report's sentence on RCI), "checks" (passed, total)}.
    """
    run = Path(run)
    if not (run / "attack.json").is_file():
        raise FileNotFoundError(
            f"{run / 'attack.json'} does not exist; run `ssl-coded train RECIPE --compare --attack` into {run} first"
        )
    report = json.loads((run / "attack.json").read_text())
    eps = [f"{e:g}" for e in report["attack"]["eps"]]
    models: dict[str, dict[str, float]] = {}
    seeds = set()
    trained = model_runs(run, report)
    for name, result in report["results"].items():
        row = {"clean": result["clean"]}
        for e in eps:
            row |= {f"eps={e} {column}": value for column, value in result["eps"][e].items()}
        if name in trained:  # trained models; RCI has no run of its own
            row["test accuracy"] = json.loads((trained[name] / "summary.json").read_text())["test_accuracy"]
            seeds.add(recipe_seed(trained[name] / "config.yaml"))
        models[name] = row
    if len(seeds) != 1:
        raise ValueError(f"{run}: its models were trained with seeds {sorted(seeds)}; one --compare run per seed")
    checks = {n: [(c["check"], c["passed"], c["detail"]) for c in items] for n, items in report["checks"].items()}
    n = report.get("num_attacked", report["attack"]["num_examples"])  # reports before num_attacked: the setting
    return {
        "run": str(run),
        "seed": seeds.pop(),
        "n": n,
        "eps": eps,
        "settings": json.dumps({"attack": report["attack"], "inference": report.get("inference")}, sort_keys=True),
        "models": models,
        "verdict": verdict(report["results"], report["attack"]["eps"], checks, n),
        "checks": (sum(p for items in checks.values() for _, p, _ in items), sum(map(len, checks.values()))),
    }


def model_runs(run: Path, report: dict[str, Any]) -> dict[str, Path]:
    """Each attacked model's run directory: `<run>/<regularizer>` (a `--compare` directory) or, for runs
    attacked where they lie (e.g. a study's cells), the directories the report lists."""
    found = {name: run / name for name in report["results"] if (run / name / "summary.json").is_file()}
    for listed in map(Path, report.get("runs", [])):
        config = listed / "config.yaml"
        if (listed / "summary.json").is_file() and config.is_file():
            regularizer = re.search(r"^  regularizer: (\S+)$", config.read_text(), flags=re.MULTILINE)
            if regularizer and regularizer.group(1) in report["results"]:
                found.setdefault(regularizer.group(1), listed)
    return found


def recipe_seed(config_yaml: Path) -> int:
    """The top-level `seed:` of a run's resolved recipe (read as text: evaluation does not parse recipes)."""
    found = re.search(r"^seed: (\d+)$", config_yaml.read_text(), flags=re.MULTILINE)
    if not found:
        raise ValueError(f"{config_yaml} has no top-level seed; is it a run's config.yaml?")
    return int(found.group(1))


def summarise_seeds(runs: list[str | Path], out: str | Path) -> str:
    """Summarise one `train --compare --attack` directory per seed.

    Args:
        runs: the directories, one per seed, in any order; every one attacked with the same settings
            and holding the same models.
        out: where seeds.md, seeds.csv and robustness-seeds.png go.

    Returns:
        The Markdown of seeds.md.
    """
    per_seed = sorted((load_seed(run) for run in runs), key=lambda s: s["seed"])
    seeds = [s["seed"] for s in per_seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs {[s['run'] for s in per_seed]} repeat a seed ({seeds}); give each seed once")
    if len({(s["settings"], s["n"]) for s in per_seed}) > 1:
        raise ValueError("the runs were attacked with different settings or image counts; attack them alike")
    if len({tuple(s["models"]) for s in per_seed}) > 1:
        found = {s["seed"]: list(s["models"]) for s in per_seed}
        raise ValueError(f"the seeds hold different models ({found}); train every seed with --compare")
    eps, n = per_seed[0]["eps"], per_seed[0]["n"]
    models = list(per_seed[0]["models"])
    found = {column for s in per_seed for row in s["models"].values() for column in row}
    kinds = [k for k in ("plain", "standard", "adaptive") if any(f"eps={e} {k}" in found for e in eps)]
    columns = ["test accuracy", "clean", *(f"eps={e} {kind}" for e in eps for kind in kinds)]
    attacks = sorted({c.split(" ", 1)[1] for c in found if c.startswith("eps=")} - set(kinds))
    per_attack = [f"eps={e} {a}" for e in eps for a in attacks]
    text = "\n\n".join(
        [
            f"Seeds {', '.join(map(str, seeds))}; robust accuracy on {n} test images per seed (each seed its own "
            "seeded subset); test accuracy on the full test split. Mean +- std over seeds.",
            markdown_table(
                ["model", "seeds", *columns], [[m, str(len(seeds)), *_spread(per_seed, m, columns)] for m in models]
            ),
            "Differences in points (x100), paired by seed (same images, same attacks), mean +- std; in brackets "
            "the two-sided p-value of a paired t-test.",
            markdown_table(
                ["difference", *columns],
                [
                    [label, *_paired(per_seed, a, b, columns)]
                    for label, a, b in COMPARISONS
                    if a in models and b in models
                ],
            ),
            "Robust accuracy per attack (the harness's own: fgsm, pgd, square, eot-pgd, transfer-pgd; torchattacks': "
            f"{', '.join(STANDARD)}), mean +- std over seeds:",
            markdown_table(["model", *per_attack], [[m, *_spread(per_seed, m, per_attack)] for m in models]),
            "Each seed's verdict on RCI (the attack report's own sentences) and its sanity checks:",
            "\n".join(
                f"- seed {s['seed']} ({s['checks'][0]} of {s['checks'][1]} sanity checks passed): "
                + (s["verdict"].removeprefix("- ").replace("\n- ", " ") or "no randomized defence in this report.")
                for s in per_seed
            ),
        ]
    )
    out = Path(out)
    write_text(out / "seeds.md", text + "\n")
    lines = [{"seed": s["seed"], "model": m, **s["models"][m]} for s in per_seed for m in models]
    write_text(out / "seeds.csv", csv_text(lines, ["seed", "model", *columns, *per_attack]))
    _plot(per_seed, models, eps, out / "robustness-seeds.png")
    return text


def _values(per_seed: list[dict], model: str, column: str) -> list[float]:
    return [s["models"][model][column] for s in per_seed if column in s["models"].get(model, {})]


def _spread(per_seed: list[dict], model: str, columns: list[str]) -> list[str]:
    return [format_spread(*spread(values)) if (values := _values(per_seed, model, c)) else "-" for c in columns]


def _paired(per_seed: list[dict], model: str, baseline: str, columns: list[str]) -> list[str]:
    cells = []
    for column in columns:
        ours, theirs = ({s["seed"]: s["models"][m][column] for s in per_seed if column in s["models"][m]}
                        for m in (model, baseline))  # fmt: skip
        effect = paired_by_seed(ours, theirs)
        cells.append(format_difference(*effect) if effect else "-")
    return cells


def _plot(per_seed: list[dict], models: list[str], eps: list[str], path: Path) -> None:
    def draw(ax: Any) -> None:
        grid = [0.0, *map(float, eps)]
        for i, model in enumerate(models):
            values = [_values(per_seed, model, c) for c in ["clean", *(f"eps={e} adaptive" for e in eps)]]
            means = [statistics.mean(v) for v in values]
            stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            ax.errorbar(grid, means, yerr=stds, color=f"C{i}", marker="o", capsize=3, label=model)

    plot_accuracy_against_eps(draw, f"adaptive robust accuracy ({len(per_seed)} seeds)", path)
