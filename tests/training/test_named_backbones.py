"""Pretraining on a model named by spec (`model.backbone=torchvision:resnet18`, `timm:...`): built by
`ssl_coded.models`, its feature size found by a dry run, grey images repeated to its 3 channels."""

import json

import pytest
import torch
import torchvision

from ssl_coded.cli import main
from ssl_coded.data import load_splits
from ssl_coded.models import EncoderError
from ssl_coded.training.config import ConfigError
from ssl_coded.training.methods import build_method
from ssl_coded.training.recipes import load_config
from tests.data.test_datasets import make_image_folder

SMALL = ["data.max_train=64", "data.max_test=32"]


def test_a_torchvision_backbone_pretrains_on_grey_digits_with_its_own_keys():
    config = load_config("mocov3-digits", [*SMALL, "model.backbone=torchvision:resnet18"])
    splits = load_splits(config.data)
    torch.manual_seed(0)
    method = build_method(config, splits)
    assert method.feature_dim == torchvision.models.resnet18().fc.in_features == 512
    reference = {k for k in torchvision.models.resnet18().state_dict() if not k.startswith("fc.")}
    assert set(method.backbone.state_dict()) == reference  # loads into torchvision's model as it is
    images = splits.train.images[:16]
    x = method.to_input(images)
    grey = (images.float() / 255 - method.mean) / method.std
    assert x.shape[1] == 3 and all(torch.equal(x[:, c], grey[:, 0]) for c in range(3))
    loss, features = method.ssl_step(x)
    assert torch.isfinite(loss) and features.shape == (16, 512)


def test_a_named_backbone_is_drawn_from_the_recipes_seed():
    config = load_config("simclr-digits", [*SMALL, "model.backbone=torchvision:resnet18"])
    splits = load_splits(config.data)
    weights = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        weights.append(build_method(config, splits).backbone.conv1.weight)
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_backbone_names_and_specs_are_checked_before_anything_is_built(monkeypatch):
    with pytest.raises(ConfigError, match=r"model.backbone='nope' is not one of small_cnn, .*, timm:NAME, module"):
        load_config("simclr-digits", ["model.backbone=nope"])
    with pytest.raises(ConfigError, match=r"model.backbone=':resnet18' names no model; write torchvision:NAME or"):
        load_config("simclr-digits", ["model.backbone=:resnet18"])
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "timm" else object())
    with pytest.raises(ConfigError, match=r"needs timm: pip install 'ssl-coded\[timm\]'"):
        load_config("simclr-digits", ["model.backbone=timm:resnet18"])


def test_a_model_that_cannot_take_the_images_is_refused_before_the_run_directory(tmp_path, capsys):
    pytest.importorskip("timm")
    code = main(["pretrain", "simclr-digits", "model.backbone=timm:vit_tiny_patch16_224", f"out_dir={tmp_path}"])
    assert code == 2 and not any(tmp_path.iterdir())
    assert "model.backbone='timm:vit_tiny_patch16_224' does not run on 3x8x8 images" in capsys.readouterr().err


@pytest.mark.slow
def test_a_timm_vit_pretrains_at_224_pixels(tmp_path):
    pytest.importorskip("timm")
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=8, size=224)
    args = ["pretrain", "mocov3-imagefolder", f"data.root={root}", "data.num_workers=0", "data.val_fraction=0.25"]
    args += ["model.backbone=timm:vit_tiny_patch16_224", "method.hidden_dim=64", "method.prediction_hidden_dim=64"]
    args += ["trainer.max_epochs=1", "trainer.batch_size=4", "trainer.accelerator=cpu", "trainer.precision=32-true"]
    args += ["trainer.channels_last=false", "coded.enabled=true", "eval.bank_size=16", f"out_dir={tmp_path}"]
    assert main([*args, "name=vit"]) == 0
    assert json.loads((tmp_path / "vit" / "summary.json").read_text())["coded"] is True
    state = torch.load(tmp_path / "vit" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["backbone.cls_token"].shape == (1, 1, 192)  # timm's vit_tiny, 192-wide tokens
    assert state["projection_head.layers.0.weight"].shape == (64, 192)  # sized by the dry run


def test_local_crops_on_a_model_built_for_one_size_are_refused_when_the_method_is_built(tmp_path):
    pytest.importorskip("timm")
    root = make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=2, size=224)
    overrides = [f"data.root={root}", "data.num_workers=0", "data.val_fraction=0.25", "trainer.accelerator=cpu"]
    config = load_config("dino-imagefolder", [*overrides, "model.backbone=timm:vit_tiny_patch16_224"])
    with pytest.raises(EncoderError, match=r"'timm:vit_tiny_patch16_224' at local crops does not run on 3x96x96"):
        build_method(config, load_splits(config.data))
