"""Supervised classification with coded-smoothing, and its baselines ERM and mixup: a classifier on the
shared `TrainedModel` (its own linear head; no online probe).

`method.regularizer` picks the training loss, all on the same backbone, augmentations and budget:
- "erm": cross-entropy on an augmented view.
- "mixup" (Zhang et al. 2018): cross-entropy on convex mixtures of the batch, weight ~ Beta(a, a).
- "manifold_mixup" (Verma et al. 2019): the same, mixed at a layer drawn per step from
  `method.mixup_layers` (the input and two hidden blocks of the small CNN by default).
- "noise": cross-entropy on views with Gaussian noise of `method.noise_std` (in [0, 1] pixel units)
  added: the cheap robustness baseline.
- "coded": cross-entropy + mu x score of the decoded logits (the `coded` section), through the same
  `CodedSmoothingHook` as every method: with `coded.target=labels` (the paper's reading) the decoded
  logits are scored by cross-entropy against the true labels (`hook.scored_against(labels)`); with
  `coded.target=outputs` by the mean squared error against the model's own logits (stop-gradient).
  `coded.placement`: "input" (default; the hook on the whole classifier, which runs on coded images),
  "embedding" (on the linear head, which runs on coded features) or any dotted submodule (e.g.
  `backbone.features.3`, an intermediate block): that block runs on coded copies of its own inputs,
  and its decoded outputs are scored against its real ones (MSE).

`classify(images01)` maps [0, 1] pixels to logits: the function that randomized coded inference and
the attack harness wrap.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssl_coded.data import ImageDataset, Splits
from ssl_coded.data.encode import encode
from ssl_coded.training.methods.base import TrainedModel
from ssl_coded.training.mixing import check_layers, manifold_mixup_loss, mix, mixed_cross_entropy, mixing_weight


class Supervised(TrainedModel):
    placements: ClassVar[dict[str, str]] = {"input": "", "embedding": "classifier"}
    monitor: ClassVar[str] = "val_accuracy"

    def __init__(self, config, **data) -> None:
        super().__init__(config, **data)
        self.classifier = nn.Linear(self.feature_dim, self.num_classes)
        if config.method.regularizer == "manifold_mixup":
            check_layers(self, config.method.mixup_layers)
        if config.method.regularizer == "coded":
            self.coded_submodule()  # a bad name fails here, listing valid ones, before any training

    @property
    def codes_a_block(self) -> bool:
        """The coded branch sits at a dotted submodule, not at the input or the embedding."""
        return self.config.coded.placement not in ("", *self.placements)

    @property
    def scores_labels(self) -> bool:
        """Decoded logits are scored against the labels (cross-entropy), not against the real outputs."""
        return self.config.coded.target == "labels" and not self.codes_a_block

    def wants_coded(self) -> bool:
        return self.config.method.regularizer == "coded"

    def coded_score(self) -> str:
        return "cross_entropy" if self.scores_labels else "mse"

    def coded_passes(self) -> int | None:
        return 1  # the one forward of the step

    def forward(self, x: Tensor) -> Tensor:
        """Logits of normalised inputs."""
        return self.classifier(self.backbone(x))

    def classify(self, images01: Tensor) -> Tensor:
        """Logits of images with pixels in [0, 1] (float, (n, C, H, W))."""
        return self(self.formatted((images01.to(self.mean.dtype) - self.mean) / self.std))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        x = self.view(self.to_input(images))
        regularizer = self.config.method.regularizer
        if regularizer == "noise":  # pixel units, so the normalised input gets noise_std / std
            x = self.formatted(x + torch.randn_like(x) * (self.config.method.noise_std / self.std))
        if regularizer == "mixup":
            loss = self.mixup_loss(x, labels)
        elif regularizer == "manifold_mixup":
            loss = manifold_mixup_loss(self, x, labels, self.config.method.mixup_layers, self.config.method.mixup_alpha)
        else:
            scored = self.coded_hook and self.scores_labels
            with self.coded_hook.scored_against(labels) if scored else nullcontext():
                logits = self(x)  # with the hook: its coded pass too
            loss = self.with_coded_penalty(F.cross_entropy(logits, labels), len(labels))
            self.log("train_accuracy", (logits.argmax(1) == labels).float().mean(), batch_size=len(labels))
        self.log("train_loss", loss, prog_bar=True, batch_size=len(labels))
        return loss

    def mixup_loss(self, x: Tensor, labels: Tensor) -> Tensor:
        weight = mixing_weight(self.config.method.mixup_alpha)
        perm = torch.randperm(len(x), device=x.device)
        return mixed_cross_entropy(self(self.formatted(mix(x, weight, perm))), labels, weight, perm)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        features = self.backbone(self.to_input(images))
        self.log_val_knn(features.float(), labels)
        accuracy = (self.classifier(features).argmax(1) == labels).float().mean()
        self.log("val_accuracy", accuracy, prog_bar=True, sync_dist=True, batch_size=len(labels))

    def accuracy(self, dataset: ImageDataset) -> float:
        """Accuracy on un-augmented images, in eval mode (the logits by the project's one extractor)."""
        self.eval()
        logits, labels = encode(lambda images: self(self.to_input(images.to(self.device))), dataset)
        return float((logits.argmax(1) == labels).mean())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        drop_online_classifier(checkpoint)
        super().on_load_checkpoint(checkpoint)

    def fill_normalisation(self, state_dict: dict[str, Tensor]) -> None:
        super().fill_normalisation(state_dict)
        for key in [k for k in state_dict if k.startswith("online_classifier.")]:
            del state_dict[key]  # a checkpoint written while classifiers carried an unused online probe

    def test_metrics(self, splits: Splits) -> dict[str, float | str]:
        # train accuracy beside test accuracy: their gap is what a regularizer is meant to close
        train, test = self.accuracy(splits.train), self.accuracy(splits.test)
        return {
            "test_accuracy": test,
            "train_accuracy": train,
            "generalization_gap": train - test,
            "regularizer": self.config.method.regularizer,
        }


def drop_online_classifier(checkpoint: dict[str, Any]) -> None:
    """Make a classifier's checkpoint of an earlier version (an unused online probe in the state_dict and a third
    parameter group, its own, last) fit the classifier, so that such a run still resumes."""
    for optimizer in checkpoint.get("optimizer_states", []):
        groups = optimizer.get("param_groups", [])
        if len(groups) == 3:
            for index in groups.pop()["params"]:
                optimizer.get("state", {}).pop(index, None)
