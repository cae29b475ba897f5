import copy

import pytest
import torch
from torch import nn

from ssl_coded import CodedSmoothing, CodedSmoothingHook, CodingScheme, attach_coded_smoothing
from tests.oracles import coded_pass_by_hand


class TwoPart(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))

    def forward(self, x):
        return self.head(self.backbone(x))


class CountingHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(12, 4)
        self.batch_sizes = []

    def forward(self, x):
        self.batch_sizes.append(x.shape[0])
        return self.linear(x)


def test_hook_by_name_equals_direct_regularizer_call():
    model, x = TwoPart(), torch.randn(10, 6)
    reg = CodedSmoothing(weight=0.5, kind="berrut")
    with CodedSmoothingHook(model, reg, submodule="head") as hook:
        out = model(x)
        penalty = hook.pop_penalty()
    features = model.backbone(x)
    expected = 0.5 * nn.functional.mse_loss(CodingScheme(kind="berrut").coded_forward(model.head, features), out)
    torch.testing.assert_close(penalty, expected)


def test_penalty_equals_the_coded_pass_built_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4)))
    x = torch.randn(10, 6)
    with CodedSmoothingHook(model, CodedSmoothing(weight=0.5, kind="spline", coded_ratio=3.0), submodule="2") as hook:
        out = model(x)
        penalty = hook.pop_penalty()
    decoded = coded_pass_by_hand(model[2], model[:2](x), "spline", coded_ratio=3.0).float()
    torch.testing.assert_close(penalty, 0.5 * nn.functional.mse_loss(decoded, out))


def test_fires_once_per_training_forward_and_never_on_its_own_coded_forward():
    model = TwoPart()
    model.head = CountingHead()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0, coded_ratio=3.0), submodule="head")
    model(torch.randn(8, 6))
    assert model.head.batch_sizes == [8, 24]  # the real forward, then one coded forward
    model(torch.randn(8, 6))
    assert len(hook.penalties) == 2 and hook.passes == 2
    hook.pop_penalty()
    assert hook.penalties == []


def test_inactive_in_eval_mode_and_under_no_grad():
    model = TwoPart()
    model.head = CountingHead()
    hook = CodedSmoothingHook(model.head, CodedSmoothing(weight=1.0))
    model.eval()
    model(torch.randn(8, 6))
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 6))
    assert model.head.batch_sizes == [8, 8] and hook.penalties == []
    assert hook.pop_penalty().item() == 0.0


def test_max_passes_per_step_codes_only_the_first_view():
    model = TwoPart()
    model.head = CountingHead()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="head", max_passes_per_step=1)
    model(torch.randn(8, 6))
    model(torch.randn(8, 6))
    assert model.head.batch_sizes == [8, 16, 8]
    hook.pop_penalty()
    model(torch.randn(8, 6))
    assert model.head.batch_sizes[-2:] == [8, 16]


def coded_sizes(head: CountingHead) -> list[int]:
    """The real batch sizes whose forward was followed by a coded one (coded_ratio 2: twice its rows)."""
    sizes = head.batch_sizes
    return [k for k, after in zip(sizes, [*sizes[1:], 0], strict=True) if after == 2 * k]


def multi_crop_step(model, order):
    """A step of a multi-crop loop: crops of 4 (global) and 3 (local) rows in the given order."""
    for crop in order:
        model(torch.randn(4 if crop == "global" else 3, 6))


def test_calls_code_the_chosen_forwards_of_each_step():
    model = TwoPart()
    model.head = CountingHead()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="head", calls=range(2))
    for _ in range(2):  # counted afresh after each pop
        multi_crop_step(model, ["global", "global", "local", "local"])
        hook.pop_penalty()
    assert coded_sizes(model.head) == [4, 4, 4, 4]
    assert hook.passes == 4


def test_paused_forwards_are_not_coded_nor_counted_whatever_the_order():
    model = TwoPart()
    model.head = CountingHead()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="head", calls=[0, 1])
    with hook.paused():
        multi_crop_step(model, ["local", "local"])  # a loop that runs the local crops first
    multi_crop_step(model, ["global", "global"])
    assert coded_sizes(model.head) == [4, 4]
    with hook.paused():
        model(torch.randn(3, 6))
    assert len(hook.penalties) == 2 and not hook._paused


