"""Benchmark studies: a grid of recipes x settings x seeds, resumable, one table with mean +- std.

A study file (YAML) names its rows; each row runs once per seed (a cell):

    name: fmnist-main
    seeds: [0, 1, 2]
    common: [trainer.max_epochs=4]          # overrides for every cell
    protocols: [knn, linear]
    probe: lbfgs                            # or sgd
    robust: {eps: [0.02, 0.05]}             # optional: attack each cell's probe (robust_clean, robust_<eps>)
    rows:
      - {name: SimCLR, recipe: simclr-fashion-mnist}
      - {name: SimCLR + coded, recipe: simclr-fashion-mnist, overrides: [coded.enabled=true],
         baseline: SimCLR}
      - {name: SimCLR + coded mu 2, recipe: simclr-fashion-mnist,
         overrides: [coded.enabled=true, coded.weight=2.0], baseline: SimCLR, seeds: [0, 1]}

A cell pretrains into `<out_dir>/<study>/<row>/seed<k>/` and evaluates its best-by-validation
checkpoint on test, in a child process whose peak memory is recorded. Its figures go to
`<results_dir>/<row>/seed<k>.json`, which marks it done: running the study again skips finished
cells and resumes a half-trained one from its last checkpoint. A results_dir under version control
lets another machine continue the study. The results directory holds `study.yaml`, `cells.csv` (one
line per cell), `results.md` and `results.csv` (mean +- std over seeds per row), one PNG per metric,
`headline.md` (the rows listed under `headline`) and, for rows that name a `baseline` row,
`effects.md` / `effects.csv`: the difference to the baseline paired by seed (mean +- std, paired
t-test p-value) and the ratio of median training times.

Example:
    >>> run_study("recipes/studies/fashion-mnist.yaml")
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ssl_coded.eval.statistics import csv_text, format_difference, format_spread, paired_by_seed, spread
from ssl_coded.io import write_json, write_text
from ssl_coded.results import SCHEMA_VERSION
from ssl_coded.search.calibration import cpu_model
from ssl_coded.tables import markdown_table
from ssl_coded.training.config import ConfigError
from ssl_coded.training.precision import training_precision
from ssl_coded.training.recipes import load_config

# a classifier's own accuracies (supervised rows) and the evaluation protocols' (encoders); best_val is the
# run's best validation score (val_accuracy or val_knn_top1), the only figure a sweep may be chosen by
ACCURACIES = (
    "test_accuracy",
    "train_accuracy",
    "generalization_gap",
    "best_val",
    "knn_dino_top1",
    "knn_instdisc_top1",
    "linear_top1",
    "linear_sgd_top1",
)
COSTS = ("seconds", "eval_seconds", "peak_mb")
METRICS = ACCURACIES + COSTS
CLASSIFIER = ("test_accuracy", "train_accuracy", "generalization_gap")  # from the run summary of a classifier


@dataclass
class StudyRow:
    name: str
    recipe: str
    overrides: list[str] = field(default_factory=list)
    baseline: str = ""  # another row's name: effects.md reports this row minus that one, paired by seed
    seeds: list[int] | None = None  # this row's seeds, if not the study's (e.g. fewer for cheap ablations)


@dataclass
class StudyAnswer:
    """`answers.md`, one line per method: the rows named "<method>" and "<method>" + a suffix, read on one
    accuracy. A method answers "helps" or "hurts" only where the treatment's paired effect has p < 0.05,
    and the control (a regularizer known to help) says whether the regime can show a gain at all."""

    metric: str = ""  # the accuracy read (e.g. knn_instdisc_top1); "" writes no answers.md
    control: str = " + i-Mix"
    treatment: str = " + coded"
    matched: str = " + random mixing"  # the treatment's cost without its coding


@dataclass
class StudyRobust:
    """Robustness of each cell's encoder (`ssl-coded eval robust`: its linear probe attacked through it):
    `robust_clean` and the worst case over the attacks, `robust_<eps>`, per eps. Off without eps."""

    eps: list[float] = field(default_factory=list)
    examples: int = 200  # seeded test images attacked
    steps: int = 10
    square_queries: int = 100
    standard: bool = True  # also torchattacks' APGD-CE, APGD-DLR and Square


@dataclass
class Study:
    name: str
    rows: list[StudyRow]
    seeds: list[int] = field(default_factory=lambda: [0])
    common: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=lambda: ["knn", "linear"])
    probe: str = "lbfgs"
    out_dir: str = "runs/studies"  # run directories (checkpoints, features): large, not for git
    results_dir: str = ""  # per-cell results and tables; "" = <out_dir>/<name>. Commit it to resume elsewhere
    headline: list[str] = field(default_factory=list)  # rows for headline.md (a README-sized table)
    answer: StudyAnswer = field(default_factory=StudyAnswer)
    robust: StudyRobust = field(default_factory=StudyRobust)


def accuracies_of(study: Study) -> tuple[str, ...]:
    """The study's accuracies: the protocols' and, with `robust`, the attacked probe's."""
    robust = ("robust_clean", *(f"robust_{e:g}" for e in study.robust.eps)) if study.robust.eps else ()
    return ACCURACIES + robust


