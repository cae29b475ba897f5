"""The shared bases of the methods: `TrainedModel` (data to device, the coded-smoothing hook, kNN
monitoring, divergence stop, reproducible resume, optimiser), `SSLMethod` on it, and the shapes most
methods share: `MomentumMethod` (EMA copies), `TwoViewMethod`, `MultiCropMethod`.

Coded-smoothing is attached one way for every method: the public `CodedSmoothingHook` on the
submodule the recipe's `coded.placement` names, in `setup`, and the step adds its penalty with
`with_coded_penalty(loss)` (weighted as `coded.weighting` says).

A self-supervised method subclasses `SSLMethod`, builds its heads in `__init__`, names where its coded
branch may sit in `placements`, and implements `ssl_step(images) -> (loss, features)`; the base adds the
coded penalty, trains lightly's online linear classifier on the detached features, and measures
weighted-kNN top-1 on the validation split each epoch. A classifier (`supervised.py`) stands on
`TrainedModel` directly: it has its own head, so no online one.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from lightly.models.utils import deactivate_requires_grad, get_weight_decay_parameters, update_momentum
from lightly.utils.benchmarking import OnlineLinearClassifier
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler, cosine_schedule
from torch import Tensor

from ssl_coded.data import Splits
from ssl_coded.hook import CodedSmoothingHook
from ssl_coded.models import feature_dim, input_channels
from ssl_coded.regularizer import CodedSmoothing
from ssl_coded.search.knn import KnnBank
from ssl_coded.training.augment import BatchAugment
from ssl_coded.training.backbones import build_backbone, is_named
from ssl_coded.training.config import CodedConfig, RecipeConfig
from ssl_coded.training.mixing import imix_partner_loss, mix, mixing_weight


class DivergenceError(ValueError):
    """The training loss became non-finite; the message names the step, the value and the last good checkpoint."""


def coded_regularizer(coded: CodedConfig, score: str) -> CodedSmoothing:
    """The recipe's `coded` section as a regularizer; batches too small to code are skipped."""
    return CodedSmoothing(
        weight=coded.weight,
        kind=coded.kind,
        num_coded=coded.num_coded or None,
        coded_ratio=coded.coded_ratio,
        lambda_enc=coded.lambda_enc,
        lambda_dec=coded.lambda_dec,
        lambda_units=coded.lambda_units,
        score=score,
        on_small_batch="skip",
        coded_batch_size=coded.coded_batch_size or None,
        gather_distributed=coded.gather,
    )


