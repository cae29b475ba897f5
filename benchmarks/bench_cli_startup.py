"""How long the command line takes to refuse bad input, beside `ssl-coded --help` (the floor: the
interpreter, torch and argparse). Every one-line error should come back within about half a second
of it: a refusal must not pay for Lightning, FAISS or matplotlib.

Each command runs as a user runs it (a fresh `ssl-coded` process), in interleaved rounds; the table
gives the median seconds and the median per-round difference from `--help`, and whether the process
imported Lightning (`python -X importtime`).

Run: python -m benchmarks.bench_cli_startup [--rounds 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SSL_CODED = str(Path(sys.executable).parent / "ssl-coded")

# name -> arguments; each but the first two is refused with exit status 2
COMMANDS = {
    "--help": ["--help"],
    "eval --help": ["eval", "--help"],
    "eval foreign: unknown data key": ["eval", "knn", "torchvision:resnet18", "--dataset", "bogus=1"],
    "eval run: no such run": ["eval", "knn", "runs/none"],
    "pretrain: unknown key": ["pretrain", "simclr-digits", "coded.wieght=1"],
    "pretrain: another method's key": ["pretrain", "byol-digits", "method.temperature=0.1"],
    "pretrain: method bound": ["pretrain", "mae-digits", "method.mask_ratio=1.5"],
    "train: --regularizers without --compare": ["train", "supervised-digits", "--regularizers", "noise"],
    "attack: bad override": ["attack", "runs/none", "--set", "attack.eps=[2.0]"],
    "study: no such file": ["study", "none.yaml"],
}


def timed(args: list[str], cwd: str) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([SSL_CODED, *args], cwd=cwd, capture_output=True)
    return time.perf_counter() - start, done.returncode


def imports_lightning(args: list[str], cwd: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ssl_coded.cli", *args], cwd=cwd, capture_output=True, text=True
    )
    return any(re.search(r"\|\s*pytorch_lightning$", line.rstrip()) for line in done.stderr.splitlines())


def run(rounds: int = 5) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as cwd:
        seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
        codes: dict[str, int] = {}
        for _ in range(rounds):  # interleaved: a slow moment of the machine touches every command alike
            for name, args in COMMANDS.items():
                elapsed, codes[name] = timed(args, cwd)
                seconds[name].append(elapsed)
        floor = seconds["--help"]
        return {
            name: {
                "seconds": statistics.median(values),
                "over_help": statistics.median(v - f for v, f in zip(values, floor, strict=True)),
                "exit": codes[name],
                "lightning": imports_lightning(COMMANDS[name], cwd),
            }
            for name, values in seconds.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = run(args.rounds)
    print(f"medians of {args.rounds} interleaved rounds, a fresh process each")
    print("| command | exit | seconds | over --help | imports Lightning |")
    print("|---|---|---|---|---|")
    for name, row in results.items():
        print(
            f"| {name} | {row['exit']} | {row['seconds']:.2f} | {row['over_help']:+.2f} | "
            f"{'yes' if row['lightning'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
