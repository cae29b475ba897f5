import pytest
import torch
import torchvision
from torch import nn

from ssl_coded.models import EncoderError, build_encoder, feature_dim


def test_feature_dim_is_the_size_of_the_removed_classifiers_input():
    for name in ("resnet18", "mobilenet_v3_small"):
        classifier = torchvision.models.get_model(name, weights=None)
        head = [m for m in classifier.modules() if isinstance(m, nn.Linear)][-1]
        assert feature_dim(build_encoder(f"torchvision:{name}"), 3, 32) == head.in_features


def test_feature_dim_leaves_the_mode_and_the_statistics_as_they_were():
    encoder = build_encoder("torchvision:resnet18").train()
    before = encoder.bn1.running_mean.clone()
    feature_dim(encoder, 3, 32)
    assert encoder.training and torch.equal(encoder.bn1.running_mean, before)


def test_a_model_that_does_not_take_the_size_or_does_not_pool_is_refused_in_one_line():
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    with pytest.raises(EncoderError, match=r"^model.backbone='x' does not run on 3x8x8 images \(.*\); pick one"):
        feature_dim(vit, 3, 8, "model.backbone='x'")
    with pytest.raises(EncoderError, match=r"returns \(2, 4, 8, 8\) for a batch, not \(n, d\) features"):
        feature_dim(nn.Conv2d(3, 4, 3, padding=1), 3, 8)


def test_seed_none_draws_from_the_global_generator():
    torch.manual_seed(3)
    first = build_encoder("torchvision:resnet18", seed=None).conv1.weight
    torch.manual_seed(3)
    again = build_encoder("torchvision:resnet18", seed=None).conv1.weight
    torch.manual_seed(4)
    other = build_encoder("torchvision:resnet18", seed=None).conv1.weight
    assert torch.equal(first, again) and not torch.equal(first, other)
