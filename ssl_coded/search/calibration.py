"""Whether bf16 pays off on this CPU, measured once per machine and torch version, not read off CPU flags.

A CPU flag says whether bf16 products are native, not whether they are faster: a CPU may report
AVX512-BF16 and still multiply bf16 slower than fp32. So a few small timed products (bf16 and fp32
taking turns, the median of per-round ratios; well under a second) decide two things:

- the kNN search of `ssl_coded.search.knn.KnnBank` (`knn_backend()`): the certified bf16 product where bf16
  products are at least KNN_BF16_MIN_SPEEDUP times as fast as fp32 (the re-rank and the
  certificate cost the rest), the fp32 product elsewhere;
- whether `trainer.precision=bf16-mixed` keeps bf16 autocast on this CPU (`bf16_training()`).

The result is cached as JSON in `$SSL_CODED_CACHE_DIR`, else `$XDG_CACHE_HOME/ssl-coded`, else
`~/.cache/ssl-coded`, one file per CPU model, core count, torch threads and torch version; an
unreadable or corrupt file is measured again, an unwritable folder only costs the measurement
next time, and a measurement taken while other work oversubscribes the machine (its load average above
its cores) is used but not cached. Overrides, read on every call: `SSL_CODED_BF16=0|1` (bf16 counts as slow or fast,
for both decisions, without measuring) and `SSL_CODED_KNN_BACKEND=bf16|fp32|auto` (the kNN alone).

Example:
    >>> knn_backend()  # "fp32" on a CPU whose bf16 products are emulated
    >>> calibrate().speedup  # bf16 / fp32 product throughput measured here
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ssl_coded.io import atomic_write

KNN_BF16_MIN_SPEEDUP = 1.3  # the certified search's re-rank and fallbacks need bf16 products this much faster
TRAIN_BF16_MIN_SPEEDUP = 1.3  # autocast's casts cost a share of the step: bf16 must win clearly to pay
FORMAT = 1  # bumped when the measurement changes, so that old cache files are measured again

KNN_BACKENDS = ("bf16", "fp32")


@dataclass(frozen=True)
class Calibration:
    """Measured product throughput on this CPU (GFLOP/s) and where the figures came from.

    Args:
        fp32_gflops, bf16_gflops: matrix products of the kNN's shape (queries x dim x bank).
        fp32_conv_gflops, bf16_conv_gflops: a small CNN's 3x3 convolution (the training recipes').
        source: "measured" or "cache".
    """

    fp32_gflops: float
    bf16_gflops: float
    fp32_conv_gflops: float
    bf16_conv_gflops: float
    source: str = "measured"

    @property
    def speedup(self) -> float:
        """bf16 matrix products per second over fp32 ones."""
        return self.bf16_gflops / self.fp32_gflops

    @property
    def conv_speedup(self) -> float:
        """bf16 convolutions per second over fp32 ones."""
        return self.bf16_conv_gflops / self.fp32_conv_gflops


def decide_knn_backend(calibration: Calibration) -> str:
    """ "bf16" (certified bf16 product) where bf16 products are clearly faster, else "fp32".

    Example:
        >>> decide_knn_backend(Calibration(100.0, 300.0, 100.0, 300.0))
        'bf16'
    """
    return "bf16" if calibration.speedup >= KNN_BF16_MIN_SPEEDUP else "fp32"


def decide_bf16_training(calibration: Calibration) -> bool:
    """Whether bf16 autocast trains faster than fp32: both the products and the convolutions must win.

    Example:
        >>> decide_bf16_training(Calibration(100.0, 300.0, 100.0, 90.0))
        False
    """
    return min(calibration.speedup, calibration.conv_speedup) >= TRAIN_BF16_MIN_SPEEDUP


def knn_backend() -> str:
    """The kNN search this CPU gets: `SSL_CODED_KNN_BACKEND`, else `SSL_CODED_BF16`, else the measurement.

    Raises:
        ValueError: an override holds an unknown value.
    """
    asked = os.environ.get("SSL_CODED_KNN_BACKEND", "auto").strip().lower() or "auto"
    if asked in KNN_BACKENDS:
        return asked
    if asked != "auto":
        raise ValueError(f"SSL_CODED_KNN_BACKEND={asked!r}: use bf16, fp32 or auto (measured on this machine)")
    forced = _bf16_override()
    if forced is not None:
        return "bf16" if forced else "fp32"
    return decide_knn_backend(calibrate())


def bf16_training() -> bool:
    """Whether bf16 autocast is worth it on this CPU: `SSL_CODED_BF16`, else the measurement.

    Raises:
        ValueError: `SSL_CODED_BF16` holds something other than 0 or 1.
    """
    forced = _bf16_override()
    return decide_bf16_training(calibrate()) if forced is None else forced


def _bf16_override() -> bool | None:
    value = os.environ.get("SSL_CODED_BF16", "").strip()
    if value == "":
        return None
    if value not in ("0", "1"):
        raise ValueError(f"SSL_CODED_BF16={value!r}: use 1 (bf16 is fast here), 0 (it is not) or leave it unset")
    return value == "1"


def cache_dir() -> Path:
    """Where calibrations are kept: `$SSL_CODED_CACHE_DIR`, `$XDG_CACHE_HOME/ssl-coded` or `~/.cache/ssl-coded`."""
    if os.environ.get("SSL_CODED_CACHE_DIR"):
        return Path(os.environ["SSL_CODED_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ssl-coded"


def machine_key() -> dict[str, Any]:
    """What a measurement holds for: the CPU model, its cores, torch's threads, the torch version."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "format": FORMAT,
    }


