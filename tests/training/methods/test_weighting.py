"""`coded.weighting` in a recipe: `gradient` makes the penalty's gradient on the hooked parameters the weight
times the method's loss's, through the method's own step (`with_coded_penalty`), for a method whose loss
has a floor (SimSiam's negative cosine) and one without (SimCLR)."""

import pytest
import torch

from ssl_coded.data import load_splits
from ssl_coded.training.methods import build_method
from ssl_coded.training.recipes import load_config


@pytest.mark.parametrize("recipe", ["simclr-digits", "simsiam-digits"])
def test_gradient_weighting_in_the_methods_step(recipe, monkeypatch):
    config = load_config(recipe, ["coded.enabled=true", "coded.weighting=gradient", "coded.weight=0.05"])
    splits = load_splits(config.data)
    torch.manual_seed(0)
    method = build_method(config, splits)
    method.setup("fit")
    monkeypatch.setattr(method, "log", lambda *args, **kwargs: None)  # no trainer to log to
    images = splits.train.take(torch.arange(32))[0]
    loss, _ = method.ssl_step(method.to_input(images))
    total = method.with_coded_penalty(loss, batch_size=32)
    hooked = [p for p in method.coded_hook.module.parameters() if p.requires_grad]
    norms = [
        torch.sqrt(sum((g**2).sum() for g in torch.autograd.grad(v, hooked, retain_graph=True, allow_unused=True)
                       if g is not None))
        for v in (loss, total - loss)
    ]  # fmt: skip
    assert float(norms[1]) == pytest.approx(0.05 * float(norms[0]), rel=1e-4)
