"""Attack harness: clean and robust accuracy of classifiers, with and without randomized coded inference.

For each trained classifier (ERM, mixup, coded-trained) and each coded-trained one defended by RCI,
on a seeded subset of test images, per eps of the L-inf grid:
- plain attacks: FGSM, and PGD (random start, step eps/4) differentiating through the model as
  served; for RCI that is one random draw per step;
- adaptive attacks for RCI: EOT-PGD (the loss averaged over S draws per step, through the whole
  randomized pipeline) and PGD on the deterministic surrogate (the same model without RCI),
  transferred;
- a gradient-free Square-style search;
- the standard implementations of `standard.py` (torchattacks: APGD-CE, APGD-DLR and Square; against
  RCI the same in their EOT form, plus EOT-PGD), unless `standard` is off.
"Plain" accuracy counts an image as robust if it survives the plain attacks; "standard" if it
survives every torchattacks attack; "adaptive" if it survives every attack (per-image worst case).
Adversarial images are scored with a fresh draw of the defence, so an image counts as robust under
RCI only if it survives one independent draw per attack (a conservative count). Sanity checks run on
every report: accuracy at a large eps, more steps, more EOT samples, gradient-free against gradient
attacks. Writes attack.json, attack.md (tables, checks and the verdict on RCI), fidelity.md and robustness.png.

The harness takes models as callables from [0, 1] pixels to logits; `ssl-coded attack` loads them
from run directories (`ssl_coded.commands`).

Example:
    >>> targets = [Target("erm", erm_model), Target("coded + RCI", rci, surrogate=coded_model)]
    >>> report = run_attack(targets, x, y, AttackSettings(), out_dir="runs/sup", batch_size=64, seed=0)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ssl_coded.eval.robustness.attacks import fgsm, pgd, square_attack
from ssl_coded.eval.robustness.fidelity import fidelity_sweep, format_fidelity
from ssl_coded.eval.robustness.standard import STANDARD, standard_attacks
from torch import Tensor
from tqdm import tqdm

from ssl_coded.io import write_json, write_text
from ssl_coded.results import SCHEMA_VERSION

Model = Callable[[Tensor], Tensor]


@dataclass
class Target:
    """A model under attack: how it is served, and for a randomized defence its deterministic surrogate."""

    name: str
    model: Model
    surrogate: Model | None = None

    @property
    def randomized(self) -> bool:
        return self.surrogate is not None


@dataclass
class AttackSettings:
    """The attacks: L-inf on [0, 1] pixels (the recipe's `attack` section carries the same fields)."""

    eps: list[float] = dataclasses.field(default_factory=lambda: [0.02, 0.05, 0.1])
    steps: int = 10  # PGD steps, step size eps / 4, random start
    eot_samples: int = 4  # EOT-PGD: random draws of the defence averaged per step
    square_queries: int = 100  # gradient-free Square-style search
    num_examples: int = 400  # test images attacked (a seeded subset)
    sanity_eps: float = 0.5  # accuracy must fall to ~0 here
    standard: bool = True  # also torchattacks' APGD-CE / APGD-DLR / Square (EOT forms and EOT-PGD on RCI)
    rci: bool = True  # also serve each coded-trained model behind RCI (its attacks cost far more)


def correct(model: Model, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(1) == y


def attack_batch(target: Target, x: Tensor, y: Tensor, eps: float, cfg: AttackSettings, seed: int) -> dict[str, Tensor]:
    """{attack: per-image correctness} on one batch at one eps."""
    generator = torch.Generator().manual_seed(seed)
    adversarial = {
        "fgsm": fgsm(target.model, x, y, eps),
        "pgd": pgd(target.model, x, y, eps, cfg.steps, generator=generator),
        "square": square_attack(target.model, x, y, eps, cfg.square_queries, generator=generator),
    }
    if target.randomized:
        adversarial["eot-pgd"] = pgd(
            target.model, x, y, eps, cfg.steps, eot_samples=cfg.eot_samples, generator=generator
        )
        adversarial["transfer-pgd"] = pgd(target.surrogate, x, y, eps, cfg.steps, generator=generator)
    oks = {name: correct(target.model, x_adv, y) for name, x_adv in adversarial.items()}
    if cfg.standard:
        oks |= standard_attacks(
            target.model, x, y, eps, cfg.steps, cfg.eot_samples, cfg.square_queries, seed, target.randomized
        )
    return oks


PLAIN = ("fgsm", "pgd")
AGGREGATES = ("plain", "standard", "adaptive")  # per-image worst cases, not attacks


def robustness(target: Target, x: Tensor, y: Tensor, cfg: AttackSettings, batch_size: int, seed: int) -> dict[str, Any]:
    """Clean accuracy, accuracy per attack and eps, and the plain / adaptive per-image worst cases."""
    batches = list(zip(x.split(batch_size), y.split(batch_size), strict=True))
    clean = torch.cat([correct(target.model, xb, yb) for xb, yb in batches])
    result: dict[str, Any] = {"clean": float(clean.float().mean()), "eps": {}}
    for eps in cfg.eps:
        per_attack: dict[str, list[Tensor]] = {}
        for i, (xb, yb) in enumerate(tqdm(batches, desc=f"{target.name} eps={eps:g}", leave=False)):
            for name, ok in attack_batch(target, xb, yb, eps, cfg, seed + i).items():
                per_attack.setdefault(name, []).append(ok)
        joined = {name: torch.cat(oks) for name, oks in per_attack.items()}
        plain = clean & torch.stack([joined[a] for a in PLAIN]).all(0)
        adaptive = clean & torch.stack(list(joined.values())).all(0)
        row = {name: float(ok.float().mean()) for name, ok in joined.items()}
        row |= {"plain": float(plain.float().mean()), "adaptive": float(adaptive.float().mean())}
        if standard := [joined[a] for a in STANDARD if a in joined]:
            row["standard"] = float((clean & torch.stack(standard).all(0)).float().mean())
        result["eps"][f"{eps:g}"] = row
    return result


def noise_tolerance(accuracy: float, n: int) -> float:
    """Two binomial standard deviations of an accuracy measured on n images (at least half a point)."""
    return max(0.005, 2 * math.sqrt(max(accuracy * (1 - accuracy), 1e-4) / n))


def sanity_checks(
    target: Target, x: Tensor, y: Tensor, cfg: AttackSettings, result: dict, batch_size: int, seed: int
) -> list[tuple[str, bool, str]]:
    """The checks a robustness claim must pass, each as (name, passed, detail).

    At the middle eps of the grid, the strongest gradient attack of the report (EOT-PGD for a
    randomized model, PGD otherwise) is rerun with twice the steps and, for a randomized model, twice
    the EOT samples: accuracy must neither rise (a sign of masked gradients) nor keep falling beyond
    sampling noise (the attack has not converged, so the reported accuracy is too optimistic).
    """
    samples = cfg.eot_samples if target.randomized else 1

    def accuracy(eps: float, steps: int, eot: int) -> float:
        oks = []
        for i, (xb, yb) in enumerate(zip(x.split(batch_size), y.split(batch_size), strict=True)):
            generator = torch.Generator().manual_seed(seed + i)
            oks.append(
                correct(target.model, pgd(target.model, xb, yb, eps, steps, eot_samples=eot, generator=generator), yb)
            )
        return float(torch.cat(oks).float().mean())

    middle = f"{cfg.eps[len(cfg.eps) // 2]:g}"
    row = result["eps"][middle]
    base = row["eot-pgd" if target.randomized else "pgd"]
    tolerance = noise_tolerance(base, len(y))
    large = accuracy(cfg.sanity_eps, cfg.steps, 1)
    checks = [("accuracy ~0 at a large eps (PGD)", large <= 0.05, f"eps={cfg.sanity_eps:g}: {large:.3f}")]
    curve = [(f"{e:g}", result["eps"][f"{e:g}"]["adaptive"]) for e in sorted(cfg.eps)]
    rises = [(a, b) for a, b in itertools.pairwise(curve) if b[1] > a[1] + noise_tolerance(a[1], len(y))]
    detail = ", ".join(f"eps={e}: {v:.3f}" for e, v in curve)
    checks.append(("the attacks succeed more as eps grows (worst case over attacks)", not rises, detail))
    more = {"steps": (f"{2 * cfg.steps} steps", accuracy(float(middle), 2 * cfg.steps, samples))}
    if target.randomized:
        more["EOT samples"] = (f"S={2 * samples}", accuracy(float(middle), cfg.steps, 2 * samples))
    reference = f"{cfg.steps} steps" + (f", S={samples}" if target.randomized else "")
    for what, (label, value) in more.items():
        detail = f"eps={middle}: {reference} {base:.3f}, {label} {value:.3f}; tolerance {tolerance:.3f}"
        checks.append((f"more {what} do not raise accuracy", value <= base + tolerance, detail))
        checks.append((f"more {what}: accuracy has stopped falling", value >= base - tolerance, detail))
    gradient = min(v for k, v in row.items() if k not in ("square", "square-ta", *AGGREGATES))
    for search in ("square", "square-ta"):  # a search that beats the gradients means the gradients are masked
        if search in row:
            checks.append(
                (
                    f"gradient-free search ({search}) is not stronger than the gradient attacks",
                    row[search] >= gradient - tolerance,
                    f"eps={middle}: {search} {row[search]:.3f}, best gradient attack {gradient:.3f}",
                )
            )
    return checks


def verdict(results: dict[str, dict], eps: list[float], checks: dict[str, list], n: int) -> str:
    """Whether RCI's robustness survives the adaptive attack, in one plain sentence per defended model.

    It survives only if, at some eps, its adaptive accuracy beats the undefended model's by more than
    sampling noise (two binomial standard deviations of a difference on n images) and every sanity
    check passed (among them: more steps and EOT samples no longer lower the accuracy).
    """
    lines = []
    for name, result in results.items():
        if not name.endswith(" + RCI"):
            continue
        surrogate = results[name.removesuffix(" + RCI")]
        keys = [f"{v:g}" for v in eps]
        converged = all(passed for _, passed, _ in checks.get(name, []))
        outcome, best = rci_outcome(result, surrogate, keys, "adaptive", converged, n)
        cells = "; ".join(
            f"eps={e}: plain {result['eps'][e]['plain']:.3f}, adaptive {result['eps'][e]['adaptive']:.3f}, "
            f"without RCI {surrogate['eps'][e]['adaptive']:.3f}"
            for e in keys
        )
        lines.append(
            f"- **{name}: RCI's robustness {outcome}** (largest gain over the undefended model under the adaptive "
            f"attacks: {100 * best:+.1f} points on {n} images; clean {result['clean']:.3f} vs {surrogate['clean']:.3f} "
            f"without RCI). {cells}."
        )
        if all("standard" in r["eps"][e] for r in (result, surrogate) for e in keys):
            outcome, best = rci_outcome(result, surrogate, keys, "standard", converged, n)
            cells = "; ".join(
                f"eps={e}: {result['eps'][e]['standard']:.3f} against {surrogate['eps'][e]['standard']:.3f}"
                for e in keys
            )
            lines.append(
                f"- **{name}, torchattacks alone** (APGD-CE, APGD-DLR and Square, in their EOT form against RCI, "
                f"plus EOT-PGD): **RCI's robustness {outcome}** (largest gain {100 * best:+.1f} points). {cells}."
            )
    return "\n".join(lines)


def rci_outcome(
    result: dict, surrogate: dict, keys: list[str], column: str, converged: bool, n: int
) -> tuple[str, float]:
    """(the verdict's words, the largest gain) of RCI over the model without it in one accuracy column
    ("adaptive": every attack; "standard": torchattacks' alone)."""
    attack = "the adaptive attack" if column == "adaptive" else "torchattacks' attacks"
    gains = {e: result["eps"][e][column] - surrogate["eps"][e][column] for e in keys}
    # a difference of two accuracies on the same n images: sqrt(2) x the noise of one
    significant = any(gains[e] > math.sqrt(2) * noise_tolerance(surrogate["eps"][e][column], n) for e in keys)
    if not significant:
        outcome = f"does not survive {attack}"
    elif not converged:
        outcome = "is not established: a sanity check failed (see below), so the attack may be too weak"
    else:
        outcome = f"survives {attack}"
    return outcome, max(gains.values())


def format_tables(results: dict[str, dict], checks: dict[str, list], eps: list[float]) -> str:
    keys = [f"{e:g}" for e in eps]
    columns = [c for c in AGGREGATES if any(c in r["eps"][k] for r in results.values() for k in keys)]
    head = "| model | clean | " + " | ".join(f"eps={k} {c}" for k in keys for c in columns) + " |"
    lines = ["## Robust accuracy", "", head, "|---|---|" + "---|" * len(keys) * len(columns)]
    for name, r in results.items():
        cells = " | ".join(f"{r['eps'][k][c]:.3f}" if c in r["eps"][k] else "-" for k in keys for c in columns)
        lines.append(f"| {name} | {r['clean']:.3f} | {cells} |")
    attacks = sorted({a for r in results.values() for row in r["eps"].values() for a in row} - set(AGGREGATES))
    lines += ["", "## Accuracy per attack", "", "| model | eps | " + " | ".join(attacks) + " |"]
    lines.append("|---|---|" + "---|" * len(attacks))
    for name, r in results.items():
        for k in keys:
            lines.append(
                f"| {name} | {k} | "
                + " | ".join(f"{r['eps'][k][a]:.3f}" if a in r["eps"][k] else "-" for a in attacks)
                + " |"
            )
    lines += ["", "## Sanity checks", ""]
    for name, items in checks.items():
        for check, passed, detail in items:
            lines.append(f"- {name}: {check}: **{'pass' if passed else 'FAIL'}** ({detail})")
    return "\n".join(lines)


def plot_robustness(results: dict[str, dict], eps: list[float], path: Path) -> None:
    def draw(ax: Any) -> None:
        grid = [0.0, *eps]
        for i, (name, r) in enumerate(results.items()):
            for kind, style in (("adaptive", "-"), ("plain", "--")):
                values = [r["clean"], *(r["eps"][f"{e:g}"][kind] for e in eps)]
                ax.plot(grid, values, style, color=f"C{i}", marker="o", label=f"{name} ({kind})")

    plot_accuracy_against_eps(draw, "accuracy", path)


def plot_accuracy_against_eps(draw: Callable[[Any], None], ylabel: str, path: Path) -> None:
    """One accuracy-against-eps figure: `draw(ax)` adds the lines; the axes and the file are shared."""
    from ssl_coded.eval.plots import pyplot, save_png

    fig, ax = pyplot().subplots(figsize=(6, 4))
    draw(ax)
    ax.set_xlabel("L-inf eps (pixels in [0, 1])")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path, dpi=120)


def run_attack(
    targets: list[Target],
    x: Tensor,
    y: Tensor,
    cfg: AttackSettings,
    out_dir: str | Path,
    batch_size: int,
    seed: int,
    data_name: str = "",
    defence: str = "",
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Attack every target on the images x (in [0, 1]) with labels y; write the report into out_dir.

    Args:
        targets: the models as served (a randomized one with its deterministic surrogate).
        x, y: the attacked test images and their labels.
        cfg: the attack settings.
        out_dir: where attack.md, attack.json, fidelity.md and robustness.png go.
        batch_size: images per attacked batch (for RCI: K, the inputs coded together).
        seed: seeds every attack's random start and search.
        data_name: the data, for the report's heading.
        defence: the randomized defence's settings, for the heading (e.g. "RCI: berrut, N/K=8, K=64").
        record: extra facts for attack.json (e.g. the RCI settings, the runs, the seed).
    """
    results, checks, fidelity = {}, {}, {}
    for target in targets:
        results[target.name] = robustness(target, x, y, cfg, batch_size, seed)
        checks[target.name] = sanity_checks(target, x, y, cfg, results[target.name], batch_size, seed)
        if not target.randomized:
            fidelity[target.name] = fidelity_sweep(target.model, x, y, batch_size, seed=seed)
    out = Path(out_dir)
    eps = list(cfg.eps)
    report = (
        f"# Attacks on {data_name}: {len(y)} test images, L-inf, PGD {cfg.steps} steps (step eps/4, random "
        f"start), EOT S={cfg.eot_samples}, Square {cfg.square_queries} queries"
        + (f"; {defence}" if defence else "")
        + "\n\n"
        + verdict(results, eps, checks, len(y))
        + "\n\n"
        + format_tables(results, checks, eps)
        + "\n"
    )
    write_text(out / "attack.md", report)
    sweep = "\n\n".join(f"## {name}\n\n{format_fidelity(rows)}" for name, rows in fidelity.items())
    write_text(out / "fidelity.md", f"# Decoding fidelity of RCI on {len(y)} test images\n\n{sweep}\n")
    full_record = {
        **(record or {}),  # the caller's facts first: they never replace the harness's own
        "attack": dataclasses.asdict(cfg),
        "num_attacked": len(y),  # num_examples, or fewer where the test split is smaller
        "results": results,
        "checks": {n: [{"check": c, "passed": p, "detail": d} for c, p, d in items] for n, items in checks.items()},
        "fidelity": {n: [dataclasses.asdict(r) for r in rows] for n, rows in fidelity.items()},
    }
    write_json(out / "attack.json", {"schema_version": SCHEMA_VERSION, **full_record})
    plot_robustness(results, eps, out / "robustness.png")
    print(report)
    return full_record
