import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_coded import CodedSmoothing
from tests.oracles import coded_pass_by_hand


def small_mlp(seed=0, batchnorm=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 16)] + ([nn.BatchNorm1d(16)] if batchnorm else []) + [nn.Tanh(), nn.Linear(16, 4)]
    return nn.Sequential(*layers)


def test_penalty_is_weighted_score_of_decoded_against_fn_of_x():
    net, x = small_mlp(), torch.randn(10, 6)
    coded = CodedSmoothing(weight=0.3, kind="berrut", coded_ratio=2.0)
    decoded = coded_pass_by_hand(net, x, "berrut", coded_ratio=2.0).float()
    expected = 0.3 * F.mse_loss(decoded, net(x))
    torch.testing.assert_close(coded(net, x), expected)


def test_cosine_score():
    net, x = small_mlp(), torch.randn(10, 6)
    coded = CodedSmoothing(weight=2.0, score="cosine", kind="berrut")
    decoded = coded_pass_by_hand(net, x, "berrut").float()
    expected = 2.0 * (1 - F.cosine_similarity(decoded, net(x), dim=1)).mean()
    torch.testing.assert_close(coded(net, x), expected)


def test_cross_entropy_against_labels_and_decoded_accuracy_logged():
    net, x, labels = small_mlp(), torch.randn(12, 6), torch.randint(0, 4, (12,))
    coded = CodedSmoothing(weight=1.0, score="cross_entropy")
    decoded = coded_pass_by_hand(net, x).float()
    torch.testing.assert_close(coded(net, x, target=labels), F.cross_entropy(decoded, labels))
    expected_accuracy = (decoded.argmax(1) == labels).float().mean()
    torch.testing.assert_close(coded.last_fidelity["decoded_accuracy"], expected_accuracy)
    with pytest.raises(ValueError, match="needs the labels"):
        coded(net, x)


def test_given_target_is_used_and_relative_error_logged():
    net, x = small_mlp(), torch.randn(10, 6)
    target = torch.zeros(10, 4)
    coded = CodedSmoothing(weight=1.0)
    decoded = coded_pass_by_hand(net, x).float()
    torch.testing.assert_close(coded(net, x, target=target), decoded.pow(2).mean())
    coded(net, x)
    expected = (decoded - net(x)).norm() / net(x).norm()
    torch.testing.assert_close(coded.last_fidelity["relative_error"], expected)


def test_gradients_reach_parameters_through_both_branches():
    x = torch.randn(8, 6)
    net = small_mlp()
    coded = CodedSmoothing(weight=1.0, detach_target=False)
    coded(net, x).backward()
    both = [p.grad.clone() for p in net.parameters()]

    net.zero_grad()
    CodedSmoothing(weight=1.0, detach_target=True)(net, x).backward()
    coded_only = [p.grad.clone() for p in net.parameters()]
    assert all(g.abs().sum() > 0 for g in coded_only)

    # the target branch alone: d/dtheta of mse(decoded.detach(), fn(x))
    net.zero_grad()
    with torch.no_grad():
        decoded = coded_pass_by_hand(net, x).float()
    F.mse_loss(decoded, net(x)).backward()
    target_only = [p.grad.clone() for p in net.parameters()]
    for total, a, b in zip(both, coded_only, target_only, strict=True):
        torch.testing.assert_close(total, a + b)


def test_weight_zero_costs_nothing():
    calls = []

    def fn(t):
        calls.append(t.shape[0])
        return t

    penalty = CodedSmoothing(weight=0.0)(fn, torch.randn(8, 3))
    assert calls == [] and penalty.item() == 0.0


def test_last_batch_smaller_than_the_others_gets_its_own_matrices():
    net, coded = small_mlp(), CodedSmoothing(weight=1.0)
    for size in (16, 16, 5):
        assert torch.isfinite(coded(net, torch.randn(size, 6)))


def test_batch_too_small_raises_with_the_fix_or_is_skipped(caplog):
    net, x = small_mlp(), torch.randn(1, 6)
    with pytest.raises(ValueError, match=r"batch of 1 is too small.*on_small_batch='skip'"):
        CodedSmoothing()(net, x)
    coded = CodedSmoothing(on_small_batch="skip")
    with caplog.at_level(logging.INFO, logger="ssl_coded.regularizer"):
        assert coded(net, x).item() == 0.0
    assert coded.skipped_batches == 1 and "skipped a batch of 1" in caplog.text


def test_batchnorm_running_stats_untouched_by_coded_pass():
    net, x = small_mlp(batchnorm=True), torch.randn(16, 6)
    norm = net[1]
    before = (norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone())
    CodedSmoothing(weight=1.0)(net, x, target=torch.zeros(16, 4))
    torch.testing.assert_close(norm.running_mean, before[0])
    torch.testing.assert_close(norm.running_var, before[1])
    assert norm.num_batches_tracked == before[2] and norm.momentum == 0.1
    CodedSmoothing(weight=1.0, freeze_bn_stats=False)(net, x, target=torch.zeros(16, 4))
    assert not torch.equal(norm.running_mean, before[0])


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="unknown score"):
        CodedSmoothing(score="l1")
    with pytest.raises(ValueError, match="unknown on_small_batch"):
        CodedSmoothing(on_small_batch="pad")
    with pytest.raises(ValueError, match="differ in shape"):
        CodedSmoothing()(small_mlp(), torch.randn(4, 6), target=torch.zeros(4, 5))


def test_cosine_score_on_one_dimensional_outputs():
    x = torch.randn(8, 3)
    penalty = CodedSmoothing(score="cosine")(lambda t: t.sum(1), x)
    assert torch.isfinite(penalty)
