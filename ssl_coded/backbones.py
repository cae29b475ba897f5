"""Backbones that fit small images."""

from __future__ import annotations

from torch import Tensor, nn


def _conv_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Five 3x3 conv blocks (two of stride 2) and global average pooling: 8x8 to 32x32 images.

    Args:
        in_channels: image channels.
        width: channels of the first block; later blocks use 2x and 4x.

    Attributes:
        feature_dim: size of the output embedding (4 * width).

    Example:
        >>> backbone = SmallCNN(in_channels=1)
        >>> features = backbone(torch.randn(8, 1, 28, 28))  # (8, 128)
    """

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.feature_dim = 4 * width
        self.features = nn.Sequential(
            _conv_block(in_channels, width, 1),
            _conv_block(width, 2 * width, 2),
            _conv_block(2 * width, 2 * width, 1),
            _conv_block(2 * width, 4 * width, 2),
            _conv_block(4 * width, 4 * width, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
