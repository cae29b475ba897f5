"""The hook's pitfalls in real loops, made impossible or explained in one line (issue 29): a deepcopy made
after the hook (an EMA teacher, AveragedModel), pop_penalty before the forwards, a second read of the
penalty in one step, a hook on a frozen submodule."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ssl_coded import CodedSmoothing, CodedSmoothingHook
from ssl_coded.notices import RunWarning


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch):
    """warn_once speaks once a process: each test here hears its own warning."""
    import ssl_coded.notices

    monkeypatch.setattr(ssl_coded.notices, "_shown", set())


def student() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4)))


@pytest.mark.parametrize("make_teacher", [copy.deepcopy, AveragedModel], ids=["deepcopy", "AveragedModel"])
def test_a_teacher_copied_after_the_hook_is_never_coded(make_teacher):
    model = student()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="2")
    teacher = make_teacher(model)
    x = torch.randn(8, 6)
    for _ in range(3):
        teacher(x)  # gradients on: a copy that kept the branch would code here
    assert hook.passes == 0 and hook.penalties == []
    model(x)
    assert hook.passes == 1
    copied = [h for m in teacher.modules() for h in m._forward_hooks.values()]
    assert copied and all(h.__self__._detached for h in copied)  # kept by the copy, inert
    hook.remove()
    assert not [h for m in model.modules() for h in m._forward_hooks.values()]


def test_pop_penalty_before_the_forwards_is_refused_in_one_line():
    model = student()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="2")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 6)
    early = hook.pop_penalty()  # step 1: before the forward, nothing yet
    loss = model(x).pow(2).mean() + early
    loss.backward()
    optimizer.step()
    with pytest.raises(RuntimeError, match=r"computed before the last optimizer step.*after the step.s forwards"):
        hook.pop_penalty()  # step 2: the penalty of step 1, whose graph backward has freed


def test_a_second_read_in_one_step_warns_and_last_penalty_is_for_logging():
    model = student()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="2")
    model(torch.randn(8, 6))
    penalty = hook.pop_penalty()
    assert torch.equal(hook.last_penalty, penalty.detach()) and penalty.requires_grad
    with pytest.warns(RunWarning, match="pop_penalty\\(\\) was called again before another forward"):
        again = hook.pop_penalty()
    assert float(again) == 0.0
    model(torch.randn(8, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hook.pop_penalty()  # a forward ran between: one read a step, no warning


def test_a_hook_on_a_frozen_submodule_warns_once_and_adds_nothing():
    model = student()
    for parameter in model[2].parameters():
        parameter.requires_grad_(False)
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5), submodule="2")
    x = torch.randn(8, 6)  # the frozen head's input needs no gradient either: model[0] is frozen below
    for parameter in model[0].parameters():
        parameter.requires_grad_(False)
    with pytest.warns(RunWarning, match="'2' \\(Sequential\\) has no trainable parameters.*student's head"):
        model(x)
    model(x)
    assert hook.passes == 0 and float(hook.pop_penalty()) == 0.0
