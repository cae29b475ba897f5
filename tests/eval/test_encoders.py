import pickle
import sys

import pytest
import torch
import torchvision
from ssl_coded.eval.encoders import EncoderError, build_encoder, input_channels, load_weights
from torch import nn


def lightly_style_simclr() -> nn.Module:
    """The model lightly's examples build: a resnet's children but the classifier, and a projection head."""

    class SimCLR(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            resnet = torchvision.models.resnet18()
            self.backbone = nn.Sequential(*list(resnet.children())[:-1])
            self.projection_head = nn.Sequential(nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 16))

    torch.manual_seed(1)
    return SimCLR()


def test_torchvision_resnet_gives_its_pooled_penultimate_features():
    encoder = build_encoder("torchvision:resnet18")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = encoder(x)
        reference = torchvision.models.resnet18()
        reference.load_state_dict(
            {**encoder.state_dict(), "fc.weight": reference.fc.weight, "fc.bias": reference.fc.bias}
        )
        reference.eval()
        by_hand = torch.flatten(reference.avgpool(reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))), 1)  # fmt: skip
    assert features.shape == (2, 512) and torch.allclose(features, by_hand, atol=1e-5)
    assert not encoder.training and input_channels(encoder) == 3


def test_the_penultimate_layer_of_a_classifier_with_hidden_layers():
    encoder = build_encoder("torchvision:mobilenet_v3_small")  # classifier: Linear(576, 1024), act, dropout, Linear
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 1024)


def test_a_seed_gives_the_same_initialisation_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    first, again, other = (build_encoder("torchvision:resnet18", seed) for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.conv1.weight, again.conv1.weight) and not torch.equal(
        first.conv1.weight, other.conv1.weight
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("resnet18", "not torchvision:NAME"),
        ("torchvision:resnet19", "did you mean resnet18"),
        ("torchvision:squeezenet1_0", "no final linear classifier"),
        ("no_such_module_here:build", "cannot import 'no_such_module_here'"),
        ("json:nothing", "json has no callable 'nothing'"),
        ("json:dumps", "needs arguments"),
        ("json:JSONDecoder", "returned JSONDecoder, not a torch.nn.Module"),
    ],
)
def test_bad_specs_name_the_fix(spec, message):
    with pytest.raises(EncoderError, match=message):
        build_encoder(spec)


def test_user_code_returns_the_module(tmp_path, monkeypatch):
    (tmp_path / "my_encoders.py").write_text("import torch\n\ndef tiny():\n    return torch.nn.Linear(4, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    encoder = build_encoder("my_encoders:tiny")
    assert isinstance(encoder, nn.Linear) and input_channels(encoder) is None
    sys.modules.pop("my_encoders", None)


def test_timm_models_give_pooled_features():
    pytest.importorskip("timm")
    encoder = build_encoder("timm:resnet18")
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    with pytest.raises(EncoderError, match="timm has no model"):
        build_encoder("timm:resnet_nineteen")


def test_a_lightly_style_state_dict_loads_under_its_prefix_and_layout(tmp_path):
    model = lightly_style_simclr()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    encoder = build_encoder("torchvision:resnet18")
    assert load_weights(encoder, tmp_path / "w.pt") == {"prefix": "backbone.", "layout": "children"}
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():  # the backbone as lightly trained it, run as lightly runs it
        assert torch.allclose(encoder(x), model.backbone(x).flatten(1), atol=1e-6)


def test_lightning_checkpoints_and_full_classifiers_load(tmp_path):
    source = torchvision.models.resnet18()
    nested = {f"model.backbone.{k}": v for k, v in source.state_dict().items()}  # fc included: it is dropped
    torch.save({"state_dict": nested, "epoch": 3, "optimizer_states": []}, tmp_path / "lightning.ckpt")
    encoder = build_encoder("torchvision:resnet18")
    assert load_weights(encoder, tmp_path / "lightning.ckpt")["prefix"] == "model.backbone."
    assert torch.equal(encoder.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_several_prefixes_are_refused_unless_one_is_chosen(tmp_path):
    online, momentum = torchvision.models.resnet18(), torchvision.models.resnet18()
    state = {f"backbone.{k}": v for k, v in online.state_dict().items()}
    state |= {f"momentum_backbone.{k}": v for k, v in momentum.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "byol.ckpt")
    encoder = build_encoder("torchvision:resnet18")
    with pytest.raises(EncoderError, match=r"several prefixes \('backbone.', 'momentum_backbone.'\); choose one"):
        load_weights(encoder, tmp_path / "byol.ckpt")
    load_weights(encoder, tmp_path / "byol.ckpt", prefix="momentum_backbone.")
    assert torch.equal(encoder.conv1.weight, momentum.conv1.weight)


def test_missing_and_unexpected_weights_are_listed_in_one_line(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    partial = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    torch.save(partial, tmp_path / "partial.pt")
    encoder = build_encoder("torchvision:resnet18")
    with pytest.raises(
        EncoderError, match=r"holds \d+ of the encoder's \d+ weights under prefix ''; \d+ missing"
    ) as info:
        load_weights(encoder, tmp_path / "partial.pt")
    assert "layer4.0.conv1.weight" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(EncoderError, match=r"under prefix '' does not fit the encoder: \d+ missing \(layer4"):
        load_weights(encoder, tmp_path / "partial.pt", prefix="")
    extra = state | {"layer5.weight": torch.zeros(1)}
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(EncoderError, match=r"1 unexpected \(layer5.weight\)"):
        load_weights(encoder, tmp_path / "extra.pt")
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "other.pt")
    with pytest.raises(EncoderError, match=r"does not fit the encoder|other shapes"):
        load_weights(encoder, tmp_path / "other.pt")


def test_files_that_are_not_tensors_are_refused_unread(tmp_path):
    with (tmp_path / "model.pt").open("wb") as handle:  # a whole pickled module: code, not tensors
        pickle.dump(nn.Linear(2, 2), handle)
    with pytest.raises(EncoderError, match=r"weights_only=True"):
        load_weights(build_encoder("torchvision:resnet18"), tmp_path / "model.pt")
    with pytest.raises(EncoderError, match="does not exist"):
        load_weights(build_encoder("torchvision:resnet18"), tmp_path / "missing.pt")
