"""`ssl-coded eval` on encoders trained elsewhere, as a new user runs it: a torchvision resnet18
trained by a lightly-style SimCLR loop, saved as a state_dict, evaluated on an image folder."""

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from PIL import Image
from torch import nn

from ssl_coded.cli import main
from ssl_coded.commands import default_out

CLASSES = ("circle", "square", "stripes")
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python(marker: str) -> str:
    """The README's python block that contains `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(block for block in blocks if marker in block)


def readme_command(marker: str) -> list[str]:
    """The README's `ssl-coded ...` command line that contains `marker`, as arguments."""
    line = next(line for line in README.read_text().splitlines() if line.startswith("ssl-coded ") and marker in line)
    return shlex.split(line.split("#")[0])[1:]


def draw(kind: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A coloured shape on noise; the class is the shape."""
    width, height = size
    image = rng.integers(0, 60, (height, width, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    cy, cx, r = height / 2 + rng.uniform(-3, 3), width / 2 + rng.uniform(-3, 3), rng.uniform(6, 10)
    if kind == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    elif kind == "square":
        mask = (abs(yy - cy) < r) & (abs(xx - cx) < r)
    else:
        mask = (xx // 4) % 2 == 0
    image[mask] = rng.integers(150, 256, 3)
    return Image.fromarray(image)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, count in (("train", 30), ("test", 10)):
        for kind in CLASSES:
            (root / split / kind).mkdir(parents=True)
            for i in range(count):
                draw(kind, rng, (40, 34)).save(root / split / kind / f"{i}.png")  # not square: cropped, not squashed
    return root


@pytest.fixture(scope="module")
def lightly_weights(tmp_path_factory, image_folder):
    """A few steps of lightly's plain SimCLR example loop, saved with torch.save(model.state_dict())."""

    class SimCLR(nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.projection_head = SimCLRProjectionHead(512, 128, 32)

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    model = SimCLR(nn.Sequential(*list(resnet.children())[:-1]))
    transform = torchvision.transforms.Compose(
        [torchvision.transforms.RandomResizedCrop(32, scale=(0.5, 1.0)), torchvision.transforms.ToTensor()]
    )
    dataset = torchvision.datasets.ImageFolder(
        image_folder / "train", transform=lambda im: (transform(im), transform(im))
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True, drop_last=True)
    criterion, optimizer = NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.06)
    for (x0, x1), _ in loader:
        loss = criterion(model(x0), model(x1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    path = tmp_path_factory.mktemp("weights") / "w.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_the_readme_command_on_a_torchvision_encoder_from_a_lightly_loop(
    image_folder, lightly_weights, tmp_path, capsys
):
    out = tmp_path / "out"
    args = readme_command("torchvision:resnet18 --weights")
    replace = {"w.pt": str(lightly_weights), "root=DIR": f"root={image_folder}", "OUT": str(out)}
    assert main([replace.get(a, a) for a in args] + ["--device", "cpu"]) == 0
    table = capsys.readouterr().out
    for metric in ("knn_dino_top1", "knn_instdisc_top1", "recall@1", "map@r", "linear_top1"):
        assert metric in table
    for row in ("| encoder |", "| random init |", "| raw pixels |"):
        assert row in table
    saved = json.loads((out / "results.json").read_text())
    assert (
        saved["encoder"] == "torchvision:resnet18" and saved["prefix"] == "backbone." and saved["layout"] == "children"
    )
    assert saved["preprocess"]["mean"] == [0.485, 0.456, 0.406] and saved["preprocess"]["image_size"] == 32
    assert saved["data"]["name"] == "imagefolder" and len(saved["weights_sha256"]) == 64
    encoder, floor = saved["rows"]["encoder"], saved["rows"]["random init"]
    assert (
        encoder["knn_dino_top1"] != floor["knn_dino_top1"] or encoder["map@r"] != floor["map@r"]
    )  # the weights loaded
    assert (out / "embedding.png").is_file() and (out / "results-eval.md").is_file()


@pytest.mark.slow
def test_the_readme_python_snippet(image_folder, lightly_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pt").write_bytes(lightly_weights.read_bytes())
    namespace = {"root": str(image_folder)}
    exec(compile(readme_python("from ssl_coded.eval import evaluate"), str(README), "exec"), namespace)
    rows = namespace["rows"]
    assert set(rows) == {"encoder", "random init", "raw pixels"} and 0 <= rows["encoder"]["linear_top1"] <= 1
    assert (tmp_path / "out" / "results.json").is_file() and str(
        rows["encoder"]["knn_dino_top1"]
    ) in capsys.readouterr().out


@pytest.mark.slow
def test_the_readme_snippet_of_what_the_command_runs(image_folder, lightly_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.pt").write_bytes(lightly_weights.read_bytes())
    namespace = {"root": str(image_folder)}
    exec(compile(readme_python("evaluate_encoder("), str(README), "exec"), namespace)
    data = ["name=imagefolder", f"root={image_folder}", "image_size=32"]
    args = ["eval", "knn", "torchvision:resnet18", "--weights", "w.pt", "--dataset", *data, "--out", "by-cli"]
    assert main(args) == 0
    by_cli = json.loads((tmp_path / "by-cli" / "results.json").read_text())
    assert namespace["rows"] == by_cli["rows"]  # one path: the command line is this call
    assert namespace["encoder"].record == {k: by_cli[k] for k in namespace["encoder"].record}
    assert namespace["encoder"].record["prefix"] == "backbone."


def test_the_readme_snippet_on_features():
    rng = np.random.default_rng(0)
    labels = {s: rng.integers(0, 3, n) for s, n in (("train", 300), ("val", 60), ("test", 90))}
    centres = rng.normal(size=(3, 8)) * 3  # one direction per class: cosine kNN separates them
    features = {s: (centres[y] + rng.normal(size=(len(y), 8))).astype(np.float32) for s, y in labels.items()}
    namespace = {f"{s}_x": x for s, x in features.items()} | {f"{s}_y": y for s, y in labels.items()}
    exec(compile(readme_python("from ssl_coded.eval import knn, linear_probe"), str(README), "exec"), namespace)
    assert {"knn_dino_top1", "knn_instdisc_top5", "recall@10", "map@r"} <= set(namespace["scores"])
    assert namespace["scores"]["knn_dino_top1"] > 0.9 and namespace["probe"].test_top1 > 0.9


@pytest.mark.slow
def test_foreign_encoders_refuse_what_does_not_apply(image_folder, lightly_weights, tmp_path, capsys):
    base = ["eval", "knn", "torchvision:resnet18", "--dataset", "name=imagefolder", f"root={image_folder}"]
    cases = {
        ("--prefix", "nothing."): "--prefix needs --weights",
        ("--weights", str(lightly_weights), "--prefix", "head."): "does not fit the encoder",
        ("--normalize", "0.5"): "is not one of imagenet",
        ("--dataset", "colour=3"): "colour",
        ("--device", "tpu"): "is not auto, cpu, cuda or cuda:N",
    }
    for extra, message in cases.items():
        assert main([*base, *extra, "--out", str(tmp_path / "x")]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)


def test_default_output_folders(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("name: run\n")
    (run / "checkpoints" / "best.ckpt").write_bytes(b"")
    loose = tmp_path / "loose.ckpt"
    loose.write_bytes(b"")
    assert default_out(run) == run and default_out(run / "checkpoints" / "best.ckpt") == run
    assert default_out(loose) == default_out(str(loose)) and not re.search(str(tmp_path), str(default_out(loose)))
    assert str(default_out("torchvision:resnet18", "w.pt")) == "eval-runs/torchvision-resnet18-w"


def test_the_sweep_and_few_shot_protocols_from_the_command_line(image_folder, lightly_weights, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["torchvision:resnet18", "--weights", str(lightly_weights), "--device", "cpu", "--no-floors"]
    data = ["--dataset", "name=imagefolder", f"root={image_folder}", "image_size=32", "--out", str(out)]
    assert main(["eval", "knn-sweep", *base, *data, "--knn-k", "1,3", "--knn-t", "0.05,0.5"]) == 0
    assert main(["eval", "fewshot", *base, *data, "--fewshot", "0.5", "--draws", "2"]) == 0
    printed = capsys.readouterr().out
    assert "knn_sweep_k" in printed and "fewshot50_linear_top1_std" in printed
    results = json.loads((out / "results.json").read_text())
    row = results["rows"]["encoder"]  # both protocols' figures, neither lost to the other
    assert {"knn_sweep_top1", "knn_sweep_k", "knn_sweep_t", "fewshot50_linear_top1", "fewshot50_knn_top1"} <= set(row)
    assert results["protocols"]["knn-sweep"]["ks"] == [1, 3] and results["protocols"]["fewshot"]["draws"] == 2
    grid = results["details"]["encoder"]["knn-sweep"]["val_top1"]
    assert [(cell["k"], cell["t"]) for cell in grid] == [(1, 0.05), (1, 0.5), (3, 0.05), (3, 0.5)]
    assert len(results["details"]["encoder"]["fewshot"]["fewshot50"]["linear_top1"]) == 2

    refused = ["eval", "fewshot", *base, *data[:-1], str(tmp_path / "refused")]
    with pytest.raises(SystemExit) as parsed:  # argparse's own refusal
        main([*refused, "--knn-k", "1,x"])
    assert parsed.value.code == 2 and "comma-separated list of ints" in capsys.readouterr().err
    assert main([*refused, "--draws", "0"]) == 2
    assert "--draws must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def tiny_encoder() -> nn.Module:
    """A `module:callable` encoder for the image protocols' command test."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())


def test_the_image_protocols_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["tests.cli.test_eval_any_encoder:tiny_encoder", "--dataset", "name=digits", "--device", "cpu"]
    quick = ["--epochs", "1", "--out", str(out)]
    assert main(["eval", "probe-images", *base, *quick, "--sgd-lr", "0.1,1"]) == 0
    assert main(["eval", "finetune", *base, *quick, "--finetune-lr", "0.01", "--augment", "none"]) == 0
    results = json.loads((out / "results.json").read_text())
    for row in ("encoder", "raw pixels"):  # the raw-pixel floor trains a linear head on the pixels
        assert {"linear_aug_top1", "linear_aug_lr", "finetune_top1", "finetune_lr"} <= set(results["rows"][row])
    assert results["protocols"]["finetune"]["lrs"] == [0.01] and results["protocols"]["finetune"]["augment"] == "none"
    assert [cell["lr"] for cell in results["details"]["encoder"]["probe-images"]["val_top1"]] == [0.1, 1.0]
    assert "finetune_top1" in capsys.readouterr().out
    assert main(["eval", "finetune", *base, "--epochs", "0", "--out", str(tmp_path / "refused")]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err and not (tmp_path / "refused").exists()
