"""Datasets as uint8 batches with explicit train / validation / test splits, in memory or streamed.

Small-image datasets fit in memory as uint8 (Fashion-MNIST: 47 MB, CIFAR-10: 180 MB), so a batch
is one indexing operation instead of thousands of per-image calls; augmentation then runs batched
on the training device (`ssl_coded.training.augment`). An ImageFolder whose decoded size exceeds
`data.memory_budget_mb` streams instead (`StreamingImageFolder`): its files are listed once and
decoded in DataLoader workers into the same uint8 batches, so training and evaluation see no
difference. The validation split is carved from train with a fixed seed; the test split is the
dataset's own (digits: a fixed 20% of the 1797 images).

Example:
    >>> splits = load_splits(DataConfig(name="fashion-mnist"))
    >>> loader = splits.train.loader(batch_size=256, shuffle=True)
"""

from __future__ import annotations

import gzip
import os
import sys
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ssl_coded.training.config import DataConfig

if TYPE_CHECKING:  # PIL is imported where an image is read
    from PIL.Image import Image as PILImage

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist puts the files
FASHION_MNIST_ENV = "SSL_CODED_FASHION_MNIST"  # a folder of the four IDX files, used where data.root is empty
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_FOLDER_SIZE = 64  # an ImageFolder's side length when data.image_size is 0
STREAM_MODES = ("auto", "true", "false")
_UNREADABLE_FIX = "replace or delete it, or set data.skip_unreadable=true to skip unreadable images"
# a streamed folder checks files at listing time only under skip_unreadable (see `check_readable`)
_UNDECODABLE_FIX = "it passed the check when the folder was listed but does not decode; replace or delete it"


class DatasetError(ValueError):
    """Missing or malformed data; the message names the fix."""

    def __init__(self, message: str = "") -> None:
        # A DataLoader worker's error comes back re-raised as DatasetError("Caught DatasetError in DataLoader
        # worker process 0.\nOriginal Traceback ...\n...DatasetError: <message>"): keep the message alone, so
        # that an unreadable file met in a worker is still the one line that names it and the fix.
        marker = "DatasetError: "
        if message.startswith("Caught DatasetError") and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def _batch_as_is(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


def batch_loader(dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int) -> DataLoader:
    """A DataLoader over a dataset whose `__getitems__` returns a whole (images, labels) batch."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=_batch_as_is,
        persistent_workers=num_workers > 0,
    )


def _index(indices: Sequence[int] | Tensor) -> Tensor:
    return torch.as_tensor(indices, dtype=torch.long).reshape(-1)


class TensorImageDataset(Dataset):
    """uint8 images (n, C, H, W) and int64 labels in memory; a batch of indices is fetched in one call.

    Example:
        >>> dataset = TensorImageDataset(torch.zeros(10, 3, 8, 8, dtype=torch.uint8), torch.arange(10))
        >>> images, labels = next(iter(dataset.loader(batch_size=4)))
        >>> dataset.take([0, 9])[0].shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DatasetError(f"images must be uint8 of shape (n, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels")
        if len(images) == 0:
            raise DatasetError("the split is empty; check the dataset folder or the split fractions")
        self.images, self.labels = images, labels.long()

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]

    def take(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """(uint8 images, labels) at `indices`, in their order."""
        index = _index(indices)
        return self.images[index], self.labels[index]

    def loader(
        self, batch_size: int, shuffle: bool = False, drop_last: bool = False, num_workers: int = 0
    ) -> DataLoader:
        return batch_loader(self, batch_size, shuffle, drop_last, num_workers)

    def select(self, index: Tensor) -> TensorImageDataset:
        """The rows at `index` (a copy), as a dataset."""
        return TensorImageDataset(self.images[index], self.labels[index])

    def subset(self, size: int, seed: int = 0) -> TensorImageDataset:
        if size <= 0 or size >= len(self):
            return self
        return self.select(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:size])


