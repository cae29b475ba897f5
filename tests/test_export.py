"""`ssl-coded export`: the backbone in its library's key names, features equal to the run's, refusals first."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_coded.cli import main
from ssl_coded.encoders import load_encoder, resolve_encoder
from ssl_coded.export import export_run, load_export
from ssl_coded.training.checkpoints import load_trained

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


def pretrain(tmp_path, name, *overrides, recipe="simclr-digits"):
    assert main(["pretrain", recipe, *QUICK, *overrides, f"out_dir={tmp_path}", f"name={name}"]) == 0
    return tmp_path / name


def max_difference(run, exported, images):
    """The run's features (its own checkpoint loading, independent of the export) against the export's."""
    with torch.no_grad():
        expected = load_trained(run).features(images)
        got = exported(images)
    difference = float((expected - got).abs().max())
    print(f"{run.name}: max abs difference {difference:.2e} over {tuple(got.shape)} features")
    return difference


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small-CNN digits run (one for the module's fast tests), exported by the command line."""
    run = pretrain(tmp_path_factory.mktemp("runs"), "cnn")
    assert main(["export", str(run)]) == 0
    return run


EXPORTED = ["README.md", "encoder.json", "encoder.pt"]


def test_small_cnn_export_gives_the_runs_features_and_is_an_encoder(exported):
    run, folder = exported, exported / "export"
    assert sorted(p.name for p in folder.iterdir() if p.name in EXPORTED) == EXPORTED
    record = json.loads((folder / "encoder.json").read_text())
    assert record["schema_version"] == 1 and record["architecture"]["library"] == "ssl-coded"
    assert record["input"]["channels"] == 1 and record["input"]["image_size"] == 8
    assert record["source"]["checkpoint"] == "checkpoints/best.ckpt" and record["feature_dim"] == 32 * 4
    images = load_trained(run).splits.test.images[:64]
    assert max_difference(run, load_encoder(folder), images) <= 1e-6
    # the README's lines build the class and load the weights strictly
    code = (folder / "README.md").read_text().split("```python\n")[1].split("```")[0]
    scope: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        exec(code, scope)  # the export's own README
    assert sum(p.numel() for p in scope["model"].parameters()) == sum(
        p.numel() for p in load_trained(run).method.backbone.parameters()
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "recipe", "overrides"),
    [
        ("resnet18-grey", "simclr-digits", ["model.backbone=resnet18"]),
        ("resnet18-cifar", "simclr-digits", ["model.backbone=resnet18_cifar"]),
        ("torchvision-resnet18", "simclr-digits", ["model.backbone=torchvision:resnet18"]),
        ("mae-vit", "mae-digits", []),
    ],
)
def test_exported_features_equal_the_runs(tmp_path, name, recipe, overrides):
    run = pretrain(tmp_path, name, *overrides, recipe=recipe)
    folder = export_run(run)
    images = load_trained(run).splits.test.images[:64]
    encoder, record = load_export(folder)
    assert record["architecture"]["library"] == "torchvision"
    assert max_difference(run, encoder, images) <= 1e-6


def rgb_folder(root, per_class=12, size=16):
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", 4)):
        for kind in ("a", "b"):
            (root / split / kind).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                pixels[..., 0 if kind == "a" else 2] //= 2
                Image.fromarray(pixels).save(root / split / kind / f"{i}.png")
    return root


PLAIN_TORCHVISION = """
import json, sys
sys.modules["ssl_coded"] = None  # this process cannot import ssl_coded
try:
    import ssl_coded
except ImportError:
    pass
else:
    raise SystemExit("ssl_coded was importable")
import torch, torchvision
folder, images_file, out = sys.argv[1:]
model = torchvision.models.resnet18()  # the unmodified class
model.fc = torch.nn.Identity()
model.load_state_dict(torch.load(f"{folder}/encoder.pt", weights_only=True), strict=True)
fed = json.load(open(f"{folder}/encoder.json"))["input"]
mean, std = (torch.tensor(fed[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
images = torch.load(images_file, weights_only=True)
with torch.no_grad():
    torch.save(model.eval()((images.float() / 255 - mean) / std), out)
"""


