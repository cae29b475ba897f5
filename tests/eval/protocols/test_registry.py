"""The protocol registry: every protocol runs from its name; the command line offers the same names; a new
protocol is one file and a line in `PROTOCOLS` (CONTRIBUTING.md's recipe, followed here once)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import ssl_coded.eval.protocols as protocols
import torch
from ssl_coded.eval.features import FeatureSource
from ssl_coded.eval.protocols import PROTOCOLS, Task, get_protocol
from ssl_coded.eval.report import evaluate_sources
from ssl_coded.eval.settings import EvalSettings
from torch.utils.data import TensorDataset

from ssl_coded.cli.eval import ALL, IMAGE_PROTOCOL_NAMES, PROTOCOL_NAMES


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    return (rng.normal(size=(n, 8)) + 4 * np.eye(8)[labels]).astype(np.float32), labels


def test_the_command_line_offers_the_registered_protocols():
    assert tuple(PROTOCOLS) == PROTOCOL_NAMES and tuple(protocols.IMAGE_PROTOCOLS) == IMAGE_PROTOCOL_NAMES
    assert protocols.ANCHORS == ALL  # what `ssl-coded eval all` runs


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_every_protocol_runs_from_its_name_and_separates_separable_classes(name):
    features = {"train": blobs(240, 0), "test": blobs(30, 1)}
    settings = EvalSettings(fewshot_fractions=(0.5,))  # few-shot at 1% of 240 rows would be one image a class
    outcome = get_protocol(name)(features, Task(num_classes=3, settings=settings))
    top1 = {key: value for key, value in outcome.row.items() if key.endswith("top1")}
    # a probe fitted on half the rows alone, C chosen on 24 carved ones, misses one test image in some draws
    floor = {"fewshot50_linear_top1": 0.95}
    assert top1 and all(value >= floor.get(key, 1.0) for key, value in top1.items()), outcome.row


def test_an_unknown_protocol_is_refused_naming_the_registered_ones():
    with pytest.raises(ValueError, match="choose from knn, linear, knn-sweep, fewshot, probe-images, finetune"):
        get_protocol("zero-shot")


def test_a_new_protocol_is_one_file_and_a_line_in_the_registry(tmp_path, monkeypatch):
    (tmp_path / "centroid.py").write_text(
        textwrap.dedent(
            '''
            """Nearest class mean: a throwaway protocol for the recipe's test."""
            import numpy as np
            from ssl_coded.eval.protocols.base import Outcome


            def run(features, task):
                (x, y), (test_x, test_y) = features["train"], features["test"]
                means = np.stack([np.asarray(x)[y == c].mean(0) for c in range(task.num_classes)])
                distance = ((np.asarray(test_x)[:, None] - means[None]) ** 2).sum(-1)
                return Outcome({"centroid_top1": float((distance.argmin(1) == test_y).mean())})
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(protocols, "__path__", [*protocols.__path__, str(tmp_path)])
    monkeypatch.setitem(PROTOCOLS, "centroid", "centroid:run")
    images = torch.randint(0, 255, (60, 1, 4, 4), dtype=torch.uint8)
    data = TensorDataset(images, torch.arange(60) % 3)
    settings = EvalSettings(protocols=("knn", "centroid"), plots=False, device="cpu")
    rows = evaluate_sources({"pixels": FeatureSource(lambda x: x.flatten(1).float())}, {"train": data, "test": data},
                            3, tmp_path / "out", settings)  # fmt: skip
    x = images.flatten(1).float().numpy()
    means = np.stack([x[np.arange(60) % 3 == c].mean(0) for c in range(3)])  # the oracle, by hand
    expected = float((((x[:, None] - means[None]) ** 2).sum(-1).argmin(1) == np.arange(60) % 3).mean())
    assert rows["pixels"]["centroid_top1"] == pytest.approx(expected)
    recorded = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(recorded["protocols"]) == {"knn", "centroid"} and "knn_dino_top1" in recorded["rows"]["pixels"]
