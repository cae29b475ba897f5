"""Take the encoder out of a run: its backbone's weights in the key names of the library that builds it.

`export_run` writes `RUN/export/`: `encoder.pt` (or `encoder.safetensors`) holding the backbone's
state_dict as torchvision (ResNets, the ViT), timm (`timm:NAME` backbones) or the project (the small CNN)
name its keys, so that it loads with `strict=True` into the unmodified class; `encoder.json` with what a
user needs to feed it (channels, image size, mean and std of pixels in [0, 1]), how to build it, timm's
`pretrained_cfg` where it applies, and the checkpoint it came from with its hash; and a README of the
few lines that load it. An export folder is itself an ENCODER (`ssl-coded eval`, `load_encoder`):
`load_export` rebuilds it with the normalisation encoder.json records.

The folder is written file by file, encoder.json last: an export without it is unfinished and the next
export completes it; a finished one is never rewritten (the same source and format again is a no-op,
anything else is refused before a byte is written).

Example:
    >>> folder = export_run("runs/simclr-digits")  # runs/simclr-digits/export/
    >>> encoder = load_export(folder)  # uint8 images -> features, as the run's
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssl_coded.data import data_record
from ssl_coded.errors import ConfigError
from ssl_coded.extras import require
from ssl_coded.io import file_sha256, write_json, write_text
from ssl_coded.provenance import read_run_record
from ssl_coded.results import SCHEMA_VERSION

FORMATS = ("pt", "safetensors")
CHECKPOINTS = ("best", "last")


def is_export(path: str | Path) -> bool:
    """Whether a path is a finished export folder (it holds encoder.json)."""
    return (Path(path) / "encoder.json").is_file()


@dataclass
class Architecture:
    """How a backbone is built, for encoder.json and its README.

    Args:
        library: whose key names the weights carry: torchvision, timm, ssl-coded or user code.
        build: the Python that builds the empty model (before the weights are loaded).
        changes: lines that adapt the library's class to the run's backbone (a 1-channel stem, ...).
        imports: the import line those need.
    """

    library: str
    build: str
    changes: list[str]
    imports: str = "import torch, torchvision"


def export_run(run: str | Path, *, format: str = "pt", checkpoint: str = "best", out: str | Path | None = None) -> Path:
    """Write the run's encoder into `out` (default `RUN/export/`) and return that folder.

    Args:
        run: a pretraining run directory.
        format: `pt` (torch.save of the state_dict) or `safetensors` (the `export` extra).
        checkpoint: `best` (by validation) or `last`.
        out: the export folder.

    Raises:
        ConfigError: a bad option, a run without that checkpoint, or an export folder that already holds
            another export (refused before anything is written).
    """
    run_dir = Path(run)
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"--checkpoint {checkpoint!r} is not one of {', '.join(CHECKPOINTS)}")
    source = run_dir / "checkpoints" / f"{checkpoint}.ckpt"
    if not source.is_file():
        other = "last" if checkpoint == "best" else "best"
        hint = f"; it has {other}.ckpt: add --checkpoint {other}" if (source.parent / f"{other}.ckpt").is_file() else ""
        raise ConfigError(f"{run_dir} has no checkpoints/{checkpoint}.ckpt (give a pretraining run directory){hint}")
    if format == "safetensors":
        require("safetensors", "export")
    folder = Path(out) if out is not None else run_dir / "export"
    source_hash = file_sha256(source)
    if _already_exported(folder, source_hash, format):
        return folder

    from ssl_coded.rundir import RunLock
    from ssl_coded.training.checkpoints import load_trained

    # the run read (shared, beside evaluations), the export folder written by one process at a time
    with RunLock(run_dir, shared=True), RunLock(folder):
        if _already_exported(folder, source_hash, format):  # another export finished meanwhile
            return folder
        trained = load_trained(source)
        backbone = exported_backbone(trained.method)
        weights = {name: value.detach().cpu().contiguous() for name, value in backbone.state_dict().items()}
        folder.mkdir(parents=True, exist_ok=True)
        weights_file = folder / f"encoder.{format}"
        _save(weights, weights_file, format)
        config = trained.config
        architecture = describe_architecture(config.model.backbone, trained.method.input_channels, backbone)
        record = {
            "schema_version": SCHEMA_VERSION,
            "architecture": {
                "library": architecture.library,
                "build": architecture.build,
                "changes": architecture.changes,
                "imports": architecture.imports,
            },
            "backbone": {  # what `load_export` rebuilds it from
                "name": config.model.backbone,
                "options": _backbone_options(config.model),
                "data_channels": trained.splits.channels,
            },
            "feature_dim": trained.method.feature_dim,
            "input": input_record(trained.method, trained.splits.image_size),
            "weights": {
                "file": weights_file.name,
                "format": format,
                "sha256": file_sha256(weights_file),
                "keys": len(weights),
            },
            "source": {
                "run": run_dir.name,
                "checkpoint": f"checkpoints/{checkpoint}.ckpt",
                "checkpoint_sha256": source_hash,
                "recipe_method": config.method.name,
                "run_id": (read_run_record(run_dir) or {}).get("run_id"),
            },
            "data": data_record(config.data),
            "seed": config.seed,
        }
        if architecture.library == "timm":
            record["pretrained_cfg"] = timm_pretrained_cfg(backbone, record["input"])
        write_text(readme_path(folder), readme(record))
        write_json(folder / "encoder.json", record)  # last: its presence marks a finished export
    return folder


OWN_FILES = {"README.md", "encoder.json", *(f"encoder.{f}" for f in FORMATS)}
REQUIRED = (("source", "checkpoint_sha256"), ("weights", "file"), ("weights", "format"), ("backbone", "name"))


def _already_exported(folder: Path, source_hash: str, format: str) -> bool:
    """True for the same export again (nothing to write); refuses another export's folder, or a folder of other
    files (an unfinished export of its own is completed)."""
    if is_export(folder):
        earlier = _read_record(folder)
        if earlier["source"]["checkpoint_sha256"] == source_hash and earlier["weights"]["format"] == format:
            return True
        raise ConfigError(
            f"{folder} already holds an export of another checkpoint or format; give --out another folder"
        )
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in OWN_FILES and not p.name.startswith("."))
        if foreign:
            raise ConfigError(
                f"{folder} holds other files ({', '.join(foreign[:3])}); give --out a new or empty folder"
            )
    return False


def _read_record(folder: Path) -> dict[str, Any]:
    """encoder.json, checked to be an export's (a foreign file of that name is refused in one line)."""
    try:
        record = json.loads((folder / "encoder.json").read_text())
        _ = [record[section][key] for section, key in REQUIRED]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{folder}/encoder.json is not an ssl-coded export's ({error!r}); export the run again"
        ) from None
    return record


