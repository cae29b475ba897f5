"""Datasets as in-memory uint8 tensors with explicit train / validation / test splits.

Small-image datasets fit in memory as uint8 (Fashion-MNIST: 47 MB, CIFAR-10: 180 MB), so a batch
is one indexing operation instead of thousands of per-image calls; augmentation then runs batched
on the training device (`ssl_coded.training.augment`). The validation split is carved from train with a
fixed seed; the test split is the dataset's own (digits: a fixed 20% of the 1797 images).

Example:
    >>> splits = load_splits(DataConfig(name="fashion-mnist"))
    >>> loader = splits.train.loader(batch_size=256, shuffle=True)
"""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ssl_coded.training.config import DataConfig

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetError(ValueError):
    """Missing or malformed data; the message names the fix."""


def _batch_as_is(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


class TensorImageDataset(Dataset):
    """uint8 images (n, C, H, W) and int64 labels; a batch of indices is fetched in one call."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DatasetError(f"images must be uint8 of shape (n, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DatasetError("the split is empty; check the dataset folder or the split fractions")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]

    def loader(
        self, batch_size: int, shuffle: bool = False, drop_last: bool = False, num_workers: int = 0
    ) -> DataLoader:
        return DataLoader(
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=num_workers,
            collate_fn=_batch_as_is,
            persistent_workers=num_workers > 0,
        )

    def subset(self, size: int, seed: int = 0) -> TensorImageDataset:
        if size <= 0 or size >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:size]
        return TensorImageDataset(self.images[index], self.labels[index])


@dataclass
class Splits:
    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the train split, in [0, 1]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]


# The fix for any damaged IDX file; read_idx is only used for Fashion-MNIST, so name its package.
_IDX_FIX = "download it again, or apt-get install --reinstall dataset-fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not.

    Args:
        path: the file; a `.gz` suffix means gzip-compressed.

    Returns:
        The uint8 array, shaped as the header says.

    Raises:
        DatasetError: the file is not gzip (for `.gz`), is cut short, or its header does not match its size.
    """
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        # A cut-short download ends the deflate stream early (EOFError); a file that is not gzip, or one
        # with a bad CRC, is BadGzipFile; damage inside the deflate stream is zlib.error.
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DatasetError(f"{path} is truncated or not gzip ({error}); {_IDX_FIX}") from error
    else:
        data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] == 0:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file; {_IDX_FIX}")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DatasetError(
            f"{path} is truncated: its header needs {offset} bytes, the file has {len(data)}; {_IDX_FIX}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected, found = int(np.prod(shape)), len(data) - offset
    if found < expected:
        raise DatasetError(f"{path} is truncated: expected {expected} values, found {found}; {_IDX_FIX}")
    if found > expected:
        raise DatasetError(f"{path} has {found} values but its header says {expected}; {_IDX_FIX}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"missing {stem}[.gz] in {root}; put the four Fashion-MNIST IDX files there "
        "(Debian: apt-get install dataset-fashion-mnist) or set data.root"
    )


