"""Lightning's per-session CSV logs merged into one `metrics.csv`, and read back per epoch."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ssl_coded.io import write_text


def merge_metrics(out: Path) -> None:
    """logs/version_*/metrics.csv -> metrics.csv: a resumed session replaces the rows of the
    epochs it redid (those after the checkpoint it started from)."""
    versions = sorted((out / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    rows: list[dict[str, str]] = []
    fieldnames: list[str] = []
    for path in versions:
        with path.open() as handle:
            new = list(csv.DictReader(handle))
        if new:
            first_epoch = min((int(float(r["epoch"])) for r in new if r.get("epoch")), default=0)
            rows = [r for r in rows if r.get("epoch") and int(float(r["epoch"])) < first_epoch] + new
            fieldnames += [key for key in new[0] if key not in fieldnames]
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "metrics.csv", buffer.getvalue())


def read_step_metrics(path: Path, key: str) -> list[tuple[int, float]]:
    """[(step, value), ...] of a metric logged per step (rows that carry it), in step order."""
    with path.open() as handle:
        rows = [(int(float(r["step"])), float(r[key])) for r in csv.DictReader(handle) if r.get(key) and r.get("step")]
    return sorted(rows)


def read_epoch_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(epoch, value), ...]} from Lightning's metrics.csv (epoch-level rows)."""
    series: dict[str, dict[int, list[float]]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series.setdefault(key, {}).setdefault(epoch, []).append(float(value))
    return {key: sorted((e, sum(v) / len(v)) for e, v in per_epoch.items()) for key, per_epoch in series.items()}