def readme_path(folder: str | Path) -> Path:
    """The export's README (the lines that load it without ssl-coded)."""
    return Path(folder) / "README.md"


def exported_backbone(method: nn.Module) -> nn.Module:
    """The module whose state_dict is exported: the backbone itself, or the torchvision ViT inside MAE's
    masked wrapper (lightly's `MaskedVisionTransformerTorchvision` keeps it as `.vit`)."""
    backbone = method.backbone
    inner = getattr(backbone, "vit", None)
    return inner if isinstance(inner, nn.Module) and type(backbone).__name__.startswith("Masked") else backbone


def describe_architecture(name: str, channels: int, backbone: nn.Module) -> Architecture:
    """How to build the backbone `name` (a recipe's `model.backbone`) that takes `channels` channels."""
    if name.startswith("torchvision:"):
        removed = getattr(backbone, "removed_classifier", "fc")
        return Architecture(
            "torchvision",
            f"torchvision.models.get_model({name.split(':', 1)[1]!r}, weights=None)",
            [_identity(removed)],
        )
    if name.startswith("timm:"):
        build = f"timm.create_model({name.split(':', 1)[1]!r}, pretrained=False, num_classes=0)"
        return Architecture("timm", build, [], "import timm, torch")
    if ":" in name:
        module = name.split(":", 1)[0]
        return Architecture(
            "user code", f"{name.replace(':', '.')}()  # the run's factory", [], f"import torch, {module}"
        )
    if name == "small_cnn":
        width = int(backbone.features[0][0].out_channels)  # type: ignore[index]
        pool = int(backbone.features[5].output_size)  # type: ignore[index]
        return Architecture(
            "ssl-coded",
            f"ssl_coded.training.backbones.SmallCNN(in_channels={channels}, width={width}, pool={pool})",
            [],
            "import torch, ssl_coded.training.backbones",
        )
    if name == "vit":
        vit = backbone
        conv = vit.conv_proj  # type: ignore[union-attr]
        build = (
            "torchvision.models.vision_transformer.VisionTransformer("
            f"image_size={vit.image_size}, patch_size={vit.patch_size}, num_layers={len(vit.encoder.layers)}, "  # type: ignore[union-attr, arg-type]
            f"num_heads={vit.encoder.layers[0].num_heads}, hidden_dim={vit.hidden_dim}, mlp_dim={vit.mlp_dim}, "  # type: ignore[union-attr, index]
            "num_classes=1)"
        )
        changes = [_identity("heads")]
        if conv.in_channels != 3:
            p = vit.patch_size
            changes.insert(
                0, f"model.conv_proj = torch.nn.Conv2d({conv.in_channels}, {vit.hidden_dim}, {p}, stride={p})"
            )
        return Architecture("torchvision", build, changes)
    resnet = name.removesuffix("_cifar")
    changes = [_identity("fc")]
    conv1 = backbone.conv1  # type: ignore[union-attr]
    if name.endswith("_cifar"):
        changes[:0] = [
            f"model.conv1 = torch.nn.Conv2d({conv1.in_channels}, 64, 3, stride=1, padding=1, bias=False)",
            "model.maxpool = torch.nn.Identity()",
        ]
    elif conv1.in_channels != 3:
        changes.insert(0, f"model.conv1 = torch.nn.Conv2d({conv1.in_channels}, 64, 7, stride=2, padding=3, bias=False)")
    return Architecture("torchvision", f"torchvision.models.{resnet}()", changes)