def load_fashion_mnist(root: str | Path) -> dict[str, tuple[Tensor, Tensor]]:
    root = Path(root or FASHION_MNIST_DIR)
    if not root.is_dir():
        raise DatasetError(
            f"Fashion-MNIST folder {root} does not exist; apt-get install dataset-fashion-mnist, "
            "or set data.root to a folder with the four IDX files"
        )
    out = {}
    for split, (images_stem, labels_stem) in FASHION_MNIST_FILES.items():
        images_path, labels_path = _find(root, images_stem), _find(root, labels_stem)
        images, labels = read_idx(images_path), read_idx(labels_path)
        # Each file can be well-formed on its own and still be the wrong file (or a mismatched pair).
        if images.ndim != 3:
            raise DatasetError(f"{images_path} holds shape {images.shape}, not (n, height, width) images; {_IDX_FIX}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DatasetError(
                f"{labels_path} holds shape {labels.shape}, not {len(images)} labels for {images_path}; {_IDX_FIX}"
            )
        out[split] = (torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
    return out


def load_digits_uint8() -> dict[str, tuple[Tensor, Tensor]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(np.round(digits.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    test, train = order[:360], order[360:]
    return {"train": (images[train], labels[train]), "test": (images[test], labels[test])}


def _from_torchvision(dataset) -> tuple[Tensor, Tensor]:
    data = torch.as_tensor(np.asarray(dataset.data))
    if data.dim() == 4 and data.shape[-1] in (1, 3):  # CIFAR stores NHWC
        data = data.permute(0, 3, 1, 2)
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = dataset.labels
    return data.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.long)


def load_torchvision(name: str, root: str, download: bool) -> dict[str, tuple[Tensor, Tensor]]:
    from torchvision import datasets

    root = root or f"data/{name}"
    try:
        if name in ("cifar10", "cifar100"):
            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            return {s: _from_torchvision(cls(root, train=s == "train", download=download)) for s in ("train", "test")}
        return {s: _from_torchvision(datasets.STL10(root, split=s, download=download)) for s in ("train", "test")}
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise DatasetError(
            f"{name} not found in {root}: set data.root to its folder, or data.download=true if this machine "
            "can reach the internet"
        ) from error


def _open_rgb(path: str):
    from PIL import Image

    with Image.open(path) as image:  # closed here: a large folder would otherwise run out of file handles
        return image.convert("RGB")


def _unreadable_reason(error: Exception) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):  # its own text only repeats the path
        return "not an image PIL can read"
    return " ".join(str(error).split())  # one line, whatever PIL put in it


def load_image_folder(root: str, image_size: int, skip_unreadable: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """root/train/<class>/*.png and root/test/<class>/*.png (and optionally root/val/...).

    Args:
        root: the folder holding train/ and test/ (and optionally val/), each of class subfolders.
        image_size: resize every image to image_size x image_size (0 = 64).
        skip_unreadable: skip images PIL cannot read, with one warning line per split on stderr,
            instead of failing on the first.

    Returns:
        {"train": (uint8 images, labels), "test": ..., and "val" where root/val exists}.

    Raises:
        DatasetError: a missing or empty split folder, classes that differ between splits, an unreadable
            image (unless `skip_unreadable`), or a split where every image is unreadable.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.functional import pil_to_tensor, resize

    if not root:
        raise DatasetError("data.root is required for imagefolder: a folder with train/ and test/ class folders")
    base = Path(root)
    for required in ("train", "test"):
        if not (base / required).is_dir():
            raise DatasetError(
                f"{base / required} is not a folder: {base} must hold train/ and test/ folders of class subfolders "
                "(ImageFolder layout); check data.root"
            )
    size = image_size or 64
    out, classes = {}, None
    for split in ("train", "val", "test"):
        folder_path = base / split
        if not folder_path.is_dir():
            continue
        try:
            folder = ImageFolder(folder_path, loader=_open_rgb)
        except FileNotFoundError as error:  # torchvision: no class subfolders, or no image files in them
            raise DatasetError(
                f"{folder_path} has no images in class subfolders ({error}); put <class>/<image> files there"
            ) from error
        if classes is not None and folder.classes != classes:
            raise DatasetError(f"{folder_path} has classes {folder.classes}, but train has {classes}")
        classes = folder.classes
        images, labels, skipped = [], [], []
        for path, label in folder.samples:
            try:
                image = folder.loader(path)
            # UnidentifiedImageError (not an image) and cut-short or damaged files are OSError; some PIL
            # plugins report a malformed file as SyntaxError.
            except (OSError, SyntaxError) as error:
                if not skip_unreadable:
                    raise DatasetError(
                        f"cannot read image {path}: {_unreadable_reason(error)}; replace or delete it, "
                        "or set data.skip_unreadable=true to skip unreadable images"
                    ) from error
                skipped.append(path)
                continue
            images.append(resize(pil_to_tensor(image), [size, size], antialias=True))
            labels.append(label)
        if skipped and not images:
            raise DatasetError(
                f"all {len(skipped)} images in {folder_path} are unreadable (e.g. {skipped[0]}); "
                "check that the folder holds image files"
            )
        if skipped:
            noun = "image" if len(skipped) == 1 else "images"
            print(
                f"ssl-coded: warning: skipped {len(skipped)} unreadable {noun} in {folder_path} (e.g. {skipped[0]})",
                file=sys.stderr,
            )
        out[split] = (torch.stack(images), torch.tensor(labels, dtype=torch.long))
    return out


def _carve_validation(train: tuple[Tensor, Tensor], fraction: float, seed: int) -> tuple[tuple, tuple]:
    images, labels = train
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    num_val = round(fraction * len(labels))
    return (images[order[num_val:]], labels[order[num_val:]]), (images[order[:num_val]], labels[order[:num_val]])


# The registry: a dataset name -> its loader, {"train": (uint8 images, labels), "test": ..., and
# optionally "val"}; a recipe's data.name must be one of these.
LOADERS: dict[str, Callable[[DataConfig], dict[str, tuple[Tensor, Tensor]]]] = {
    "digits": lambda c: load_digits_uint8(),
    "fashion-mnist": lambda c: load_fashion_mnist(c.root),
    **{name: (lambda c: load_torchvision(c.name, c.root, c.download)) for name in ("cifar10", "cifar100", "stl10")},
    "imagefolder": lambda c: load_image_folder(c.root, c.image_size, skip_unreadable=c.skip_unreadable),
}
DATASETS = tuple(LOADERS)


def load_splits(config: DataConfig) -> Splits:
    """Train / validation / test splits for a data config."""
    if config.name not in LOADERS:
        raise DatasetError(f"unknown dataset {config.name!r}; choose one of {', '.join(DATASETS)}")
    raw = LOADERS[config.name](config)

    if "val" in raw:
        train, val = raw["train"], raw["val"]
    else:
        train, val = _carve_validation(raw["train"], config.val_fraction, config.split_seed)
    splits = {"train": train, "val": val, "test": raw["test"]}
    limits = {"train": config.max_train, "val": config.max_test, "test": config.max_test}
    splits = {name: _sample(pair, limits[name], config.split_seed) for name, pair in splits.items()}
    if config.image_size and config.name != "imagefolder":
        splits = {name: (_resize(images, config.image_size), labels) for name, (images, labels) in splits.items()}
    images = splits["train"][0].float() / 255
    mean = tuple(images.mean(dim=(0, 2, 3)).tolist())
    std = tuple(images.std(dim=(0, 2, 3)).tolist())
    num_classes = int(max(labels.max() for _, labels in splits.values() if len(labels))) + 1
    datasets = {name: TensorImageDataset(*pair) for name, pair in splits.items()}
    return Splits(datasets["train"], datasets["val"], datasets["test"], num_classes, mean, std)


def _sample(pair: tuple[Tensor, Tensor], limit: int, seed: int) -> tuple[Tensor, Tensor]:
    """At most `limit` pairs, drawn at random (a prefix of a class-sorted folder would drop classes)."""
    if limit <= 0 or limit >= len(pair[1]):
        return pair
    index = torch.randperm(len(pair[1]), generator=torch.Generator().manual_seed(seed))[:limit]
    return pair[0][index], pair[1][index]


def _resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)