def test_calls_that_name_no_forward_are_refused():
    for calls in ([], [-1], [0.5]):
        with pytest.raises(ValueError, match=r"calls must name forwards by index from 0 \(e\.g\. range\(2\)\)"):
            CodedSmoothingHook(TwoPart(), CodedSmoothing(weight=1.0), submodule="head", calls=calls)


def test_pop_penalty_is_the_mean_over_forwards():
    model, reg = TwoPart(), CodedSmoothing(weight=1.0)
    hook = CodedSmoothingHook(model, reg, submodule="head")
    model(torch.randn(8, 6))
    model(torch.randn(8, 6))
    first, second = hook.penalties
    torch.testing.assert_close(hook.pop_penalty(), (first + second) / 2)


def test_gradients_of_the_penalty_reach_the_hooked_and_upstream_parameters():
    model = TwoPart()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="head")
    model(torch.randn(8, 6))
    hook.pop_penalty().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_removal_restores_the_model_exactly():
    model, x = TwoPart(), torch.randn(8, 6)
    twin = copy.deepcopy(model)
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="head")
    model(x), twin(x)  # same real forward; the coded pass must leave no trace (BN stats included)
    hook.remove()
    assert not model.head._forward_hooks and not model.head._forward_hooks_with_kwargs
    for (name, value), (_, expected) in zip(model.state_dict().items(), twin.state_dict().items(), strict=True):
        assert torch.equal(value, expected), name
    model.eval(), twin.eval()
    torch.testing.assert_close(model(x), twin(x), rtol=0, atol=0)


def test_context_manager_detaches_on_exit():
    model = TwoPart()
    with CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="head"):
        assert model.head._forward_hooks
    assert not model.head._forward_hooks


def test_unknown_submodule_lists_valid_names():
    with pytest.raises(ValueError, match=r"no submodule 'neck'.*'backbone'"):
        CodedSmoothingHook(TwoPart(), CodedSmoothing(), submodule="neck")


def test_unknown_submodule_error_is_one_line_with_the_nearest_names_first():
    model = nn.Sequential(TwoPart())  # lightly-style nesting: the blocks sit two levels down
    model[0].backbone.add_module("blocks", nn.Sequential(*[nn.Identity() for _ in range(20)]))
    with pytest.raises(ValueError) as error:
        CodedSmoothingHook(model, CodedSmoothing(), submodule="blocks")  # the user's guess: the bare name
    message = str(error.value)
    assert "\n" not in message and message.startswith("no submodule 'blocks' in Sequential; nearest names (of 31): ")
    listed = message.split("nearest names (of 31): ")[1].split("; ")[0].split(", ")
    assert listed[:4] == ["'0.backbone.blocks'", "'0'", "'0.backbone'", "'0.head'"] and len(listed) == 10
    with pytest.raises(ValueError) as error:
        CodedSmoothingHook(model, CodedSmoothing(), submodule="0.head.7")
    listed = str(error.value).split("nearest names (of 31): ")[1].split("; ")[0].split(", ")
    assert set(listed[:4]) == {"'0.head.0'", "'0.head.1'", "'0.head.2'", "'0.head.3'"}  # where the path went wrong


def test_suggest_lists_the_submodules_that_map_a_batch_to_a_batch_in_forward_order():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = TwoPart().backbone
            self.attention = nn.MultiheadAttention(12, 2)  # (N, B, D) without batch_first: dim 0 is not the batch
            self.masked = MaskedLinear()
            self.head = nn.Linear(12, 4)
            self.unused = nn.Linear(4, 4)

        def forward(self, x):
            h = self.backbone(x)
            h = h + self.attention(h[None], h[None], h[None])[0][0]
            return self.head(self.masked(h, torch.ones(len(h), 12)))

    class MaskedLinear(nn.Linear):  # takes a per-row mask beside the batch: the hook would refuse it
        def __init__(self):
            super().__init__(12, 12)

        def forward(self, x, mask):
            return super().forward(x * mask)

    model = Model()
    running_mean = model.backbone[1].running_mean.clone()
    candidates = CodedSmoothingHook.suggest(model, torch.randn(5, 6))
    assert [c.name for c in candidates] == ["", "backbone", "backbone.0", "backbone.1", "backbone.2", "head"]
    assert candidates[0].type == "Model" and candidates[-1].type == "Linear"
    assert candidates[1].input_shape == (5, 6) and candidates[1].output_shape == (5, 12)
    assert str(candidates[-1]) == "head  Linear  (5, 12) -> (5, 4)" and str(candidates[0]).startswith("(the model)")
    assert torch.equal(model.backbone[1].running_mean, running_mean)  # the example forward left no trace
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    for candidate in candidates[1:]:  # each one is accepted by the hook and yields a penalty
        with CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule=candidate.name) as hook:
            model(torch.randn(5, 6))
            assert hook.pop_penalty() > 0