class StreamingImageFolder(Dataset):
    """Image files decoded when read: the same uint8 (n, 3, S, S) batches and int64 labels as
    `TensorImageDataset`, for a folder larger than memory.

    Only the paths (one fixed-width bytes array, which forked workers share without copying) and the
    labels stay in memory. Each batch of indices is decoded by one DataLoader worker
    (`read_square_image`: short side resized to `image_size`, centre crop).

    Args:
        paths: the image files.
        labels: their int64 labels.
        image_size: the side S of every image.
        num_workers: the workers of a `loader` call that names none (e.g. evaluation's).
        fix: what the error for an unreadable file tells the user to do.

    Example:
        >>> dataset = StreamingImageFolder(["a/0.png", "b/0.png"], torch.tensor([0, 1]), image_size=64)
        >>> images, labels = next(iter(dataset.loader(batch_size=2, num_workers=2)))
        >>> images.shape, images.dtype
        (torch.Size([2, 3, 64, 64]), torch.uint8)
    """

    channels = 3  # every file is converted to RGB, as in memory

    def __init__(
        self,
        paths: Sequence[str] | np.ndarray,
        labels: Tensor,
        image_size: int,
        num_workers: int = 0,
        fix: str = _UNREADABLE_FIX,
    ) -> None:
        if len(paths) != len(labels):
            raise DatasetError(f"{len(paths)} image files but {len(labels)} labels")
        if len(paths) == 0:
            raise DatasetError("the split is empty; check the dataset folder or the split fractions")
        self.paths = paths if isinstance(paths, np.ndarray) else np.array([os.fsencode(p) for p in paths])
        self.labels, self.image_size, self.num_workers, self.fix = labels.long(), image_size, num_workers, fix

    def path(self, index: int) -> str:
        return os.fsdecode(self.paths[index])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return read_square_image(self.path(index), self.image_size, self.fix), self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        return self.take(indices)

    def take(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """(uint8 images, labels) at `indices`, in their order, decoded here."""
        index = _index(indices)
        images = torch.empty(len(index), 3, self.image_size, self.image_size, dtype=torch.uint8)
        for row, i in enumerate(index.tolist()):
            images[row] = read_square_image(self.path(i), self.image_size, self.fix)
        return images, self.labels[index]

    def loader(
        self, batch_size: int, shuffle: bool = False, drop_last: bool = False, num_workers: int | None = None
    ) -> DataLoader:
        """Batches decoded in `num_workers` processes (None: the dataset's `num_workers`; 0: this one)."""
        workers = self.num_workers if num_workers is None else num_workers
        return batch_loader(self, batch_size, shuffle, drop_last, workers)

    def select(self, index: Tensor) -> StreamingImageFolder:
        """The files at `index`, as a dataset."""
        paths = self.paths[index.numpy()]
        return StreamingImageFolder(paths, self.labels[index], self.image_size, self.num_workers, self.fix)

    def subset(self, size: int, seed: int = 0) -> StreamingImageFolder:
        if size <= 0 or size >= len(self):
            return self
        return self.select(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:size])


# A split as training and evaluation see it: either kind gives the same batches.
ImageDataset = TensorImageDataset | StreamingImageFolder


@dataclass
class Splits:
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the train split, in [0, 1]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> int:
        return self.train.image_size


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


# Every "no Fashion-MNIST here" error names both ways to point at the files, and the package.
_FASHION_FIX = (
    f"point data.root=FOLDER or {FASHION_MNIST_ENV}=FOLDER at a folder with the four IDX files, "
    "or apt-get install dataset-fashion-mnist"
)


def fashion_mnist_dir(root: str | Path = "") -> tuple[Path, str]:
    """The Fashion-MNIST folder and where it came from: `root` (data.root), else the folder that
    $SSL_CODED_FASHION_MNIST names, else Debian's `/usr/share/datasets/fashion-mnist`.

    Example:
        >>> fashion_mnist_dir("")  # with SSL_CODED_FASHION_MNIST=/data/fmnist
        (PosixPath('/data/fmnist'), 'SSL_CODED_FASHION_MNIST')
    """
    if root:
        return Path(root), "data.root"
    if os.environ.get(FASHION_MNIST_ENV):
        return Path(os.environ[FASHION_MNIST_ENV]), FASHION_MNIST_ENV
    return Path(FASHION_MNIST_DIR), "the default"


