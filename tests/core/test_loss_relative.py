"""`hook.regularize(loss)`: the penalty taken relative to the method's own loss (weight x |loss|, the
penalty's gradient direction kept), checked against the penalty and gradients computed by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssl_coded import CodedSmoothing, CodedSmoothingHook


def model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4)))
    return model, torch.randn(8, 6)


def test_the_penalty_is_weight_times_the_loss_and_its_gradient_is_the_penalty_s_rescaled():
    model, x = model_and_batch()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.3), submodule="2")
    loss = model(x).pow(2).mean() * 1000  # a loss of another scale: the relative penalty follows it
    total = hook.regularize(loss)
    raw = hook.last_penalty  # the absolute penalty, 0.3 x score, as pop_penalty returned it
    torch.testing.assert_close(total - loss, 0.3 * loss.detach().abs())
    head = list(model[2].parameters())
    grad_total = torch.autograd.grad(total - loss, head, retain_graph=True)
    model2, _ = model_and_batch()
    hook2 = CodedSmoothingHook(model2, CodedSmoothing(weight=0.3), submodule="2")
    model2(x)
    penalty = hook2.pop_penalty()
    torch.testing.assert_close(penalty.detach(), raw)
    grad_penalty = torch.autograd.grad(penalty, list(model2[2].parameters()))
    factor = 0.3 * float(loss.detach().abs()) / float(penalty.detach())
    for g_rel, g_abs in zip(grad_total, grad_penalty, strict=True):
        torch.testing.assert_close(g_rel, factor * g_abs, rtol=1e-4, atol=1e-6)


def test_a_step_without_a_penalty_adds_nothing():
    model, x = model_and_batch()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.3), submodule="2")
    with torch.no_grad():
        loss = model(x).sum()  # no gradients: no coded pass
    assert torch.equal(hook.regularize(loss), loss)


def test_relative_to_the_gradient_the_penalty_gradient_is_weight_times_the_loss_gradient():
    model, x = model_and_batch()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.05), submodule="2")
    loss = model(x).pow(2).mean() * 1000
    total = hook.regularize(loss, relative_to="gradient")
    head = list(model[2].parameters())
    added = torch.autograd.grad(total - loss, head, retain_graph=True)
    own = torch.autograd.grad(loss, head, retain_graph=True)
    norm = lambda grads: torch.sqrt(sum((g**2).sum() for g in grads))  # noqa: E731
    torch.testing.assert_close(norm(added), 0.05 * norm(own), rtol=1e-5, atol=0)

    # its direction is the plain penalty's: the same model and batch, popped and differentiated by hand
    model2, _ = model_and_batch()
    hook2 = CodedSmoothingHook(model2, CodedSmoothing(weight=0.05), submodule="2")
    model2(x)
    plain = torch.autograd.grad(hook2.pop_penalty(), list(model2[2].parameters()))
    factor = norm(added) / norm(plain)
    for g_rel, g_abs in zip(added, plain, strict=True):
        torch.testing.assert_close(g_rel, factor * g_abs, rtol=1e-4, atol=1e-7)
    # the backbone below the hook is reached by the penalty but does not set its size
    assert torch.autograd.grad(total - loss, model[0].weight, retain_graph=True)[0].abs().sum() > 0


def test_relative_to_the_gradient_adds_nothing_without_a_penalty_and_refuses_other_names():
    model, x = model_and_batch()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.3), submodule="2")
    with torch.no_grad():
        loss = model(x).sum()
    assert torch.equal(hook.regularize(loss, relative_to="gradient"), loss)
    with pytest.raises(ValueError, match="'loss' or 'gradient'"):
        hook.regularize(loss, relative_to="value")


def test_relative_to_the_gradient_refuses_a_frozen_hooked_submodule():
    model, x = model_and_batch()
    for parameter in model[2].parameters():
        parameter.requires_grad_(False)  # the penalty would train model[0] only, through the frozen head
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.3), submodule="2")
    loss = model(x).pow(2).mean()
    with pytest.raises(ValueError, match="has none; hook a trainable submodule or use relative_to='loss'"):
        hook.regularize(loss, relative_to="gradient")