def cpu_model() -> str:
    """The CPU's model name (with family/model numbers where Linux gives them), else the platform's."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
            if not line.strip() and fields:
                break  # the first processor's block describes them all
        if "model name" in fields:
            return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cache_path(key: dict[str, Any] | None = None) -> Path:
    """The cache file of one machine key (by default this machine's)."""
    text = json.dumps(key or machine_key(), sort_keys=True)
    return cache_dir() / f"calibration-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


_memo: dict[str, Calibration] = {}


def calibrate(refresh: bool = False) -> Calibration:
    """This machine's calibration: from this process's memory, else the cache file, else measured (and cached).

    Args:
        refresh: measure again and overwrite the cache.
    """
    key = machine_key()
    path = cache_path(key)
    memo_key = str(path)
    if not refresh and memo_key in _memo:
        return _memo[memo_key]
    calibration = None if refresh else read_cache(path, key)
    if calibration is None:
        calibration = measure()
        if not machine_busy():  # a measurement under other work is used now, never kept for later runs
            write_cache(path, key, calibration)
    _memo[memo_key] = calibration
    return calibration


def machine_busy() -> bool:
    """Whether other work oversubscribes this machine: a 1-minute load average above its cores. Products
    timed then are slowed unevenly (a bf16 convolution waits on its slowest thread), and a cached verdict
    would outlive the load."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return False


def forget() -> None:
    """Drop this process's remembered calibration (the next call reads the cache again)."""
    _memo.clear()


def read_cache(path: Path, key: dict[str, Any]) -> Calibration | None:
    """The calibration stored at `path` for `key`; None if missing, unreadable, corrupt or another key's."""
    try:
        data = json.loads(path.read_text())
        if data.get("key") != key:
            return None
        figures = {
            name: float(data[name]) for name in ("fp32_gflops", "bf16_gflops", "fp32_conv_gflops", "bf16_conv_gflops")
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not all(value > 0 for value in figures.values()):
        return None
    return Calibration(**figures, source="cache")


def write_cache(path: Path, key: dict[str, Any], calibration: Calibration) -> None:
    """Store a calibration atomically; a folder that cannot be written is skipped (measured again next time)."""
    data = {"key": key, **asdict(calibration)}
    data.pop("source")
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    with contextlib.suppress(OSError):  # OutputError included: the next process measures again
        atomic_write(path, write)


def measure(rounds: int = 8) -> Calibration:
    """Time bf16 and fp32 products and convolutions on this CPU, taking turns; the fastest round of each.

    The shapes are small (milliseconds per fp32 product) so that the whole measurement stays well
    under a second even where bf16 is emulated; the fastest round is the one least disturbed by other
    processes on a shared machine.
    """
    generator = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(256, 512, generator=generator), torch.randn(1024, 512, generator=generator)
    images, weight = torch.randn(8, 32, 14, 14, generator=generator), torch.randn(32, 32, 3, 3, generator=generator)
    product_flops = 2.0 * queries.shape[0] * queries.shape[1] * bank.shape[0]
    conv_flops = 2.0 * images.numel() * weight[0].numel()

    def product(dtype: torch.dtype) -> Any:
        a, b = queries.to(dtype), bank.to(dtype)
        out = torch.empty(len(a), len(b), dtype=dtype)
        return lambda: torch.mm(a, b.T, out=out)

    def conv(dtype: torch.dtype) -> Any:
        x, w = images.to(dtype), weight.to(dtype)
        return lambda: torch.nn.functional.conv2d(x, w, padding=1)

    jobs = {
        "fp32_gflops": (product(torch.float32), product_flops),
        "bf16_gflops": (product(torch.bfloat16), product_flops),
        "fp32_conv_gflops": (conv(torch.float32), conv_flops),
        "bf16_conv_gflops": (conv(torch.bfloat16), conv_flops),
    }
    times: dict[str, list[float]] = {name: [] for name in jobs}
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        for job, _ in jobs.values():  # warm-up: the first call of a kernel packs, allocates, dispatches
            job()
        for i in range(rounds):
            for name, (job, _) in list(jobs.items())[:: 1 if i % 2 == 0 else -1]:
                start = time.perf_counter()
                job()
                times[name].append(time.perf_counter() - start)
    gflops = {name: flops / min(times[name]) / 1e9 for name, (_, flops) in jobs.items()}
    return Calibration(
        gflops["fp32_gflops"], gflops["bf16_gflops"], gflops["fp32_conv_gflops"], gflops["bf16_conv_gflops"]
    )


def describe(calibration: Calibration | None = None) -> str:
    """One line for benchmarks and logs: the measured ratios and what they decided (overrides included).

    Example:
        >>> describe()
        'bf16/fp32 products 0.21x, convolutions 0.35x (cache): kNN backend fp32, bf16 training off'
    """
    calibration = calibration or calibrate()
    overrides = [f"{n}={os.environ[n]}" for n in ("SSL_CODED_BF16", "SSL_CODED_KNN_BACKEND") if os.environ.get(n)]
    forced = f"; overridden by {', '.join(overrides)}" if overrides else ""
    return (
        f"bf16/fp32 products {calibration.speedup:.2f}x, convolutions {calibration.conv_speedup:.2f}x "
        f"({calibration.source}): kNN backend {knn_backend()}, bf16 training {'on' if bf16_training() else 'off'}"
        f"{forced}"
    )