@pytest.mark.slow
def test_rgb_resnet18_export_loads_strictly_into_plain_torchvision_without_ssl_coded(tmp_path):
    root = rgb_folder(tmp_path / "folder")
    data = ["data.name=imagefolder", f"data.root={root}", "data.image_size=16", "data.val_fraction=0.25"]
    run = pretrain(tmp_path, "rgb", "model.backbone=resnet18", "trainer.batch_size=8", *data)
    folder = export_run(run)
    record = json.loads((folder / "encoder.json").read_text())
    assert record["input"]["channels"] == 3 and record["architecture"]["changes"] == ["model.fc = torch.nn.Identity()"]
    images = load_trained(run).splits.test.images
    torch.save(images, tmp_path / "images.pt")
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_TORCHVISION)
    command = [sys.executable, str(script), str(folder), str(tmp_path / "images.pt"), str(tmp_path / "features.pt")]
    subprocess.run(command, check=True, cwd=tmp_path)
    plain = torch.load(tmp_path / "features.pt", weights_only=True)
    expected = load_trained(run).features(images)
    difference = float((plain - expected).abs().max())
    print(f"plain torchvision against the run: max abs difference {difference:.2e}")
    assert plain.shape == (8, 512) and difference <= 1e-6


@pytest.mark.slow
def test_timm_backbone_exports_with_timms_keys_and_pretrained_cfg(tmp_path):
    timm = pytest.importorskip("timm")
    run = pretrain(tmp_path, "timm", "model.backbone=timm:resnet18")
    folder = export_run(run, format="safetensors")
    record = json.loads((folder / "encoder.json").read_text())
    assert record["architecture"]["library"] == "timm" and record["weights"]["file"] == "encoder.safetensors"
    assert record["pretrained_cfg"]["input_size"] == [3, 8, 8] and record["pretrained_cfg"]["num_classes"] == 0
    from safetensors.torch import load_file

    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    model.load_state_dict(load_file(folder / "encoder.safetensors"), strict=True)
    images = load_trained(run).splits.test.images[:32]
    assert max_difference(run, load_export(folder)[0], images) <= 1e-6


@pytest.mark.slow
def test_eval_of_an_export_gives_the_runs_row(exported, capsys):
    run = exported
    assert main(["eval", "knn", str(run), "--no-floors"]) == 0
    assert main(["eval", "knn", str(run / "export"), "--dataset", "name=digits", "--no-floors"]) == 0
    rows = [json.loads((path / "results.json").read_text()) for path in (run, run / "export")]
    assert rows[0]["rows"]["encoder"]["knn_instdisc_top1"] > 0.2  # a trained encoder's row, not an empty one
    assert rows[0]["rows"]["encoder"] == rows[1]["rows"]["encoder"]
    encoder = resolve_encoder(run / "export")
    assert encoder.record["checkpoint_hash"] == resolve_encoder(run).record["checkpoint_hash"]


def test_refusals_come_before_any_write_and_a_finished_export_is_never_rewritten(exported, tmp_path, capsys):
    run, folder = exported, exported / "export"
    before = {name: (folder / name).stat().st_mtime_ns for name in EXPORTED}
    assert main(["export", str(run)]) == 0  # the same export again: nothing written
    assert main(["export", str(run), "--format", "safetensors"]) == 2
    assert "already holds an export" in capsys.readouterr().err
    assert {name: (folder / name).stat().st_mtime_ns for name in EXPORTED} == before
    assert not (folder / "encoder.safetensors").exists()
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "has no checkpoints/best.ckpt" in capsys.readouterr().err
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "model.pt").write_bytes(b"a user's file")
    assert main(["export", str(run), "--out", str(tmp_path / "theirs")]) == 2
    assert "holds other files" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "theirs").iterdir()) == ["model.pt"]
    assert main(["export", str(run), "--out", str(tmp_path / "last"), "--checkpoint", "last"]) == 0
    (tmp_path / "last" / "encoder.pt").write_bytes(b"not the weights")
    with pytest.raises(ValueError, match=r"not the file encoder.json names"):
        load_export(tmp_path / "last")