def _identity(dotted: str) -> str:
    return f"model.{dotted} = torch.nn.Identity()"


def _backbone_options(model: Any) -> dict[str, int]:
    keys = ("width", "pool", "patch_size", "vit_dim", "vit_depth", "vit_heads")
    return {key: int(getattr(model, key)) for key in keys}


def input_record(method: Any, image_size: int) -> dict[str, Any]:
    """What the exported backbone takes: pixels in [0, 1], grey repeated to its channels, then normalised."""
    channels = int(method.input_channels)
    mean = method.mean.flatten().tolist()
    std = method.std.flatten().tolist()
    if len(mean) != channels:  # grey data fed to an RGB backbone: the same statistics on every channel
        mean, std = mean * channels, std * channels
    return {"channels": channels, "image_size": int(image_size), "scale": "uint8 / 255", "mean": mean, "std": std}


def timm_pretrained_cfg(backbone: nn.Module, fed: dict[str, Any]) -> dict[str, Any]:
    """timm's `pretrained_cfg` of the backbone, with the input this run trained it on."""
    cfg = dict(getattr(backbone, "pretrained_cfg", {}) or {})
    cfg.update(
        input_size=[fed["channels"], fed["image_size"], fed["image_size"]],
        mean=fed["mean"],
        std=fed["std"],
        num_classes=0,
    )
    return {key: value for key, value in cfg.items() if _jsonable(value)}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def _save(weights: dict[str, Tensor], path: Path, format: str) -> None:
    from ssl_coded.io import atomic_write

    if format == "safetensors":
        from safetensors.torch import save_file

        atomic_write(path, lambda tmp: save_file(weights, tmp, metadata={"format": "pt"}))
    else:
        atomic_write(path, lambda tmp: torch.save(weights, tmp))


