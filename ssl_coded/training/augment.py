"""Batched image augmentations on tensors: one kernel call per batch, on the batch's device.

Per-image augmentation in data-loader workers costs more than a small model's step on a CPU; a
random affine crop for the whole batch is one `grid_sample`, and runs on the GPU unchanged.

Example:
    >>> augment = BatchAugment(crop_scale=(0.5, 1.0))
    >>> view0, view1 = augment(images), augment(images)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BatchAugment(nn.Module):
    """Random resized crop (with aspect jitter and optional flip), contrast/brightness jitter, noise.

    Args:
        crop_scale: range of the crop's area as a fraction of the image.
        aspect: range of the crop's aspect ratio (log-uniform).
        horizontal_flip: probability of a left-right flip (0 for digits and letters).
        brightness: maximal additive brightness change, in units of the image range.
        contrast: maximal relative contrast change.
        noise: standard deviation of added Gaussian noise.
    """

    def __init__(
        self,
        crop_scale: tuple[float, float] = (0.4, 1.0),
        aspect: tuple[float, float] = (3 / 4, 4 / 3),
        horizontal_flip: float = 0.0,
        brightness: float = 0.2,
        contrast: float = 0.2,
        noise: float = 0.0,
    ) -> None:
        super().__init__()
        self.crop_scale, self.aspect = crop_scale, aspect
        self.horizontal_flip, self.brightness, self.contrast, self.noise = horizontal_flip, brightness, contrast, noise

    @classmethod
    def from_recipe(cls, augment: Any, crop_scale: Sequence[float] | None = None) -> BatchAugment:
        """The recipe's `augment` section as a BatchAugment; `crop_scale` replaces its own (DINO's local crops)."""
        scale = tuple(crop_scale if crop_scale is not None else augment.crop_scale)
        return cls(scale, (3 / 4, 4 / 3), augment.horizontal_flip, augment.brightness, augment.contrast, augment.noise)

    def _uniform(self, n: int, low: float, high: float, like: Tensor) -> Tensor:
        return torch.empty(n, device=like.device, dtype=like.dtype).uniform_(low, high)

    def forward(self, images: Tensor, size: int | None = None) -> Tensor:
        """Augmented views of a batch, at `size` x `size` pixels (None: the images' own size; a smaller size
        makes DINO's and SwAV's local crops, sampled from the crop in one pass)."""
        n = images.shape[0]
        area = self._uniform(n, *self.crop_scale, images)
        log_aspect = self._uniform(n, math.log(self.aspect[0]), math.log(self.aspect[1]), images)
        ratio = torch.exp(log_aspect)
        scale_x = torch.sqrt(area * ratio).clamp(max=1.0)
        scale_y = torch.sqrt(area / ratio).clamp(max=1.0)
        shift_x = (1 - scale_x) * self._uniform(n, -1.0, 1.0, images)
        shift_y = (1 - scale_y) * self._uniform(n, -1.0, 1.0, images)
        flip = torch.where(self._uniform(n, 0.0, 1.0, images) < self.horizontal_flip, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = scale_x * flip, shift_x
        theta[:, 1, 1], theta[:, 1, 2] = scale_y, shift_y
        shape_out = list(images.shape) if size is None else [n, images.shape[1], size, size]
        grid = F.affine_grid(theta, shape_out, align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

        shape = (n,) + (1,) * (images.dim() - 1)
        mean = out.mean(dim=tuple(range(1, images.dim())), keepdim=True)
        contrast = 1 + self._uniform(n, -self.contrast, self.contrast, images).view(shape)
        brightness = self._uniform(n, -self.brightness, self.brightness, images).view(shape)
        out = (out - mean) * contrast + mean + brightness
        if self.noise > 0:
            out = out + self.noise * torch.randn_like(out)
        return out
