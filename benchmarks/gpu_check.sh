#!/usr/bin/env bash
# Everything that must work on a GPU, in one run of under 8 minutes on one GPU with Fashion-MNIST
# installed: the suite's CUDA tests, evaluating a torchvision ResNet-18 on the GPU, 2 epochs of the
# SimCLR Fashion-MNIST recipe on it and the exact kNN of bench_knn's shape (50,000 x 512 gallery, 10,000
# queries, k 200) against the fp32 product of that shape alone. Prints each step's wall time and writes them,
# with the GPU's name and the versions, to $OUT (default gpu-check/times.txt).
#
#   bash benchmarks/gpu_check.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check/times.txt}
DIR=$(dirname "$OUT")
mkdir -p "$DIR"
PY=${PY:-python}

$PY - <<'PY' | tee "$OUT"
import torch
assert torch.cuda.is_available(), "no CUDA device: this check is for a GPU machine"
print(f"gpu: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; cuda {torch.version.cuda}")
PY

step() {  # step NAME COMMAND...: run it, print and record its wall time
  local name=$1 start end
  shift
  start=$(date +%s.%N)
  "$@" > "$DIR/$name.log" 2>&1 || { echo "$name: FAILED (see $DIR/$name.log)" | tee -a "$OUT"; exit 1; }
  end=$(date +%s.%N)
  printf '%s: %.1f s\n' "$name" "$(echo "$end - $start" | bc)" | tee -a "$OUT"
}

step cuda-tests $PY -m pytest -q -p no:cacheprovider -m cuda tests
step eval-resnet18 $PY -m ssl_coded.cli eval all torchvision:resnet18 --device cuda \
  --dataset name=fashion-mnist --out "$DIR/eval-resnet18"
step simclr-2-epochs $PY -m ssl_coded.cli pretrain simclr-fashion-mnist trainer.max_epochs=2 \
  trainer.accelerator=gpu "out_dir=$DIR" name=simclr-gpu --overwrite
step knn-gpu $PY - <<'PY'
import time, torch
from ssl_coded.search.knn import KnnBank
g = torch.Generator(device="cuda").manual_seed(0)
bank = torch.nn.functional.normalize(torch.randn(50_000, 512, device="cuda", generator=g), dim=1)
queries = torch.nn.functional.normalize(torch.randn(10_000, 512, device="cuda", generator=g), dim=1)
def timed(fn):
    fn(); torch.cuda.synchronize(); times = []
    for _ in range(5):
        start = time.perf_counter(); fn(); torch.cuda.synchronize(); times.append(time.perf_counter() - start)
    return sorted(times)[2]
search = timed(lambda: KnnBank(bank).search(queries, 200))
product = timed(lambda: queries @ bank.T)
print(f"exact kNN {search:.4f} s, fp32 product alone {product:.4f} s, ratio {search / product:.2f}")
PY
cat "$DIR/knn-gpu.log" | tee -a "$OUT"
echo "times in $OUT; logs beside it"