def metrics_of(study: Study) -> tuple[str, ...]:
    return accuracies_of(study) + COSTS


def load_study(path: str | Path) -> Study:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} does not exist; see `ssl-coded study --help` for the format")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Study), OmegaConf.load(path))
        study: Study = OmegaConf.to_object(merged)
    except Exception as error:
        raise ConfigError(
            f"study {path}: {str(error).splitlines()[0]}; keys: name, rows, seeds, common, ..."
        ) from error
    slugs = [slug(row.name) for row in study.rows]
    for row, folder in zip(study.rows, slugs, strict=True):  # every row must load before hours are spent
        if not folder or slugs.count(folder) > 1:
            raise ConfigError(
                f"study {path}: row name {row.name!r} gives folder {folder!r}, empty or shared; rename it"
            )
        load_config(row.recipe, [*study.common, *row.overrides])
    names = [row.name for row in study.rows]
    if unknown := [name for name in study.headline if name not in names]:
        raise ConfigError(f"study {path}: headline rows {unknown} are not row names; use names from `rows`")
    if study.answer.metric and study.answer.metric not in accuracies_of(study):
        raise ConfigError(
            f"study {path}: answer.metric={study.answer.metric!r} is not one of {', '.join(accuracies_of(study))}"
        )
    if not all(0 < e <= 1 for e in study.robust.eps) or min(study.robust.examples, study.robust.steps) < 1:
        raise ConfigError(f"study {path}: robust.eps must be in (0, 1] and robust.examples, robust.steps >= 1")
    for row in study.rows:
        if row.baseline and (row.baseline not in names or row.baseline == row.name):
            raise ConfigError(f"study {path}: row {row.name!r} has baseline {row.baseline!r}, not another row's name")
        baseline = next((other for other in study.rows if other.name == row.baseline), None)
        if baseline and not set(seeds_of(study, row)) & set(seeds_of(study, baseline)):
            raise ConfigError(f"study {path}: row {row.name!r} shares no seed with its baseline; pair their seeds")
    return study


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def seeds_of(study: Study, row: StudyRow) -> list[int]:
    return study.seeds if row.seeds is None else row.seeds


def study_root(study: Study) -> Path:
    """Where the per-cell results and the tables go."""
    return Path(study.results_dir) if study.results_dir else Path(study.out_dir) / study.name


def cell_dir(study: Study, row: StudyRow, seed: int) -> Path:
    """The run directory of a cell (checkpoints, features)."""
    return Path(study.out_dir) / study.name / slug(row.name) / f"seed{seed}"


def cell_result(study: Study, row: StudyRow, seed: int) -> Path:
    """The finished cell's figures; its presence marks the cell done."""
    path = study_root(study) / slug(row.name) / f"seed{seed}.json"
    finished_here = cell_dir(study, row, seed) / "cell.json"
    if not path.is_file() and finished_here.is_file():  # a run finished before results_dir was set
        write_text(path, finished_here.read_text())
    return path


