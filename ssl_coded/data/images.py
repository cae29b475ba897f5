"""One image file as uint8 (3, S, S): decoded with PIL at its real bit depth, converted to RGB, the short
side resized and the centre cropped. PIL and torchvision are imported where an image is read."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from ssl_coded.data.errors import DatasetError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


UNREADABLE_FIX = "replace or delete it, or set data.skip_unreadable=true to skip unreadable images"


def unreadable_reason(error: Exception) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):  # its own text only repeats the path
        return "not an image PIL can read"
    reason = " ".join(str(error).split())  # one line, whatever PIL put in it
    if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return f"{reason.rstrip('.')} (PIL.Image.MAX_IMAGE_PIXELS); downscale it if it is a real image"
    return reason


def open_image(path: str) -> PILImage:
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


def as_rgb(image: PILImage, path: str, fix: str) -> PILImage:
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


def read_square_image(path: str, size: int, fix: str = UNREADABLE_FIX) -> Tensor:
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
        with open_image(path) as image:  # closed here: a large folder would otherwise run out of file handles
            image.draft("RGB", (size, size))
            rgb = as_rgb(image, path, fix)
    # UnidentifiedImageError (not an image) and cut-short or damaged files are OSError; some PIL plugins
    # report a malformed file as SyntaxError; an image over PIL's pixel limit raises a decompression bomb.
    except (OSError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DatasetError(f"cannot read image {path}: {unreadable_reason(error)}; {fix}") from error
    return square_crop(pil_to_tensor(rgb), size)