def _find(root: Path, source: str, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"missing {stem}[.gz] in Fashion-MNIST folder {root} ({source}); {_FASHION_FIX}")


def load_fashion_mnist(root: str | Path) -> dict[str, tuple[Tensor, Tensor]]:
    """Fashion-MNIST's train and test splits from the folder `fashion_mnist_dir(root)` names.

    Raises:
        DatasetError: the folder or one of its four IDX files (gzipped or not) is missing or damaged.
    """
    root, source = fashion_mnist_dir(root)
    if not root.is_dir():
        raise DatasetError(f"Fashion-MNIST folder {root} ({source}) does not exist; {_FASHION_FIX}")
    out = {}
    for split, (images_stem, labels_stem) in FASHION_MNIST_FILES.items():
        images_path, labels_path = _find(root, source, images_stem), _find(root, source, labels_stem)
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


def _unreadable_reason(error: Exception) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):  # its own text only repeats the path
        return "not an image PIL can read"
    reason = " ".join(str(error).split())  # one line, whatever PIL put in it
    if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return f"{reason.rstrip('.')} (PIL.Image.MAX_IMAGE_PIXELS); downscale it if it is a real image"
    return reason


def _open_image(path: str) -> PILImage:
    """PIL's `Image.open`, with its decompression-bomb warning (an image over `Image.MAX_IMAGE_PIXELS`)
    raised like its error (over twice that): a training image so large is a damaged or hostile file, and a
    warning would let it through, to be decoded in full by every worker that meets it."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


# PIL modes whose pixels do not fit 8 bits: integers (16-bit files open as "I;16..." or, e.g. a 16-bit PGM,
# as 32-bit "I") and 32-bit floats. PIL's own convert("RGB") clips them at 255 (16-bit: nearly all white;
# floats in [0, 1]: 0 or 1), so they are scaled here by the range their values are taken to use.
_INTEGER_RANGE = 65535  # integer pixels are read as 16-bit: 0..65535 -> 0..255, v / 257 rounded
_FLOAT_RANGE = 1.0  # float pixels are read as 0..1 -> 0..255, v * 255 rounded


def _as_uint8(pixels: np.ndarray, mode: str, path: str, fix: str) -> np.ndarray:
    """A high-bit-depth grayscale image (mode "F", "I" or "I;16...") as uint8, scaled by its range.

    Raises:
        DatasetError: a value outside that range (or not finite), whose scale is unknown.
    """
    top = _FLOAT_RANGE if mode == "F" else _INTEGER_RANGE
    low, high = float(pixels.min()), float(pixels.max())
    if not (low >= 0 and high <= top):  # NaN fails both
        kind = "floats are read as [0, 1]" if mode == "F" else "integers are read as 16-bit [0, 65535]"
        raise DatasetError(
            f"cannot read image {path}: mode {mode} pixels span [{low:g}, {high:g}], but {kind} "
            f"(save it as 8- or 16-bit); {fix}"
        )
    return np.rint(pixels.astype(np.float64) * (255 / top)).astype(np.uint8)


def _as_rgb(image: PILImage, path: str, fix: str) -> PILImage:
    """`image` converted to RGB; a high-bit-depth one (`_as_uint8`) first scaled to 8 bits, not clipped."""
    from PIL import Image

    if image.mode == "F" or image.mode.startswith("I"):
        return Image.fromarray(_as_uint8(np.asarray(image), image.mode, path, fix)).convert("RGB")
    return image.convert("RGB")


def square_crop(pixels: Tensor, size: int) -> Tensor:
    """uint8 (C, H, W) -> (C, size, size): the short side resized to `size` (antialiased bilinear),
    then the centre crop, its offsets rounded down; the aspect ratio is kept, nothing is distorted.

    Example:
        >>> square_crop(torch.zeros(3, 48, 96, dtype=torch.uint8), 32).shape  # resized to 32 x 64, cropped
        torch.Size([3, 32, 32])
    """
    from torchvision.transforms.functional import resize

    height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
    scale = size / min(height, width)
    new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_height, new_width) != (height, width):
        pixels = resize(pixels, [new_height, new_width], antialias=True)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    return pixels[:, top : top + size, left : left + size].contiguous()


def read_square_image(path: str, size: int, fix: str = _UNREADABLE_FIX) -> Tensor:
    """One image file as uint8 (3, size, size): converted to RGB, then `square_crop`.

    A 16-bit image (or a 32-bit integer one with values in 0..65535) is scaled by 255 / 65535 and a float
    image in [0, 1] by 255, both rounded, as 8-bit files of the same picture would be; one whose values
    fall outside that range is refused (`_as_uint8`). PIL's decompression-bomb guard applies: an image
    over `PIL.Image.MAX_IMAGE_PIXELS` is refused.

    A JPEG is decoded at the smallest of its DCT scales (1/2, 1/4, 1/8) that still covers `size` on both
    sides (PIL's `draft`), which skips most of the decoding work for a photo much larger than `size`.

    Args:
        path: the image file.
        size: the side of the result.
        fix: what the error message tells the user to do about an unreadable file.

    Raises:
        DatasetError: the file is not an image PIL can read, is cut short or damaged, is over PIL's
            decompression-bomb limit, or holds high-bit-depth values out of range; one line naming the
            file and `fix`.

    Example:
        >>> read_square_image("train/cat/0.jpg", 64).shape
        torch.Size([3, 64, 64])
    """
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    try:
        with _open_image(path) as image:  # closed here: a large folder would otherwise run out of file handles
            image.draft("RGB", (size, size))
            rgb = _as_rgb(image, path, fix)
    # UnidentifiedImageError (not an image) and cut-short or damaged files are OSError; some PIL plugins
    # report a malformed file as SyntaxError; an image over PIL's pixel limit raises a decompression bomb.
    except (OSError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DatasetError(f"cannot read image {path}: {_unreadable_reason(error)}; {fix}") from error
    return square_crop(pil_to_tensor(rgb), size)


@dataclass
class ImageFiles:
    """The image files of one split folder, in torchvision ImageFolder's order (class, then path)."""

    folder: Path
    paths: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.paths)

    def keep(self, kept: list[int]) -> ImageFiles:
        return ImageFiles(self.folder, [self.paths[i] for i in kept], [self.labels[i] for i in kept])


