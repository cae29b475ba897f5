"""ImageFolders (root/train/<class>/*, root/test/..., optionally root/val/...): listed once, then decoded
into memory or streamed (`StreamingImageFolder`: decoded in DataLoader workers into the same uint8
batches, for a folder larger than memory), as `data.stream` and `data.memory_budget_mb` decide."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ssl_coded.data.config import DataConfig
from ssl_coded.data.errors import DatasetError
from ssl_coded.data.images import UNREADABLE_FIX, as_rgb, open_image, read_square_image
from ssl_coded.data.tensors import TensorImageDataset, as_index, batch_loader

IMAGE_FOLDER_SIZE = 64  # an ImageFolder's side length when data.image_size is 0


# a streamed folder checks files at listing time only under skip_unreadable (see `check_readable`)
_UNDECODABLE_FIX = "it passed the check when the folder was listed but does not decode; replace or delete it"


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
        fix: str = UNREADABLE_FIX,
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
        index = as_index(indices)
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
    images, labels, _ = _decode_kept(files, size, skip_unreadable)
    return images, labels


def _decode_kept(files: ImageFiles, size: int, skip_unreadable: bool) -> tuple[Tensor, Tensor, list[int]]:
    """`decode_files`, and the positions of the files kept (all but the unreadable ones skipped)."""
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
    return images, torch.tensor(files.labels, dtype=torch.long)[kept], kept


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
            with open_image(path) as image:
                image.verify()
                high_depth = image.mode == "F" or image.mode.startswith("I")
            if high_depth:
                with open_image(path) as image:  # verify() leaves the image unusable
                    as_rgb(image, path, "")
        # ValueError: a malformed header some plugins reject so, or a DatasetError from `as_rgb`; an image
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


def _in_memory(files: ImageFiles, size: int, skip_unreadable: bool) -> TensorImageDataset:
    """A split decoded in memory that still knows its files (items.csv of `ssl-coded embed` lists them)."""
    images, labels, kept = _decode_kept(files, size, skip_unreadable)
    return TensorImageDataset(images, labels, np.array([os.fsencode(files.paths[i]) for i in kept]))


def image_folder_datasets(config: DataConfig) -> dict[str, TensorImageDataset | StreamingImageFolder]:
    """An ImageFolder's splits, streamed or in memory as `streams` decides."""
    files = list_image_folder(config.root)
    size = config.image_size or IMAGE_FOLDER_SIZE
    if not streams(config, files):
        return {split: _in_memory(f, size, config.skip_unreadable) for split, f in files.items()}
    if config.skip_unreadable:
        files = {split: check_readable(f) for split, f in files.items()}
    fix = _UNDECODABLE_FIX if config.skip_unreadable else UNREADABLE_FIX
    return {
        split: StreamingImageFolder(f.paths, torch.tensor(f.labels), size, config.num_workers, fix)
        for split, f in files.items()
    }