def test_suggest_refuses_an_input_without_a_batch():
    with pytest.raises(TypeError, match="suggest needs an example batch"):
        CodedSmoothingHook.suggest(TwoPart(), [1.0, 2.0])


def test_attach_coded_smoothing_builds_the_regularizer_and_the_hook():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4)))
    x = torch.randn(10, 6)
    hook = attach_coded_smoothing(model, "2", weight=0.5, kind="berrut", coded_ratio=3.0, max_passes_per_step=1)
    assert isinstance(hook, CodedSmoothingHook) and hook.max_passes_per_step == 1
    assert hook.regularizer.weight == 0.5 and hook.regularizer.scheme.kind == "berrut"
    out = model(x)
    model(x)  # a second view: not coded (max_passes_per_step=1)
    penalty = hook.pop_penalty()
    hook.remove()
    decoded = coded_pass_by_hand(model[2], model[:2](x), "berrut", coded_ratio=3.0).float()
    torch.testing.assert_close(penalty, 0.5 * nn.functional.mse_loss(decoded, out))


@pytest.mark.slow  # it trains
def test_training_with_the_hook_makes_the_decoding_more_faithful():
    # fit noisy targets with and without the penalty; the regularised net decodes better
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 6, generator=generator), torch.randn(32, 4, generator=generator)
    reg = CodedSmoothing(weight=5.0, kind="berrut", coded_ratio=1.0)

    def train(with_hook):
        model = TwoPart()
        hook = CodedSmoothingHook(model, reg, submodule="head") if with_hook else None
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(150):
            loss = nn.functional.mse_loss(model(x), y) + (hook.pop_penalty() if hook else 0.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return reg(model.head, model.backbone(x)).item()

    assert train(with_hook=True) < 0.5 * train(with_hook=False)


def test_a_hook_whose_forward_never_runs_warns_once():
    from ssl_coded.notices import RunWarning

    class Encodes(nn.Module):  # like lightly's MAE backbone: the loop calls encode(), never forward()
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def encode(self, x):
            return self.linear(x)

    model = nn.Sequential(Encodes())
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="0")
    with pytest.warns(RunWarning, match=r"'0' \(Encodes\) has not run in 3 training steps") as record:
        for _ in range(6):
            model[0].encode(torch.randn(8, 4)).sum().backward()
            assert hook.pop_penalty() == 0
    assert len([w for w in record if issubclass(w.category, RunWarning)]) == 1


def test_batch_aligned_extra_arguments_are_refused():
    class TakesIndices(nn.Module):  # like an MAE decoder: the batch and per-row indices
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x, idx):
            return self.linear(x) + idx[:, :1]

    model = nn.Sequential(TakesIndices())
    CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="0")
    with pytest.raises(ValueError, match="takes argument 1 with the batch's 8 rows"):
        model[0](torch.randn(8, 4), torch.ones(8, 3))


def test_a_frozen_deepcopy_never_fires():
    # BYOL / MoCo: the momentum branch is a deepcopy with requires_grad off; the copied hook must not code it
    model = TwoPart()
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=1.0), submodule="head")
    momentum = copy.deepcopy(model)
    for parameter in momentum.parameters():
        parameter.requires_grad = False
    calls = []
    momentum.head.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    momentum(torch.randn(8, 6))
    assert calls == [8]  # the real forward only, no coded one
    model(torch.randn(8, 6))
    assert hook.passes == 1


def test_scored_against_labels_is_cross_entropy_of_the_decoded_logits_then_the_outputs_again():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4))
    x, labels = torch.randn(8, 6), torch.arange(8) % 4
    hook = CodedSmoothingHook(model, CodedSmoothing(weight=0.5, kind="berrut", coded_ratio=3.0, score="cross_entropy"))
    with hook.scored_against(labels):
        model(x)
    penalty = hook.pop_penalty()
    assert hook._labels is None  # the block ended: the real outputs are the target again
    hook.remove()
    decoded = coded_pass_by_hand(model, x, "berrut", coded_ratio=3.0).float()
    torch.testing.assert_close(penalty, 0.5 * nn.functional.cross_entropy(decoded, labels))
