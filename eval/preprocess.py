"""What an encoder is fed: the dataset's images made into the encoder's input, explicitly.

The project's datasets yield uint8 images (n, C, H, W) at the data's image size. `Preprocess` turns
them into floats in [0, 1], repeats a grayscale channel when the encoder takes RGB, and normalises
with a mean/std chosen by `normalisation`: `imagenet` (torchvision's and timm's pretrained models,
lightly's default transforms), `dataset` (the train split's own statistics), `none`, or explicit
values `m1,m2,m3:s1,s2,s3`. `describe()` is what results.json records.

Example:
    >>> mean, std = normalisation("imagenet", channels=3)
    >>> preprocess = Preprocess(channels=3, mean=mean, std=std)
    >>> inputs = preprocess(uint8_images)  # float32, (n, 3, H, W), normalised
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALISATIONS = ("imagenet", "dataset", "none", "m1,m2,m3:s1,s2,s3")


def normalisation(
    spec: str, channels: int, dataset_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The (mean, std) a `--normalize` value names, one value per channel of the encoder's input.

    Args:
        spec: `imagenet`, `dataset`, `none` or `m1,m2,m3:s1,s2,s3` (one value broadcasts to all channels).
        channels: the channels the encoder takes.
        dataset_stats: the train split's (mean, std) per channel, for `dataset`.

    Returns:
        (mean, std), or None for `none`.
    """
    if spec == "none":
        return None
    if spec == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif spec == "dataset":
        if dataset_stats is None:
            raise ValueError("--normalize dataset needs the train split's statistics")
        mean, std = dataset_stats
    else:
        mean, std = _explicit(spec)
    mean, std = (_per_channel(values, channels, spec) for values in (mean, std))
    if any(s <= 0 for s in std):
        raise ValueError(f"--normalize {spec}: every std must be positive")
    return mean, std


def _explicit(spec: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        mean_text, std_text = spec.split(":")
        return tuple(map(float, mean_text.split(","))), tuple(map(float, std_text.split(",")))
    except ValueError:
        raise ValueError(
            f"--normalize {spec!r} is not one of {', '.join(NORMALISATIONS)} (e.g. 0.5,0.5,0.5:0.25,0.25,0.25)"
        ) from None


def _per_channel(values: tuple[float, ...], channels: int, spec: str) -> tuple[float, ...]:
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:  # a grayscale statistic, for an encoder fed repeated grayscale channels
        return tuple(values) * channels
    raise ValueError(f"--normalize {spec}: {len(values)} values for an encoder that takes {channels} channels")


class Preprocess(nn.Module):
    """Dataset images -> an encoder's input: floats in [0, 1], grayscale repeated to the encoder's
    channels, normalised.

    Args:
        channels: the channels the encoder takes (None: as the data comes).
        mean, std: per channel of the encoder's input (None: not normalised).
    """

    def __init__(
        self, channels: int | None = None, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None
    ) -> None:
        super().__init__()
        self.channels = channels
        self.normalised = mean is not None and std is not None
        self.register_buffer("mean", torch.tensor(mean or ()).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std or ()).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        if self.channels is not None and x.shape[1] != self.channels:
            if x.shape[1] != 1:
                raise ValueError(f"the data has {x.shape[1]} channels but the encoder takes {self.channels}")
            x = x.expand(-1, self.channels, -1, -1)  # grayscale to RGB
        return (x - self.mean) / self.std if self.normalised else x

    def describe(self) -> dict[str, Any]:
        """What the encoder is fed, for results.json."""
        return {
            "scale": "uint8 / 255",
            "channels": self.channels,
            "mean": [round(v, 6) for v in self.mean.flatten().tolist()] if self.normalised else None,
            "std": [round(v, 6) for v in self.std.flatten().tolist()] if self.normalised else None,
        }