def _dir_key(path: str | Path) -> tuple[int, int]:
    status = os.stat(path)  # follows a link: the directory it leads to
    return status.st_dev, status.st_ino


def _walk_class(folder: Path, seen: set[tuple[int, int]], revisits: list[str]) -> list[str]:
    """The image files under one class folder, in torchvision's order (sorted folders, then sorted names),
    symlinked folders followed unless they lead to one in `seen` (then added to `revisits`)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    walked = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        kept = []
        for path in (os.path.join(top, name) for name in sorted(dirs)):
            key = _dir_key(path)
            if key in seen:
                revisits.append(f"{path} -> {os.path.realpath(path)}")
            else:
                seen.add(key)
                kept.append(os.path.basename(path))
        dirs[:] = kept  # os.walk descends into these only
        walked.append((top, names))
    images = (os.path.join(top, name) for top, names in sorted(walked) for name in sorted(names))
    return [path for path in images if path.lower().endswith(IMG_EXTENSIONS)]


def list_split(folder: Path) -> tuple[list[str], ImageFiles]:
    """The sorted class names of one split folder and its image files (by extension; none opened), in
    torchvision ImageFolder's order.

    Symlinks are followed, but no folder is walked twice: a symlinked folder that leads back to the split
    folder, one above it, a class folder or a folder already walked is not entered, with one warning line
    on stderr. Following it would list the same files again under this class, and a loop (e.g.
    `train/cat/loop -> ..`) would list them until the path grew too long. A link to a folder listed
    nowhere else, and a symlinked file, is followed as usual.

    Raises:
        DatasetError: no class folders, a class folder without images, or a class folder that is itself a
            link to the split folder, one above it or another class folder.
    """
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    real = folder.resolve()
    seen = {_dir_key(path) for path in (real, *real.parents)}
    for name in classes:
        key = _dir_key(folder / name)
        if key in seen:
            raise DatasetError(
                f"class folder {folder / name} leads to {os.path.realpath(folder / name)}, the split folder, one "
                "above it or another class folder (a symlink loop); make it a folder of that class's own images"
            )
        seen.add(key)
    paths: list[str] = []
    labels: list[int] = []
    revisits: list[str] = []
    empty: list[str] = []
    for label, name in enumerate(classes):
        found = _walk_class(folder / name, seen, revisits)
        paths += found
        labels += [label] * len(found)
        empty += [] if found else [name]
    if not classes or empty:
        raise DatasetError(
            f"{folder} has no images in class subfolders (none in {', '.join(empty) or 'its folders'}); "
            "put <class>/<image> files there"
        )
    if revisits:
        print(
            f"ssl-coded: warning: did not enter {len(revisits)} symlinked folder(s) in {folder} that lead to a "
            f"folder already listed (e.g. {revisits[0]}): a symlink loop, or a second link to it",
            file=sys.stderr,
        )
    return classes, ImageFiles(folder, paths, labels)


def list_image_folder(root: str) -> dict[str, ImageFiles]:
    """The files of root/train/<class>/*, root/test/<class>/* (and optionally root/val/...), none opened.

    Args:
        root: the folder holding train/ and test/ (and optionally val/), each of class subfolders.

    Returns:
        {"train": files, "test": ..., and "val" where root/val exists}; labels index the sorted class names.

    Raises:
        DatasetError: a missing split folder, one without images, a class folder linked to one already
            listed (`list_split`), or classes that differ between splits.

    Example:
        >>> files = list_image_folder("data/imagenet100")
        >>> len(files["train"]), files["train"].paths[0]
    """
    if not root:
        raise DatasetError("data.root is required for imagefolder: a folder with train/ and test/ class folders")
    base = Path(root)
    for required in ("train", "test"):
        if not (base / required).is_dir():
            raise DatasetError(
                f"{base / required} is not a folder: {base} must hold train/ and test/ folders of class subfolders "
                "(ImageFolder layout); check data.root"
            )
    out, classes = {}, None
    for split in ("train", "val", "test"):
        folder_path = base / split
        if not folder_path.is_dir():
            continue
        names, out[split] = list_split(folder_path)
        if classes is not None and names != classes:
            raise DatasetError(f"{folder_path} has classes {names}, but train has {classes}")
        classes = names
    return out


def _report_skipped(files: ImageFiles, skipped: list[str]) -> None:
    if not skipped:
        return
    if len(skipped) == len(files):
        raise DatasetError(
            f"all {len(skipped)} images in {files.folder} are unreadable (e.g. {skipped[0]}); "
            "check that the folder holds image files"
        )
    noun = "image" if len(skipped) == 1 else "images"
    print(
        f"ssl-coded: warning: skipped {len(skipped)} unreadable {noun} in {files.folder} (e.g. {skipped[0]})",
        file=sys.stderr,
    )


def decode_files(files: ImageFiles, size: int, skip_unreadable: bool = False) -> tuple[Tensor, Tensor]:
    """Every file of a split decoded into one uint8 (n, 3, size, size) tensor (`read_square_image`), and its labels.

    Raises:
        DatasetError: an unreadable image (unless `skip_unreadable`: skipped, with one warning line on
            stderr), or a split where every image is unreadable.

    Example:
        >>> images, labels = decode_files(list_image_folder("data/pets")["test"], 64)
    """
    images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)  # filled in place: no second copy
    kept, skipped = [], []
    for i, path in enumerate(files.paths):
        try:
            images[len(kept)] = read_square_image(path, size)
        except DatasetError:
            if not skip_unreadable:
                raise
            skipped.append(path)
            continue
        kept.append(i)
    _report_skipped(files, skipped)
    if skipped:
        images = images[: len(kept)].clone()
    return images, torch.tensor(files.labels, dtype=torch.long)[kept]


def check_readable(files: ImageFiles) -> ImageFiles:
    """The files PIL can open and verify (its header, and for PNG every chunk's checksum), with one warning
    line on stderr for those it cannot: what `data.skip_unreadable` does for a streamed folder, which
    would otherwise meet a bad file only when a batch holding it is read.

    A high-bit-depth image is also decoded, as its range is known only then (`_as_uint8`). A file can pass
    and still fail to decode (a cut-short JPEG): reading it then raises a DatasetError that names it.

    Raises:
        DatasetError: every file of the split is unreadable.
    """
    from PIL import Image

    kept, skipped = [], []
    for i, path in enumerate(files.paths):
        try:
            with _open_image(path) as image:
                image.verify()
                high_depth = image.mode == "F" or image.mode.startswith("I")
            if high_depth:
                with _open_image(path) as image:  # verify() leaves the image unusable
                    _as_rgb(image, path, "")
        # ValueError: a malformed header some plugins reject so, or a DatasetError from `_as_rgb`; an image
        # over PIL's pixel limit raises a decompression bomb (as `read_square_image` would)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            skipped.append(path)
            continue
        kept.append(i)
    _report_skipped(files, skipped)
    return files.keep(kept) if skipped else files


def load_image_folder(root: str, image_size: int, skip_unreadable: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """root/train/<class>/*.png and root/test/<class>/*.png (and optionally root/val/...), decoded in memory.

    Args:
        root: the folder holding train/ and test/ (and optionally val/), each of class subfolders.
        image_size: the side of every image (0 = 64): the short side is resized to it, then centre-cropped.
        skip_unreadable: skip images PIL cannot read, with one warning line per split on stderr,
            instead of failing on the first.

    Returns:
        {"train": (uint8 images, labels), "test": ..., and "val" where root/val exists}.

    Raises:
        DatasetError: a missing or empty split folder, classes that differ between splits, an unreadable
            image (unless `skip_unreadable`), or a split where every image is unreadable.

    Example:
        >>> images, labels = load_image_folder("data/pets", 64)["train"]
    """
    size = image_size or IMAGE_FOLDER_SIZE
    return {split: decode_files(files, size, skip_unreadable) for split, files in list_image_folder(root).items()}


def decoded_bytes(files: dict[str, ImageFiles], image_size: int) -> int:
    """The bytes an ImageFolder's splits take decoded as uint8 in memory (3 x size x size per file)."""
    size = image_size or IMAGE_FOLDER_SIZE
    return sum(len(split) for split in files.values()) * 3 * size * size


def streams(config: DataConfig, files: dict[str, ImageFiles]) -> bool:
    """Whether an ImageFolder streams: `data.stream`, or under `auto`, whether its decoded size exceeds
    `data.memory_budget_mb` (below it the in-memory path is faster: a batch is one indexing call).

    Example:
        >>> streams(DataConfig(name="imagefolder", memory_budget_mb=1), {"train": files})
        True
    """
    if config.stream != "auto":
        return config.stream == "true"
    return decoded_bytes(files, config.image_size) > config.memory_budget_mb * 2**20


def image_folder_datasets(config: DataConfig) -> dict[str, ImageDataset]:
    """An ImageFolder's splits, streamed or in memory as `streams` decides."""
    files = list_image_folder(config.root)
    size = config.image_size or IMAGE_FOLDER_SIZE
    if not streams(config, files):
        return {split: TensorImageDataset(*decode_files(f, size, config.skip_unreadable)) for split, f in files.items()}
    if config.skip_unreadable:
        files = {split: check_readable(f) for split, f in files.items()}
    fix = _UNDECODABLE_FIX if config.skip_unreadable else _UNREADABLE_FIX
    return {
        split: StreamingImageFolder(f.paths, torch.tensor(f.labels), size, config.num_workers, fix)
        for split, f in files.items()
    }


def channel_stats(dataset: ImageDataset, batch_size: int = 512) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation (unbiased, as `torch.std`) of a dataset's pixels in [0, 1].

    Counted batch by batch (how often each of the 256 values occurs per channel), so a streamed split is
    never held whole and the sums are exact integers.

    Example:
        >>> mean, std = channel_stats(splits.train)
    """
    counts = torch.zeros(dataset.channels, 256, dtype=torch.int64)
    for images, _ in dataset.loader(batch_size):
        for channel in range(images.shape[1]):
            counts[channel] += torch.bincount(images[:, channel].reshape(-1), minlength=256)
    values = torch.arange(256, dtype=torch.int64)
    mean, std = [], []
    for row in counts:
        n, total, squares = int(row.sum()), int((row * values).sum()), int((row * values * values).sum())
        mean.append(total / n / 255)
        variance = (n * squares - total * total) / (n * (n - 1)) if n > 1 else float("nan")
        std.append(variance**0.5 / 255)
    return tuple(mean), tuple(std)


def _carve_validation(train: ImageDataset, fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    num_val = round(fraction * len(train))
    return train.select(order[num_val:]), train.select(order[:num_val])


# The registry: a dataset name -> its loader, {"train": (uint8 images, labels), "test": ..., and
# optionally "val"} (or datasets, as imagefolder's may stream); a recipe's data.name must be one of these.
LOADERS: dict[str, Callable[[DataConfig], dict[str, tuple[Tensor, Tensor]] | dict[str, ImageDataset]]] = {
    "digits": lambda c: load_digits_uint8(),
    "fashion-mnist": lambda c: load_fashion_mnist(c.root),
    **{name: (lambda c: load_torchvision(c.name, c.root, c.download)) for name in ("cifar10", "cifar100", "stl10")},
    "imagefolder": image_folder_datasets,
}
DATASETS = tuple(LOADERS)


def _as_dataset(split: tuple[Tensor, Tensor] | ImageDataset) -> ImageDataset:
    return TensorImageDataset(*split) if isinstance(split, tuple) else split


def load_splits(config: DataConfig) -> Splits:
    """Train / validation / test splits for a data config.

    Example:
        >>> splits = load_splits(DataConfig(name="imagefolder", root="data/pets", image_size=96))
        >>> type(splits.train).__name__, splits.image_size
    """
    if config.name not in LOADERS:
        raise DatasetError(f"unknown dataset {config.name!r}; choose one of {', '.join(DATASETS)}")
    if config.stream == "true" and config.name != "imagefolder":
        raise DatasetError(
            f"data.stream=true streams an imagefolder only; {config.name} is loaded in memory: set data.stream=auto"
        )
    raw = {split: _as_dataset(value) for split, value in LOADERS[config.name](config).items()}

    if "val" in raw:
        train, val = raw["train"], raw["val"]
    else:
        train, val = _carve_validation(raw["train"], config.val_fraction, config.split_seed)
    # at most max_train / max_test images each, drawn at random (a prefix of a class-sorted folder would
    # drop classes)
    splits = {
        "train": train.subset(config.max_train, config.split_seed),
        "val": val.subset(config.max_val or config.max_test, config.split_seed),
        "test": raw["test"].subset(config.max_test, config.split_seed),
    }
    del raw, train, val  # an in-memory train split is now held by its parts only
    if config.image_size and config.name != "imagefolder":  # an ImageFolder is decoded at its size
        splits = {name: _resized(ds, config.image_size) for name, ds in splits.items()}
    mean, std = channel_stats(splits["train"])
    num_classes = int(max(ds.labels.max() for ds in splits.values())) + 1
    return Splits(splits["train"], splits["val"], splits["test"], num_classes, mean, std)


def _resized(dataset: ImageDataset, size: int) -> ImageDataset:
    if not isinstance(dataset, TensorImageDataset):
        return dataset
    return TensorImageDataset(_resize(dataset.images, size), dataset.labels)


def _resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)
