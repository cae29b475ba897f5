"""Checkpoints: written atomically, read with `weights_only=True`, stamped with the recipe that made them.

A checkpoint of a pretraining run holds its resolved recipe (`recipe_yaml`), so the checkpoint alone
rebuilds its model (`load_trained`), and the method name (`recipe_method`), so a resume with another
recipe is refused.

Example:
    >>> trained = load_trained("runs/simclr-digits")
    >>> features = trained.features(images_uint8)
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor, nn

from ssl_coded.data import Splits, load_splits
from ssl_coded.io import atomic_write, file_sha256
from ssl_coded.training.config import RecipeConfig, to_yaml
from ssl_coded.training.methods import TrainedModel, build_method, build_random_init
from ssl_coded.training.recipes import config_from_yaml, with_overrides


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the fix."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed (a crash never leaves half a file),
    and loaded with torch.load(weights_only=True) (never unpickling arbitrary objects)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        weights = checkpoint.get("state_dict", {}).items()
        bad = [name for name, value in weights if value.is_floating_point() and not value.isfinite().all()]
        if bad:  # a diverged model is never written (nor chosen as best)
            raise CheckpointError(f"refusing to write {path}: non-finite weights in {', '.join(bad[:3])}")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint_file(path, map_location or "cpu")  # Lightning moves it where it belongs


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} does not exist; train first or give the right run directory"
        ) from None
    except Exception as error:  # a truncated zip, a pickle of foreign objects, ...
        raise CheckpointError(f"checkpoint {path} cannot be read: {what_it_is_not(error)}") from error


def what_it_is_not(error: Exception) -> str:
    """What torch.load's failure says about the file, in one plain sentence with the fix."""
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error):
        return (
            "it is a torch.save of pickled Python objects (a whole model?), which ssl-coded never unpickles; "
            "save model.state_dict() instead, or use a checkpoint written by ssl-coded"
        )
    if "PytorchStreamReader" in str(error) or "zip archive" in str(error):
        return "it is not a complete torch checkpoint (truncated, or another format); delete it or retrain"
    return f"it is not a torch checkpoint ({type(error).__name__}); delete it or retrain"


class RecipeCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that stamps the method name (a resume with another recipe is refused) and the
    resolved recipe (a checkpoint alone is enough to rebuild its model for evaluation), and writes
    last.ckpt at the end of every epoch (Lightning writes it only when it also saves a best one)."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint["recipe_method"] = pl_module.config.method.name
        checkpoint["recipe_yaml"] = to_yaml(pl_module.config)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after this epoch's validation (Lightning validates at the end of the epoch, before this hook)
        super().on_train_epoch_end(trainer, pl_module)
        if not trainer.sanity_checking and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def resolve_checkpoint(run_or_checkpoint: str | Path) -> Path:
    """A run directory (its best checkpoint, else its last) or a checkpoint file."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise CheckpointError(f"{path} has no checkpoints/best.ckpt or last.ckpt; pretrain into it first")
    if not path.is_file():
        raise CheckpointError(f"{path} is neither a run directory nor a checkpoint file")
    return path


@dataclass
class TrainedRun:
    """A trained method (eval mode) with its recipe, data splits and checkpoint hash."""

    method: TrainedModel
    config: RecipeConfig
    splits: Splits
    checkpoint_hash: str

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Backbone features of uint8 images (n, C, H, W): the encoder as a plain callable."""
        return self.method.encode(images)

    @property
    def encoder(self) -> RunEncoder:
        """The encoder as an `nn.Module` of uint8 images (what `ssl_coded.eval.evaluate` takes)."""
        return RunEncoder(self.method)


class RunEncoder(nn.Module):
    """A trained method's encoder as a plain module: uint8 images (n, C, H, W) -> backbone features,
    normalised as in training (with the mean/std its checkpoint stores). Float images are pixels in
    [0, 1] (an attack's, differentiably), as evaluation's `Preprocess` takes them."""

    def __init__(self, method: TrainedModel) -> None:
        super().__init__()
        self.method = method

    def forward(self, images: Tensor) -> Tensor:
        return self.method.encode(images if images.dtype == torch.uint8 else images * 255)


def load_trained(
    run_or_checkpoint: str | Path, device: str = "cpu", data_overrides: list[str] | dict[str, Any] | None = None
) -> TrainedRun:
    """The trained method, its recipe and data splits, from a run directory or a checkpoint.

    Args:
        run_or_checkpoint: a run directory (its best checkpoint, else its last) or a checkpoint file.
        device: where the model goes.
        data_overrides: `key=value` settings of the recipe's data section (e.g. `root=/data`), typed
            and checked like recipe overrides (an unknown key or a wrong type is refused).
    """
    path = resolve_checkpoint(run_or_checkpoint)
    checkpoint = load_checkpoint_file(path)
    if "recipe_yaml" not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not an ssl-coded pretraining checkpoint (no stored recipe); use one from a run"
        )
    config = config_from_yaml(checkpoint["recipe_yaml"])
    if isinstance(data_overrides, dict):  # the form before 0.2: {key: value}
        data_overrides = [f"{key}={value}" for key, value in data_overrides.items()]
    for item in data_overrides or []:
        if "=" not in item:
            raise CheckpointError(f"--dataset {item!r} is not key=value (e.g. root=/data/fashion-mnist)")
    config = with_overrides(config, [f"data.{item}" for item in data_overrides or []])
    splits = load_splits(config.data)
    method = build_method(config, splits)
    try:
        method.fill_normalisation(checkpoint["state_dict"])
        method.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit its recipe's model ({str(error).splitlines()[0]})") from error
    return TrainedRun(method.to(device).eval(), config, splits, file_sha256(path))


def random_init(trained: TrainedRun) -> TrainedRun:
    """The same architecture at the recipe seed's random initialisation (the random-init floor)."""
    method = build_random_init(trained.config, trained.splits).to(trained.method.device).eval()
    return TrainedRun(method, trained.config, trained.splits, f"random-{trained.config.seed}-{trained.checkpoint_hash}")
