"""`ssl_coded.encoders`: one resolver for every ENCODER argument, checked against what the encoder is
when built by hand (torchvision's model fed the documented preprocessing; the run's own trained method)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from ssl_coded.data import DataConfig, load_splits
from ssl_coded.encoders import load_encoder, resolve_encoder
from ssl_coded.errors import ConfigError

DATA = ["max_train=64", "max_test=32"]


def by_hand_resnet(seed: int = 0) -> nn.Module:
    """torchvision's resnet18 at the seed's initialisation, its classifier removed: what the spec names."""
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = resnet18(weights=None)
    model.fc = nn.Identity()
    return model.eval()


def imagenet_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 grayscale -> [0, 1], repeated to RGB, normalised with ImageNet's mean and std."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return ((images.float() / 255).expand(-1, 3, -1, -1) - mean) / std


@torch.no_grad()
def test_a_spec_is_the_model_fed_its_documented_preprocessing():
    encoder = resolve_encoder("torchvision:resnet18", data=DATA)
    images = load_splits(DataConfig(max_train=64, max_test=32)).test.images[:8]
    expected = by_hand_resnet()(imagenet_input(images))
    torch.testing.assert_close(encoder.module(images), expected, atol=1e-5, rtol=1e-5)
    assert encoder.record["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert encoder.record["data"]["max_train"] == 64 and "num_workers" not in encoder.record["data"]
    assert encoder.random_init is None  # no weights: the encoder is its own random initialisation
    assert encoder.splits.num_classes == 10


@torch.no_grad()
def test_weights_are_found_under_their_prefix_and_recorded_with_their_hash(tmp_path):
    trained = by_hand_resnet(seed=7)
    path = tmp_path / "w.pt"
    torch.save({f"backbone.{k}": v for k, v in trained.state_dict().items()}, path)
    encoder = resolve_encoder("torchvision:resnet18", weights=path, data=DATA)
    record = encoder.record
    assert record["prefix"] == "backbone." and record["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    images = encoder.splits.test.images[:4]
    torch.testing.assert_close(encoder.module(images), trained(imagenet_input(images)), atol=1e-5, rtol=1e-5)
    floor = encoder.random_init()  # with weights, the random-init floor is the seed's initialisation
    torch.testing.assert_close(floor.module(images), by_hand_resnet()(imagenet_input(images)), atol=1e-5, rtol=1e-5)
    assert floor.key != encoder.key


def test_load_encoder_gives_a_spec_bare_and_a_run_with_its_normalisation(quick_run):
    from ssl_coded.training.checkpoints import load_trained

    assert not any(type(m).__name__ == "Preprocess" for m in load_encoder("torchvision:resnet18").modules())
    images = load_trained(quick_run).splits.test.images[:8]
    expected = load_trained(quick_run).features(images)
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(quick_run)(images), expected)
        resolved = resolve_encoder(quick_run)
        torch.testing.assert_close(resolved.module(images), expected)
    checkpoint = quick_run / "checkpoints" / "best.ckpt"
    assert resolved.key == resolved.record["checkpoint_hash"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert resolved.random_init is not None and resolved.random_init().key != resolved.key


@pytest.mark.parametrize(
    "options, message",
    [
        ({"weights": "w.pt"}, "drop --weights"),
        ({"normalize": "none"}, "--normalize is for foreign encoders"),
    ],
)
def test_a_run_refuses_what_belongs_to_a_spec(quick_run, options, message):
    with pytest.raises(ConfigError, match=message):
        resolve_encoder(quick_run, **options)


def test_a_prefix_without_weights_is_refused_before_the_data_is_read():
    with pytest.raises(ConfigError, match="--prefix needs --weights"):
        resolve_encoder("torchvision:resnet18", prefix="backbone.", data=["name=imagefolder", "root=/nowhere"])