def read_weights(path: Path) -> dict[str, Tensor]:
    """An exported state_dict (never unpickled: `weights_only=True`, or safetensors)."""
    if path.suffix == ".safetensors":
        return require("safetensors.torch", "export").load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def readme(record: dict[str, Any]) -> str:
    """The export's README: the lines that load it without ssl-coded, and what to feed it."""
    architecture, fed, weights = record["architecture"], record["input"], record["weights"]
    imports = architecture["imports"]
    if weights["format"] == "safetensors":
        load = f'state_dict = safetensors.torch.load_file("{weights["file"]}")'
        imports += "\nimport safetensors.torch"
    else:
        load = f'state_dict = torch.load("{weights["file"]}", weights_only=True)'
    lines = [imports, f"model = {architecture['build']}", *architecture["changes"], load]
    lines.append("model.load_state_dict(state_dict)  # strict: every key matches")
    channels, size = fed["channels"], fed["image_size"]
    return (
        f"# Encoder exported by ssl-coded ({record['source']['recipe_method']}, {record['source']['checkpoint']})\n\n"
        "```python\n" + "\n".join(lines) + "\n```\n\n"
        f"Input: {channels} x {size} x {size} images, pixels scaled to [0, 1] (uint8 / 255), then normalised "
        f"with mean {_rounded(fed['mean'])} and std {_rounded(fed['std'])}; output: {record['feature_dim']} features. "
        + _grey_note(record)
        + "In ssl-coded this folder is itself an encoder: `ssl-coded eval knn THIS_FOLDER`.\n"
    )


def _grey_note(record: dict[str, Any]) -> str:
    fed, data_channels = record["input"], record["backbone"]["data_channels"]
    if data_channels == 1 and fed["channels"] == 3:
        return "It was trained on grey images repeated to 3 channels: feed grey images the same way. "
    if fed["channels"] == 1:
        return (
            "Its stem takes 1 channel (trained on grey images): the class's RGB stem is replaced above, "
            "so convert RGB images to grey, or average the first layer's weights over a new RGB stem yourself. "
        )
    return ""


def _rounded(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


class ExportedEncoder(nn.Module):
    """An exported backbone fed as in training: uint8 images (or pixels in [0, 1]) -> features (float32).

    Args:
        backbone: the rebuilt backbone, its weights loaded.
        channels: the channels it takes (grey images are repeated to them).
        mean, std: per channel, of pixels in [0, 1].
    """

    def __init__(self, backbone: nn.Module, channels: int, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = backbone
        self.channels = channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return self.backbone((x - self.mean) / self.std).float()


def load_export(folder: str | Path, device: str | torch.device = "cpu") -> tuple[ExportedEncoder, dict[str, Any]]:
    """The exported encoder (eval mode, on `device`) and its encoder.json.

    Raises:
        ConfigError: not an export folder, or weights that are not the ones encoder.json names.
    """
    folder = Path(folder)
    if not is_export(folder):
        raise ConfigError(f"{folder} is not an export folder (no encoder.json); run `ssl-coded export RUN` first")
    record = _read_record(folder)
    weights_file = folder / record["weights"]["file"]
    if not weights_file.is_file() or file_sha256(weights_file) != record["weights"]["sha256"]:
        raise ConfigError(f"{weights_file} is missing or not the file encoder.json names; export the run again")
    from ssl_coded.training.backbones import build_backbone

    spec, fed = record["backbone"], record["input"]
    channels = fed["channels"] if ":" not in spec["name"] else spec["data_channels"]
    backbone, _ = build_backbone(spec["name"], channels, fed["image_size"], **spec["options"])
    backbone.load_state_dict(read_weights(weights_file))
    encoder = ExportedEncoder(backbone, fed["channels"], fed["mean"], fed["std"])
    return encoder.to(device).eval(), record
