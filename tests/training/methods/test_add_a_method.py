"""CONTRIBUTING.md's recipe for a method, followed once: a throwaway package (its config with a bound,
its model on SSLMethod), a line in METHODS, a recipe; it is checked without Lightning, trains from the
command line with coded-smoothing attached by the base, and its bad key is refused naming its keys."""

from __future__ import annotations

import json
import textwrap

import pytest

import ssl_coded.training.methods as methods
from ssl_coded.cli import main
from ssl_coded.training.config import ConfigError
from ssl_coded.training.methods.registry import METHODS
from ssl_coded.training.recipes import load_config

CONFIG = '''
"""Toy: one view, a projection head and a loss that spreads the embeddings (the recipe's test)."""
from dataclasses import dataclass
from typing import ClassVar

from ssl_coded.training.methods.config import ProjectionConfig


@dataclass
class ToyConfig(ProjectionConfig):
    name: str = "toy"
    spread: float = 1.0

    BOUNDS: ClassVar[dict[str, tuple[float, bool]]] = {**ProjectionConfig.BOUNDS, "spread": (0, False)}


CONFIG = ToyConfig
MODEL = "model:Toy"
'''

MODEL = """
from typing import ClassVar

from torch import nn

from ssl_coded.training.methods.base import SSLMethod


class Toy(SSLMethod):
    placements: ClassVar[dict[str, str]] = {"embedding": "projection_head"}

    def __init__(self, config, **data):
        super().__init__(config, **data)
        self.projection_head = nn.Linear(self.feature_dim, config.method.projection_dim)

    def ssl_step(self, images):
        features = self.backbone(self.view(images))
        z = self.projection_head(features)
        return -self.config.method.spread * z.std(0).mean(), features
"""

RECIPE = """
data: {name: digits, max_train: 256, max_test: 128}
model: {backbone: small_cnn, width: 8}
method: {name: toy, spread: 2.0, projection_dim: 16}
coded: {enabled: true, weight: 0.5}
trainer: {max_epochs: 1, batch_size: 32, limit_train_batches: 2}
eval: {bank_size: 128}
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    package = tmp_path / "methods" / "toy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(CONFIG))
    (package / "model.py").write_text(textwrap.dedent(MODEL))
    monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(tmp_path / "methods")])
    monkeypatch.setitem(METHODS, "toy", "toy")
    recipe = tmp_path / "toy-digits.yaml"
    recipe.write_text(RECIPE)
    return recipe


@pytest.mark.slow  # trains
def test_a_new_method_is_a_package_a_registry_line_and_a_recipe(toy, tmp_path):
    assert load_config(str(toy)).method.spread == 2.0
    with pytest.raises(ConfigError, match=r"method\.spread=0\.0 must be > 0"):
        load_config(str(toy), ["method.spread=0"])
    another_methods_key = r"method\.temperature is not a key of toy \(a key of simclr, [^)]*\); toy's keys"
    with pytest.raises(ConfigError, match=another_methods_key):
        load_config(str(toy), ["method.temperature=0.1"])
    assert main(["pretrain", str(toy), f"out_dir={tmp_path / 'runs'}", "name=toy"]) == 0
    summary = json.loads((tmp_path / "runs" / "toy" / "summary.json").read_text())
    assert summary["method"] == "toy" and summary["coded"] and 0 <= summary["rows"]["encoder"]["knn_dino_top1"] <= 1
    metrics = (tmp_path / "runs" / "toy" / "metrics.csv").read_text()
    assert "train_coded_penalty" in metrics.splitlines()[0]  # the base attached the hook and logged its penalty