class TrainedModel(pl.LightningModule):
    """What every method shares: a backbone on normalised uint8 images, the coded-smoothing hook, kNN
    monitoring on validation, the divergence stop, the reproducible resume and the optimiser.

    Args:
        config: the resolved recipe.
        num_classes, in_channels, image_size, mean, std: from the dataset (for the backbone, the
            heads and the input normalisation).
    """

    # named placements of the coded branch -> dotted submodule names, the default first;
    # a recipe may also give any dotted submodule name
    placements: ClassVar[dict[str, str]] = {}
    monitor: ClassVar[str] = "val_knn_top1"  # the validation metric that picks the best checkpoint
    loss_floor: ClassVar[float] = 0.0  # the lowest value the method's loss can take (coded.weighting=loss)

    def __init__(
        self,
        config: RecipeConfig,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.config = config
        model = config.model
        self.backbone, self.feature_dim = build_backbone(
            model.backbone,
            in_channels,
            image_size,
            width=model.width,
            pool=model.pool,
            patch_size=model.patch_size,
            vit_dim=model.vit_dim,
            vit_depth=model.vit_depth,
            vit_heads=model.vit_heads,
        )
        # a named 3-channel model (torchvision:resnet18) on grey images: they are repeated after normalising
        self.input_channels = input_channels(self.backbone) or in_channels if is_named(model.backbone) else in_channels
        if self.input_channels not in (in_channels, 3 if in_channels == 1 else in_channels):
            raise ValueError(
                f"model.backbone={model.backbone!r} takes {self.input_channels} channels, the data has {in_channels}"
            )
        self.augment = BatchAugment.from_recipe(config.augment)
        # saved in checkpoints, so that a checkpoint alone says how its inputs were normalised
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.num_classes = num_classes
        self.coded_hook: CodedSmoothingHook | None = None
        self._bank: KnnBank | None = None

    # --- coded-smoothing: what a method may change ----------------------------------------------
    def wants_coded(self) -> bool:
        """Whether the recipe asks for the coded branch."""
        return self.config.coded.enabled

    def coded_score(self) -> str:
        """How decoded outputs are scored (CodedSmoothing's `score`)."""
        return self.config.coded.score

    def coded_passes(self) -> int | None:
        """Coded passes per step at most (None: every forward through the hooked submodule)."""
        return self.config.coded.max_passes_per_step or None

    def coded_submodule(self) -> str:
        placement = self.config.coded.placement or next(iter(self.placements))
        name = self.placements.get(placement, placement)
        valid = {n for n, _ in self.named_modules()}
        if name not in valid:
            raise ValueError(
                f"coded.placement={placement!r} is neither a placement of {type(self).__name__} "
                f"({', '.join(self.placements)}) nor a submodule name; e.g. {', '.join(sorted(valid - {''})[:8])}"
            )
        return name

    def setup(self, stage: str) -> None:
        # after __init__ (momentum copies already made) and on every rank, before a resume
        # restores the RNG: each rank draws its own augmentations and masks
        torch.manual_seed(self.config.seed + self.global_rank)
        if self.config.trainer.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.wants_coded() and self.coded_hook is None:
            regularizer = coded_regularizer(self.config.coded, self.coded_score())
            self.coded_hook = CodedSmoothingHook(
                self, regularizer, self.coded_submodule(), max_passes_per_step=self.coded_passes()
            )

    def current_loss_floor(self) -> float | Tensor:
        """The lowest value this step's loss could take (`loss_floor`; DINO's moves with its teacher)."""
        return self.loss_floor

    def with_coded_penalty(self, loss: Tensor, batch_size: int) -> Tensor:
        """`loss` plus the step's coded penalty (none without the branch), weighted as `coded.weighting`
        says: `absolute` adds weight x score, `loss` weight x (loss - floor), `gradient` a penalty whose
        gradient on the hooked parameters is weight x the loss's (`CodedSmoothingHook.regularize`). The
        penalty added and its decoding fidelity are logged."""
        if self.coded_hook is None:
            return loss
        if self.config.coded.weighting in ("loss", "gradient"):
            relative_to = self.config.coded.weighting
            total = self.coded_hook.regularize(loss, floor=self.current_loss_floor(), relative_to=relative_to)
            penalty = total - loss
        else:
            penalty = self.coded_hook.pop_penalty()
            total = loss + penalty
        self.log("train_coded_penalty", penalty, prog_bar=True, batch_size=batch_size)
        for name, value in self.coded_hook.regularizer.last_fidelity.items():
            self.log(f"train_coded_{name}", value, batch_size=batch_size)
        return total

    # --- steps ----------------------------------------------------------------------------------
    def to_input(self, images: Tensor) -> Tensor:
        """uint8 (n, C, H, W) -> normalised, in the parameters' dtype and the recipe's memory format (grey
        images repeated to the backbone's 3 channels where it takes them)."""
        x = (images.to(self.mean.dtype) / 255 - self.mean) / self.std
        if x.shape[1] != self.input_channels:
            x = x.expand(-1, self.input_channels, -1, -1)
        return self.formatted(x)

    def encode(self, images: Tensor) -> Tensor:
        """Backbone features (float32) of uint8 images (n, C, H, W), moved to the model's device: the
        encoder as training monitors it and as evaluation and the run summary see it."""
        return self.backbone(self.to_input(images.to(self.device))).float()

    def formatted(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.config.trainer.channels_last else x

    def view(self, x: Tensor) -> Tensor:
        """An augmented view of a normalised batch (grid_sample returns NCHW: format it again)."""
        return self.formatted(self.augment(x) if self.config.augment.enabled else x)

    def on_before_backward(self, loss: Tensor) -> None:
        # every method's loss passes here (the supervised one too): stop before the step, so the
        # weights and every checkpoint stay finite
        if not torch.isfinite(loss):
            self.stop_on_divergence({"loss": loss})

    def stop_on_divergence(self, parts: dict[str, Tensor]) -> None:
        """Raise DivergenceError naming the step, the non-finite values and the last good checkpoint."""
        values = ", ".join(f"{name} {float(value.detach()):g}" for name, value in parts.items())
        callback = self.trainer.checkpoint_callback if self._trainer is not None else None
        last = getattr(callback, "last_model_path", "") or "none yet"
        raise DivergenceError(
            f"training diverged at step {self.global_step} (epoch {self.current_epoch}): {values}; "
            f"last good checkpoint: {last}; lower optim.lr (now {self.config.optim.lr:g}) or check the data"
        )

    def on_validation_epoch_start(self) -> None:
        # the kNN bank: features of (a subset of) the train split, with the current weights, kept on the
        # training device (ssl_coded.data.encode would take them through host memory every epoch)
        datamodule = self.trainer.datamodule
        features, labels = [], []
        with torch.no_grad():
            for images, targets in datamodule.bank_loader():
                features.append(self.encode(images))
                labels.append(targets.to(self.device))
        self._bank = KnnBank(torch.cat(features), torch.cat(labels))

    def log_val_knn(self, features: Tensor, labels: Tensor) -> None:
        ranked = self._bank.predict(
            features, self.num_classes, self.config.eval.knn_k, self.config.eval.knn_temperature
        )
        top1 = (ranked[:, 0] == labels).float().mean()
        self.log("val_knn_top1", top1, prog_bar=True, sync_dist=True, batch_size=len(labels))

    def on_validation_epoch_end(self) -> None:
        self._bank = None

    def test_metrics(self, splits: Splits) -> dict[str, float | str]:
        """Extra figures for the run summary (a classifier's test and train accuracy); none by default."""
        return {}

    # --- reproducible resume: the RNG that drives shuffling and augmentation travels along ------
    # (checkpoints are written by rank 0: other ranks restore rank 0's state offset by their rank)
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            checkpoint["rng_cuda"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.fill_normalisation(checkpoint.get("state_dict", {}))
        if "rng_torch" in checkpoint:
            torch.set_rng_state(checkpoint["rng_torch"].cpu())
        if "rng_cuda" in checkpoint and self.device.type == "cuda":
            torch.cuda.set_rng_state(checkpoint["rng_cuda"].cpu(), self.device)
        if self.global_rank:
            torch.manual_seed(int(torch.randint(2**31, (1,))) + self.global_rank)

    def fill_normalisation(self, state_dict: dict[str, Tensor]) -> None:
        """Give an older checkpoint (written before mean/std were stored) the ones this model computed
        from its recipe's data, so that it still loads strictly."""
        for name in ("mean", "std"):
            state_dict.setdefault(name, getattr(self, name).clone())

    # --- optimisation ---------------------------------------------------------------------------
    def parameter_groups(self, apart: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Weights with weight decay, and biases and norms without (lightly's split), over every child
        module but those `apart` (which a subclass puts in groups of its own)."""
        trained = [m for name, m in self.named_children() if name not in apart]
        decay, no_decay = get_weight_decay_parameters(trained)
        decay, no_decay = [p for p in decay if p.requires_grad], [p for p in no_decay if p.requires_grad]
        no_decay += [p for p in self.parameters(recurse=False) if p.requires_grad]  # e.g. MAE's mask token
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    def configure_optimizers(self) -> dict[str, Any]:
        optim = self.config.optim
        world = self.trainer.world_size if self._trainer is not None else 1
        lr = optim.lr * self.config.trainer.batch_size * world / 256
        groups = self.parameter_groups()
        if optim.name == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=optim.weight_decay)
        elif optim.name == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        else:
            optimizer = LARS(groups, lr=lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = max(1, total_steps // max(1, self.trainer.max_epochs))
        scheduler = CosineWarmupScheduler(  # per step: linear warm-up, then cosine to 0.001 x lr
            optimizer, warmup_epochs=min(optim.warmup_epochs * steps_per_epoch, total_steps), max_epochs=total_steps
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class SSLMethod(TrainedModel):
    """Base of SimCLR, BYOL and MAE: `ssl_step` gives the loss, the coded penalty is added, and lightly's
    online linear classifier follows the detached features (in its own parameter group)."""

    def __init__(self, config: RecipeConfig, **data: Any) -> None:
        super().__init__(config, **data)
        self.online_classifier = OnlineLinearClassifier(self.feature_dim, self.num_classes, topk=(1,))

    # --- to implement ---------------------------------------------------------------------------
    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(method loss, backbone features of the un-augmented or first view) for a float batch."""
        raise NotImplementedError

    def ema_momentum(self) -> float:
        """The EMA momentum of this step: cosine from method.momentum_start to method.momentum_end over the
        run's steps (lightly's `cosine_schedule`); the start value before a trainer is attached."""
        m = self.config.method
        if self._trainer is None:
            return float(m.momentum_start)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return float(cosine_schedule(self.global_step, total, m.momentum_start, m.momentum_end))

    def with_mixing(self, loss: Tensor, mixing_loss: Tensor, batch_size: int) -> Tensor:
        """The method's loss plus its i-Mix term (method.mixing), weighted; the term is logged."""
        self.log("train_mixing_loss", mixing_loss, batch_size=batch_size)
        return loss + self.config.method.mixing_weight * mixing_loss

    # --- steps ----------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        loss, features = self.ssl_step(self.to_input(images))
        batch_size = len(labels)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch_size)
        total = self.with_coded_penalty(loss, batch_size)
        cls_loss, cls_log = self.online_classifier.training_step((features.detach(), labels), batch_idx)
        self.log_dict(cls_log, batch_size=batch_size)
        return total + cls_loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        features = self.encode(images)
        self.log_val_knn(features, labels)
        _, cls_log = self.online_classifier.validation_step((features, labels), batch_idx)
        self.log_dict(cls_log, sync_dist=True, batch_size=len(labels))

    def parameter_groups(self, apart: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        online = {"params": list(self.online_classifier.parameters()), "weight_decay": 0.0}
        return [*super().parameter_groups((*apart, "online_classifier")), online]


class MomentumMethod(SSLMethod):
    """A method with an EMA copy of its backbone and projection head (MoCo v2 and v3, BYOL): a subclass
    builds `projection_head`, then calls `copy_for_momentum()`. The copies are made in `__init__`, before
    the coded hook is attached in `setup`, and run under no_grad: the coded branch never touches them."""

    projection_head: torch.nn.Module

    def copy_for_momentum(self) -> None:
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def update_momentum_copies(self) -> None:
        """One EMA step of the copies, at this step's momentum (`ema_momentum`)."""
        momentum = self.ema_momentum()
        update_momentum(self.backbone, self.backbone_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)

    @torch.no_grad()
    def forward_momentum(self, x: Tensor) -> Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x))


class TwoViewMethod(SSLMethod):
    """Two augmented views through the backbone and `projection_head`, scored by `self.criterion(z0, z1)`
    (VICReg, Barlow Twins): a subclass builds the head and the criterion. `method.mixing=imix` adds
    i-Mix's loss in its mixture-of-losses form (`imix_partner_loss`; one more pass per step).

    Coded branch placements: "embedding" (default; the projection head runs on coded backbone features)
    or "input" (the backbone runs on coded images).
    """

    placements: ClassVar[dict[str, str]] = {"embedding": "projection_head", "input": "backbone"}
    projection_head: torch.nn.Module
    criterion: torch.nn.Module

    def forward(self, x: Tensor) -> Tensor:
        return self.projection_head(self.backbone(x))

    def ssl_step(self, images: Tensor) -> tuple[Tensor, Tensor]:
        view0, view1 = self.view(images), self.view(images)
        h0, h1 = self.backbone(view0), self.backbone(view1)
        z0 = self.projection_head(h0)  # first: the coded hook (one pass per step) codes the first view
        z1 = self.projection_head(h1)
        loss = self.criterion(z0, z1)
        if self.config.method.mixing == "imix":
            m = self.config.method
            weight, perm = mixing_weight(m.mixing_alpha), torch.randperm(len(images), device=z1.device)
            mixed = self.forward(self.formatted(mix(view0, weight, perm)))
            loss = self.with_mixing(loss, imix_partner_loss(self.criterion, mixed, z1, weight, perm), len(images))
        return loss, h0


class MultiCropMethod(SSLMethod):
    """A method that also trains on `method.num_local_crops` small crops (DINO, SwAV): sampled from
    `method.local_crop_scale` of the image at `method.local_crop_size` pixels, in the same batched pass as
    the global views. Local crops need a backbone that takes any image size (the CNNs, not the ViT)."""

    def __init__(self, config: RecipeConfig, **data: Any) -> None:
        super().__init__(config, **data)
        m = config.method
        if m.num_local_crops and config.model.backbone == "vit":
            raise ValueError(
                "method.num_local_crops needs a backbone that takes any image size; with model.backbone=vit set it to 0"
            )
        self.local_augment = BatchAugment.from_recipe(config.augment, crop_scale=m.local_crop_scale)
        self.local_size = m.local_crop_size or max(1, round(data["image_size"] * 3 / 7))
        if m.num_local_crops and is_named(config.model.backbone):  # a timm ViT takes one size: refuse now
            name = f"{config.model.backbone!r} at local crops"
            feature_dim(self.backbone, self.input_channels, self.local_size, name)

    def local_views(self, images: Tensor) -> list[Tensor]:
        return [
            self.formatted(self.local_augment(images, size=self.local_size))
            for _ in range(self.config.method.num_local_crops)
        ]