def run_cell(
    recipe: str,
    overrides: list[str],
    out: Path,
    protocols: list[str],
    probe: str,
    robust: dict | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Pretrain (resuming a half-finished run) and evaluate the best checkpoint (with `robust`, a
    `StudyRobust` as a dict, attack its probe too); runs in the child. `command` (the study's) goes into
    the run's run.json."""
    from ssl_coded.commands import evaluate_encoder, run_source
    from ssl_coded.eval.settings import EvalSettings
    from ssl_coded.training.loop import pretrain  # here: the runner itself never trains, nor imports Lightning

    config = load_config(recipe, [*overrides, f"out_dir={out.parent}", f"name={out.name}"])
    resumed = False  # trained in two or more sessions: `seconds` covers only the last
    if not (out / "summary.json").is_file():
        resumed = (out / "checkpoints" / "last.ckpt").is_file()
        source = run_source(recipe, [*overrides, f"out_dir={out.parent}", f"name={out.name}"], command)
        pretrain(config, resume=resumed, overwrite=not resumed, source=source)  # a false start is redone
    start = time.perf_counter()
    # no protocols: a classifier's study, which reads its test and train accuracy from the summary
    settings = EvalSettings(tuple(protocols), floors=False, probe=probe, plots=False, device="cpu", batch_size=512)
    rows = evaluate_encoder(out, settings) if protocols else {}
    attacked = robust_figures(out, StudyRobust(**robust)) if robust and robust.get("eps") else {}
    summary = json.loads((out / "summary.json").read_text())
    monitor = next(key for key in summary if key.startswith("best_val"))
    cell = {
        **rows.get("encoder", {}),
        **attacked,
        **{key: summary[key] for key in CLASSIFIER if key in summary},
        "best_val": summary[monitor],
        "precision": summary["precision"],  # a row is paired only with a baseline of the same precision
        "cpu": f"{cpu_model()}, {os.cpu_count()} cores",
        "seconds": summary["seconds"],  # training; after a resume, only the last session's part
        "resumed": resumed,
        "eval_seconds": round(time.perf_counter() - start, 1),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB; main process
        "epochs": summary["epochs"],
    }
    write_json(out / "cell.json", {"schema_version": SCHEMA_VERSION, **cell})
    return cell


def robust_figures(out: Path, robust: StudyRobust) -> dict[str, float]:
    """`robust_clean` and `robust_<eps>` (the worst case over the attacks) of the cell's attacked probe; a
    report already in `<out>/robust/` (a cell interrupted after its attack) is read, not redone."""
    from ssl_coded.attacks import ROBUST_DIR, attack_encoder
    from ssl_coded.eval.robustness.harness import AttackSettings

    report = out / ROBUST_DIR / "attack.json"
    cfg = AttackSettings(
        eps=list(robust.eps),
        steps=robust.steps,
        square_queries=robust.square_queries,
        num_examples=robust.examples,
        standard=robust.standard,
        rci=False,
    )
    if report.is_file():
        attacked = json.loads(report.read_text())
        if attacked.get("attack") != json.loads(json.dumps(dataclasses.asdict(cfg))):
            raise ConfigError(f"{report.parent} holds a robustness report with other settings; move it away")
    else:
        attacked = attack_encoder(out, cfg, out_dir=out, device="cpu", floors=False)
    result = attacked["results"]["encoder + linear probe"]
    return {"robust_clean": result["clean"], **{f"robust_{e}": row["adaptive"] for e, row in result["eps"].items()}}


def lacks_robust(study: Study, result: Path) -> bool:
    """A finished cell without the robustness figures the study now asks for (its run is evaluated again)."""
    wanted = set(accuracies_of(study)) - set(ACCURACIES)
    return bool(wanted - set(json.loads(result.read_text())))


def run_study(path: str | Path) -> dict[str, dict[str, tuple[float, float, int]]]:
    """Run every unfinished cell (each in a child process), then write the tables and plots."""
    study = load_study(path)
    root = study_root(study)
    write_text(root / "study.yaml", OmegaConf.to_yaml(OmegaConf.structured(study)))
    cells = [(row, seed) for row in study.rows for seed in seeds_of(study, row)]
    for i, (row, seed) in enumerate(cells, 1):
        out = cell_dir(study, row, seed)
        if cell_result(study, row, seed).is_file() and not lacks_robust(study, cell_result(study, row, seed)):
            continue
        config = load_config(row.recipe, [*study.common, *row.overrides])
        precision = training_precision(config.trainer.precision, config.trainer.accelerator)
        check_precisions(study, read_cells(study), pending=(row.name, precision))  # before hours are spent
        print(f"[{i}/{len(cells)}] {row.name}, seed {seed} -> {out}", flush=True)
        spec = json.dumps(
            {
                "recipe": row.recipe,
                "overrides": [*study.common, *row.overrides, f"seed={seed}"],
                "out": str(out),
                "protocols": study.protocols,
                "probe": study.probe,
                "robust": dataclasses.asdict(study.robust),
                "command": ["ssl-coded", "study", str(path)],  # run.json's: what started the cell
            }
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        with (out.parent / f"seed{seed}.log").open("a") as log:
            done = subprocess.run([sys.executable, "-m", "ssl_coded.study", "--cell", spec], stdout=log, stderr=log)
        if done.returncode == 0:
            write_text(cell_result(study, row, seed), (out / "cell.json").read_text())
        else:
            raise ValueError(f"cell {row.name!r} seed {seed} failed; see {out.parent / f'seed{seed}.log'} and rerun")
    return summarise(study, root)


def summarise(study: Study, root: Path) -> dict[str, dict[str, tuple[float, float, int]]]:
    """cells.csv, results.md / results.csv (mean +- std over the finished seeds), a plot per metric and,
    where rows name a baseline, effects.md / effects.csv."""
    cells = read_cells(study)
    per_seed = collect_cells(study, cells)
    lines = [  # each cell's figures, and where and how it ran
        {"row": name, "seed": seed, **figures, **{k: cells[name][seed].get(k, "") for k in ("precision", "cpu")}}
        for name, by_seed in per_seed.items()
        for seed, figures in by_seed.items()
    ]
    write_text(root / "cells.csv", csv_text(lines, ["row", "seed", *metrics_of(study), "precision", "cpu"]))
    table = {
        name: {m: spread(v) for m in metrics_of(study) if (v := [cell[m] for cell in cells.values() if m in cell])}
        for name, cells in per_seed.items()
    }
    metrics = [m for m in metrics_of(study) if any(m in t for t in table.values())]
    write_text(root / "results.md", format_study(table, metrics) + "\n")
    if study.headline:
        write_text(root / "headline.md", format_study({n: table[n] for n in study.headline}, metrics) + "\n")
    stats = ("mean", "std", "n")
    write_text(
        root / "results.csv",
        csv_text(
            [
                {"row": name, **{f"{m}_{s}": f"{t[m][i]:.6g}" for m in metrics if m in t for i, s in enumerate(stats)}}
                for name, t in table.items()
            ],
            ["row", *(f"{m}_{s}" for m in metrics for s in stats)],
        ),
    )
    for metric in metrics:
        plot_metric(table, metric, root / f"{metric}.png")
    print(format_study(table, metrics))
    cpus = {name: {seed: cell.get("cpu", "") for seed, cell in by_seed.items()} for name, by_seed in cells.items()}
    effects = paired_effects(study, per_seed, cpus)
    if effects:
        accuracies = [m for m in accuracies_of(study) if m in metrics]
        write_text(root / "effects.md", format_effects(effects, accuracies) + "\n")
        fields = list(dict.fromkeys(key for effect in effects.values() for key in effect))
        write_text(root / "effects.csv", csv_text(list(effects.values()), fields))
        print(format_effects(effects, accuracies))
        if study.answer.metric:
            write_text(root / "answers.md", format_answers(study, table, effects) + "\n")
    return table


def read_cells(study: Study) -> dict[str, dict[int, dict[str, Any]]]:
    """Every finished cell's file, read once: row name -> seed -> its JSON."""
    return {
        row.name: {
            seed: json.loads(path.read_text())
            for seed in seeds_of(study, row)
            if (path := cell_result(study, row, seed)).is_file()
        }
        for row in study.rows
    }


def collect_cells(
    study: Study, cells: dict[str, dict[int, dict[str, Any]]] | None = None
) -> dict[str, dict[int, dict[str, float]]]:
    """The finished cells' metrics: row name -> seed -> metric -> value (`cells`: from `read_cells`)."""
    cells = read_cells(study) if cells is None else cells
    check_precisions(study, cells)
    per_seed: dict[str, dict[int, dict[str, float]]] = {}
    for name, by_seed in cells.items():
        per_seed[name] = {}
        for seed, cell in by_seed.items():
            # a resumed cell's training time covers only the part after the resume
            skip = {"seconds"} if cell.get("resumed") else set()
            figures = {m: cell[m] for m in metrics_of(study) if cell.get(m) is not None and m not in skip}
            per_seed[name][seed] = {m: float(v) for m, v in figures.items()}
    return per_seed


# Lightning's short names of the precisions it accepts
PRECISION_ALIASES = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}


def check_precisions(
    study: Study, cells: dict[str, dict[int, dict[str, Any]]], pending: tuple[str, str] | None = None
) -> None:
    """Refuse a row and its baseline in different precisions (their difference would be the precision's).

    Args:
        cells: the finished cells (`read_cells`); cells from before the precision was recorded add none.
        pending: (row name, precision) of a cell about to train.
    """
    precisions = {
        name: {
            PRECISION_ALIASES.get(str(c["precision"]), str(c["precision"]))
            for c in by_seed.values()
            if c.get("precision")
        }
        for name, by_seed in cells.items()
    }
    if pending:
        precisions.setdefault(pending[0], set()).add(PRECISION_ALIASES.get(pending[1], pending[1]))
    for row in study.rows:
        mine, theirs = precisions.get(row.name, set()), precisions.get(row.baseline, set())
        if row.baseline and mine and theirs and len(mine | theirs) > 1:
            raise ValueError(
                f"row {row.name!r} ran at {sorted(mine)} and its baseline {row.baseline!r} at {sorted(theirs)}; "
                "set trainer.precision in the study's common overrides and rerun the cells of one of them"
            )


def paired_effects(
    study: Study,
    per_seed: dict[str, dict[int, dict[str, float]]],
    cpus: dict[str, dict[int, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each row minus its baseline on the seeds both finished: mean +- std of the paired differences,
    the paired t-test's two-sided p-value (needs 2+ seeds), and the ratio of median training times.
    Pairing by seed removes the split and initialisation noise the two rows share.

    Args:
        cpus: row name -> seed -> the CPU the cell ran on; a training time enters the ratio only where
            the row's cell and its baseline's ran on the same CPU (a study resumed on another machine
            would otherwise report the machines' ratio as the method's cost).
    """
    cpus = cpus or {}
    effects: dict[str, dict[str, Any]] = {}
    for row in study.rows:
        base = per_seed.get(row.baseline, {})
        seeds = sorted(set(per_seed[row.name]) & set(base)) if row.baseline else []
        if not seeds:
            continue
        effect: dict[str, Any] = {"row": row.name, "baseline": row.baseline, "seeds": len(seeds)}
        for m in accuracies_of(study):
            if all(m in per_seed[row.name][s] and m in base[s] for s in seeds):
                ours, theirs = ({s: cells[s][m] for s in seeds} for cells in (per_seed[row.name], base))
                delta, std, p, _ = paired_by_seed(ours, theirs)
                effect.update({f"{m}_delta": delta, f"{m}_std": std, f"{m}_p": p})
        ours_cpu, base_cpu = cpus.get(row.name, {}), cpus.get(row.baseline, {})
        timed = [
            s
            for s in seeds
            if "seconds" in per_seed[row.name][s] and "seconds" in base[s] and ours_cpu.get(s) == base_cpu.get(s)
        ]
        times = [[cells[s]["seconds"] for s in timed] for cells in (per_seed[row.name], base)]
        effect["time_ratio"] = statistics.median(times[0]) / statistics.median(times[1]) if timed else math.nan
        effects[row.name] = effect
    return effects


def format_effects(effects: dict[str, dict[str, Any]], metrics: list[str]) -> str:
    """Differences in points (x100) with their paired seed spread and the paired t-test's p-value."""
    rows = [
        [e["row"], e["baseline"], str(e["seeds"]), *(_effect_cell(e, m) for m in metrics),
         "-" if math.isnan(e["time_ratio"]) else f"{e['time_ratio']:.2f}"]
        for e in effects.values()
    ]  # fmt: skip
    return markdown_table(["row", "vs", "seeds", *(f"{m} delta (p)" for m in metrics), "train time x"], rows)


def format_answers(
    study: Study, table: dict[str, dict[str, tuple[float, float, int]]], effects: dict[str, dict[str, Any]]
) -> str:
    """One line per method with a treatment row: its baseline, the control's effect and whether it separates
    (more than twice the baseline's seed spread), the treatment's and the cost-matched row's paired effects
    (points, p), the treatment's training-time ratio and the reading."""
    a, metric = study.answer, study.answer.metric
    lines = []
    for base in (row.name for row in study.rows if not row.baseline):
        treated = effects.get(base + a.treatment, {})
        if f"{metric}_delta" not in treated or metric not in table.get(base, {}):
            continue
        mean, std, _ = table[base][metric]
        control = effects.get(base + a.control, {})
        separates = "-" if f"{metric}_delta" not in control else "yes" if control[f"{metric}_delta"] > 2 * std else "no"
        delta, p = treated[f"{metric}_delta"], treated[f"{metric}_p"]
        reading = "within noise" if not p < 0.05 else "helps" if delta > 0 else "hurts"
        time = treated["time_ratio"]
        lines.append([
            base, str(treated["seeds"]), f"{100 * mean:.2f} +- {100 * std:.2f}", _effect_cell(control, metric),
            separates, _effect_cell(treated, metric), _effect_cell(effects.get(base + a.matched, {}), metric),
            "-" if math.isnan(time) else f"{time:.2f}", reading,
        ])  # fmt: skip
    header = ["method", "seeds", f"{metric} (points)", a.control.strip(" +"), "control separates?",
              a.treatment.strip(" +"), a.matched.strip(" +"), "train time x", "reading"]  # fmt: skip
    return markdown_table(header, lines)


def _effect_cell(effect: dict[str, Any], metric: str) -> str:
    if f"{metric}_delta" not in effect:
        return "-"
    return format_difference(effect[f"{metric}_delta"], effect[f"{metric}_std"], effect[f"{metric}_p"], effect["seeds"])


def format_study(table: dict[str, dict[str, tuple[float, float, int]]], metrics: list[str]) -> str:
    rows = [
        [name, str(max((n for _, _, n in t.values()), default=0)),
         *(format_spread(*t[m], digits=0 if m in COSTS else 4) if m in t else "-" for m in metrics)]
        for name, t in table.items()
    ]  # fmt: skip
    return markdown_table(["row", "seeds", *metrics], rows)


def plot_metric(table: dict[str, dict[str, tuple[float, float, int]]], metric: str, path: Path) -> None:
    from ssl_coded.eval.plots import pyplot, save_png

    names = [n for n, t in table.items() if metric in t]
    fig, ax = pyplot().subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh(names, [table[n][metric][0] for n in names], xerr=[table[n][metric][1] for n in names], color="tab:blue")
    values = [table[n][metric][0] for n in names]
    if metric not in COSTS and values:
        spread = max(values) - min(values)
        low = min(values) - 2 * spread - 0.01  # a generalization gap may be negative: only accuracies stop at 0
        ax.set_xlim(low if metric == "generalization_gap" else max(0.0, low), min(1.0, max(values) + spread + 0.01))
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (mean +- std over seeds)")
    fig.tight_layout()
    save_png(fig, path, dpi=110)


if __name__ == "__main__":  # the child process of one cell
    spec = json.loads(sys.argv[sys.argv.index("--cell") + 1])
    out = Path(spec["out"])
    run_cell(
        spec["recipe"],
        spec["overrides"],
        out,
        spec["protocols"],
        spec["probe"],
        spec.get("robust"),
        spec.get("command"),
    )
