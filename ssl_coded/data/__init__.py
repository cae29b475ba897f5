"""The data layer: datasets as uint8 batches with explicit train / validation / test splits, in memory
or streamed, shared by training and evaluation and importing neither.

Small-image datasets fit in memory as uint8 (`tensors.py`), so a batch is one indexing operation;
augmentation then runs batched on the training device. An ImageFolder whose decoded size exceeds
`data.memory_budget_mb` streams instead (`image_folder.py`): its files are listed once and decoded in
DataLoader workers into the same uint8 batches, so training and evaluation see no difference. The
validation split is carved from train with a fixed seed; the test split is the dataset's own (digits: a
fixed 20% of the 1797 images). Files: `config.py` (DataConfig), `idx.py` (IDX, Fashion-MNIST),
`builtin.py` (digits, torchvision's), `images.py` (one image file), `image_folder.py`, `splits.py`
(the registry and `load_splits`).

Example:
    >>> splits = load_splits(DataConfig(name="fashion-mnist"))
    >>> loader = splits.train.loader(batch_size=256, shuffle=True)
"""

from ssl_coded.data.config import DataConfig, data_record, parse_data_overrides
from ssl_coded.data.errors import DatasetError
from ssl_coded.data.idx import fashion_mnist_dir, load_fashion_mnist, read_idx
from ssl_coded.data.image_folder import (
    StreamingImageFolder,
    check_readable,
    decode_files,
    decoded_bytes,
    list_image_folder,
    load_image_folder,
    streams,
)
from ssl_coded.data.images import read_square_image, square_crop
from ssl_coded.data.splits import DATASETS, LOADERS, ImageDataset, Splits, channel_stats, check_data, load_splits
from ssl_coded.data.tensors import TensorImageDataset, batch_loader

__all__ = [
    "DATASETS",
    "LOADERS",
    "DataConfig",
    "DatasetError",
    "ImageDataset",
    "Splits",
    "StreamingImageFolder",
    "TensorImageDataset",
    "batch_loader",
    "channel_stats",
    "check_data",
    "check_readable",
    "data_record",
    "decode_files",
    "decoded_bytes",
    "fashion_mnist_dir",
    "list_image_folder",
    "load_fashion_mnist",
    "load_image_folder",
    "load_splits",
    "parse_data_overrides",
    "read_idx",
    "read_square_image",
    "square_crop",
    "streams",
]
