"""Peak memory of `ssl-coded embed` on image folders of growing size, against the size of what it writes.

A folder of N random 32 x 32 RGB PNGs (two classes, train/ and test/), embedded by `torchvision:resnet18`
(512-d, float32) with the folder streamed (`stream=true`: files decoded batch by batch); each size runs in
a fresh process whose peak resident memory (`ru_maxrss`) is read when it ends. Beside it: the embeddings'
size on disk and the decoded images' size (what holding the folder in memory would take). Bounded memory
means the peak stays flat while those grow with N.

Run: python -m benchmarks.bench_embed [--sizes 5000 20000] [--out-dir runs/bench-embed]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ssl_coded.io import write_text
from ssl_coded.tables import markdown_table

SIZE = 32


def make_folder(root: Path, count: int, seed: int = 0) -> None:
    """count images, 4 in 5 under train/, split evenly between two classes."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        split = "test" if i % 5 == 4 else "train"
        kind = "a" if i % 2 else "b"
        folder = root / split / kind
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def peak_of(command: list[str]) -> float:
    """Run `command` in a fresh child; its peak resident memory in MiB (the largest child's so far: runs go
    from small to large, so each one's peak is its own or a larger later one's)."""
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--out-dir", default="runs/bench-embed")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for count in sorted(args.sizes):
            root, out = Path(scratch) / f"folder{count}", Path(scratch) / f"embed{count}"
            make_folder(root, count)
            data = ["name=imagefolder", f"root={root}", f"image_size={SIZE}", "stream=true"]
            command = [sys.executable, "-m", "ssl_coded.cli", "embed", "torchvision:resnet18", "--out", str(out)]
            peak = peak_of([*command, "--device", "cpu", "--dataset", *data])
            embeddings = (out / "embeddings.npy").stat().st_size / 2**20
            decoded = count * 3 * SIZE * SIZE / 2**20
            rows.append([f"{count:,}", f"{peak:.0f}", f"{embeddings:.1f}", f"{decoded:.1f}"])
            shutil.rmtree(root)
    table = markdown_table(["images", "peak RSS MiB", "embeddings.npy MiB", "decoded images MiB"], rows)
    print(table)
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    write_text(Path(args.out_dir) / "bench-embed.md", table + "\n")


if __name__ == "__main__":
    main()
