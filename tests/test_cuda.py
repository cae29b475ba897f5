"""What must hold on a GPU, run by `benchmarks/gpu_check.sh` on a machine with CUDA; skipped without one
(CI has none). Each compares the GPU's answer with the CPU's on the same inputs."""

import pytest
import torch
from torch import nn

from ssl_coded import CodedSmoothing, CodedSmoothingHook

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_the_coded_penalty_on_the_gpu_equals_the_cpus():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16))
    x = torch.rand(24, 1, 8, 8)
    penalties = []
    for device in ("cpu", "cuda"):
        moved = model.to(device)
        with CodedSmoothingHook(moved, CodedSmoothing(weight=0.5), submodule="3") as hook:
            moved(x.to(device))
            penalty = hook.pop_penalty()
            penalty.backward()
        penalties.append(float(penalty))
        assert moved[3].weight.grad.device.type == device
        moved.zero_grad()
    assert penalties[1] == pytest.approx(penalties[0], rel=1e-4)


def test_the_exact_knn_on_the_gpu_finds_the_cpus_neighbours():
    from ssl_coded.search.knn import KnnBank

    generator = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(5000, 64, generator=generator), torch.randn(300, 64, generator=generator)
    cpu = KnnBank(bank).search(queries, 20)
    gpu = KnnBank(bank.to("cuda")).search(queries.to("cuda"), 20)
    assert torch.equal(gpu[1].cpu(), cpu[1])
    assert torch.allclose(gpu[0].cpu(), cpu[0], atol=1e-5)


def test_evaluation_runs_on_the_gpu_and_agrees_with_the_cpu():
    from ssl_coded.eval import evaluate
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    images = torch.rand(300, 1, 8, 8, generator=generator) + labels.view(-1, 1, 1, 1) * 0.5
    train, test = TensorDataset(images[:240], labels[:240]), TensorDataset(images[240:], labels[240:])
    encoder = nn.Flatten()
    rows = {d: evaluate(encoder, train, test, protocols=("knn",), device=d)["encoder"] for d in ("cpu", "cuda")}
    assert rows["cuda"]["knn_dino_top1"] == pytest.approx(rows["cpu"]["knn_dino_top1"], abs=1 / 60)


def test_a_recipe_pretrains_on_the_gpu(tmp_path):
    from ssl_coded.cli import main
    from tests.training.test_loop import QUICK

    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={tmp_path}", "trainer.accelerator=gpu"]) == 0
    assert (tmp_path / "simclr-digits" / "summary.json").is_file()
