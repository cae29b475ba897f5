"""torch.compile of a hooked model: the coding matrices are built outside the traced graph.

Regression test: with a cold matrix cache, Dynamo traced the numpy construction of E and D and
crashed ("Expected np.nditer base") on the first forward and on every new batch size.
"""

import shutil
import warnings

import pytest
import torch
from torch import nn

from ssl_coded import CodedSmoothing, CodedSmoothingHook, coding


def _has_cxx_compiler() -> bool:
    return bool(shutil.which("g++") or shutil.which("cc"))


@pytest.mark.parametrize(
    "backend",
    [
        "aot_eager",
        pytest.param(
            "inductor",
            marks=[
                pytest.mark.slow,  # kernel compilation: ~25 s cold on two cores, ~7 s once cached
                pytest.mark.skipif(not _has_cxx_compiler(), reason="inductor on CPU needs a C++ compiler (g++ or cc)"),
            ],
        ),
    ],
)
def test_compiled_hooked_model_trains_and_matches_eager(backend, cold_cache):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    head = model[2]
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="2")
    compiled = torch.compile(model, backend=backend)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    for batch_size in (16, 16, 5):  # a repeated shape, then a short last batch (a new K, new matrices)
        x = torch.randn(batch_size, 8)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = compiled(x)
        assert not [w for w in caught if "Dynamo" in str(w.message)], [str(w.message)[:200] for w in caught]
        penalty = hook.pop_penalty()
        assert torch.isfinite(penalty) and penalty > 0
        loss = out.square().mean() + penalty
        loss.backward()
        for parameter in head.parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
            assert parameter.grad.abs().sum() > 0

        # the same model, not compiled, on the same batch and weights (before the step)
        model(x)
        expected = hook.pop_penalty()
        torch.testing.assert_close(penalty.detach(), expected.detach(), rtol=1e-4, atol=1e-5)

        optimizer.step()
        optimizer.zero_grad()

    # the matrices went through the usual cache: one entry per batch size, shared with eager
    assert len(coding._TORCH_CACHE) == 2
