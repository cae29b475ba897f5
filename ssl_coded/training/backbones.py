"""Backbones: the ones that fit small images, and any model `ssl_coded.models` builds by name
(`torchvision:resnet18`, `timm:vit_tiny_patch16_224`, `module.path:callable`), its classifier removed
and its feature size found by a dry run."""

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
        pool: the last feature map is average-pooled to pool x pool and flattened; 2 keeps
            coarse layout, which weighted kNN on small grayscale images rewards (Fashion-MNIST
            at random init: 0.768 with pool 1, 0.802 with pool 2; k=20, 20k-image bank).

    Attributes:
        feature_dim: size of the output embedding (4 * width * pool^2).

    Example:
        >>> backbone = SmallCNN(in_channels=1)
        >>> features = backbone(torch.randn(8, 1, 28, 28))  # (8, 128)
    """

    def __init__(self, in_channels: int = 1, width: int = 32, pool: int = 1) -> None:
        super().__init__()
        self.feature_dim = 4 * width * pool * pool
        self.features = nn.Sequential(
            _conv_block(in_channels, width, 1),
            _conv_block(width, 2 * width, 2),
            _conv_block(2 * width, 2 * width, 1),
            _conv_block(2 * width, 4 * width, 2),
            _conv_block(4 * width, 4 * width, 1),
            nn.AdaptiveAvgPool2d(pool),
            nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def _resnet(name: str, in_channels: int, cifar_stem: bool) -> tuple[nn.Module, int]:
    """A torchvision ResNet without its classifier; CIFAR stem: 3x3 conv, stride 1, no max-pool."""
    import torchvision

    try:
        resnet = getattr(torchvision.models, name)(weights=None)
    except AttributeError as error:
        raise ValueError(f"unknown torchvision ResNet {name!r}; use resnet18, resnet34, resnet50, ...") from error
    feature_dim = resnet.fc.in_features
    if cifar_stem:
        resnet.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        resnet.maxpool = nn.Identity()
    elif in_channels != 3:
        resnet.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    resnet.fc = nn.Identity()
    return resnet, feature_dim


def vision_transformer(
    image_size: int, in_channels: int, patch_size: int = 0, dim: int = 192, depth: int = 6, heads: int = 3
) -> nn.Module:
    """A small torchvision VisionTransformer (no classifier) sized for the images, for MAE."""
    from torchvision.models.vision_transformer import VisionTransformer

    patch_size = patch_size or next(p for p in (4, 2, 1) if image_size % p == 0 and image_size // p <= 16)
    if image_size % patch_size:
        raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
    vit = VisionTransformer(image_size, patch_size, depth, heads, dim, 4 * dim, num_classes=1)
    if in_channels != 3:
        vit.conv_proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
    vit.heads = nn.Identity()
    return vit


BACKBONES = ("small_cnn", "resnet18_cifar", "vit", "resnet18", "resnet34", "resnet50", "resnet101")
NAMED = ("torchvision:NAME", "timm:NAME", "module.path:callable")  # built by ssl_coded.models


def is_named(name: str) -> bool:
    """Whether a backbone name is a model spec (`kind:NAME`) rather than one of BACKBONES."""
    return ":" in name


def named_backbone(spec: str, in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """(model, feature_dim) for a spec: drawn from the global RNG (the recipe's seed), its feature size
    from a dry run on the data's image size. A 3-channel model takes grey images repeated
    (`TrainedModel.to_input`)."""
    from ssl_coded.models import build_encoder, feature_dim, input_channels

    model = build_encoder(spec, seed=None).train()
    return model, feature_dim(model, input_channels(model) or in_channels, image_size, f"model.backbone={spec!r}")


def build_backbone(name: str, in_channels: int, image_size: int, **options: int) -> tuple[nn.Module, int]:
    """(backbone, feature_dim) by name or spec; `options` are width and pool (small CNN) and ViT sizes."""
    if is_named(name):
        return named_backbone(name, in_channels, image_size)
    if name == "small_cnn":
        backbone = SmallCNN(in_channels, options.get("width", 32), options.get("pool", 1))
        return backbone, backbone.feature_dim
    if name == "resnet18_cifar":
        return _resnet("resnet18", in_channels, cifar_stem=True)
    if name.startswith("resnet"):
        return _resnet(name, in_channels, cifar_stem=False)
    if name == "vit":
        vit = vision_transformer(
            image_size,
            in_channels,
            options.get("patch_size", 0),
            options.get("vit_dim", 192),
            options.get("vit_depth", 6),
            options.get("vit_heads", 3),
        )
        return vit, vit.hidden_dim
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES + NAMED)}")
