import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import nn

from ssl_coded.training.mixing import (
    check_layers,
    imix_contrastive_loss,
    imix_partner_loss,
    imix_regression_loss,
    manifold_mixup_loss,
)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def draws(seed: int, layers: int, n: int, alpha: float) -> tuple[int, float, torch.Tensor]:
    """The layer, weight and permutation manifold_mixup_loss draws after torch.manual_seed(seed), in its order."""
    torch.manual_seed(seed)
    layer = int(torch.randint(layers, ()))
    weight = float(torch.distributions.Beta(alpha, alpha).sample())
    return layer, weight, torch.randperm(n)


def by_hand(net: nn.Sequential, x, labels, split: int, weight: float, perm) -> torch.Tensor:
    """Mixup at the output of module `split - 1` (split 0: the input), computed by running the halves apart."""
    hidden = net[:split](x)
    logits = net[split:](weight * hidden + (1 - weight) * hidden[perm])
    return weight * F.cross_entropy(logits, labels) + (1 - weight) * F.cross_entropy(logits, labels[perm])


@pytest.mark.parametrize("seed", range(6))
def test_manifold_mixup_mixes_at_the_drawn_layer(seed):
    net = small_net()
    x, labels = torch.randn(10, 6), torch.randint(3, (10,))
    layers = ["input", "1", "3"]  # the input, after the first and after the second hidden activation
    layer, weight, perm = draws(seed, len(layers), len(x), 2.0)
    torch.manual_seed(seed)
    loss = manifold_mixup_loss(net, x, labels, layers, alpha=2.0)
    expected = by_hand(net, x, labels, {0: 0, 1: 2, 2: 4}[layer], weight, perm)
    assert torch.allclose(loss, expected, atol=1e-6)


def test_the_mixing_hook_is_gone_after_the_step_even_if_the_forward_fails():
    net = small_net()
    x = torch.randn(4, 6)
    before = net(x)
    manifold_mixup_loss(net, x, torch.zeros(4, dtype=torch.long), ["1"], alpha=1.0)
    assert torch.equal(net(x), before)
    with pytest.raises(IndexError):  # labels out of range: cross_entropy fails after the forward
        manifold_mixup_loss(net, x, torch.full((4,), 7), ["1"], alpha=1.0)
    assert torch.equal(net(x), before) and not net[1]._forward_hooks


def test_gradients_flow_through_both_mixed_halves():
    net = small_net()
    x = torch.randn(8, 6, requires_grad=True)
    manifold_mixup_loss(net, x, torch.randint(3, (8,)), ["3"], alpha=1.0).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_unknown_or_no_layers_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"\['features.9'\] are not submodules"):
        check_layers(small_net(), ["input", "features.9"])
    with pytest.raises(ValueError, match="is empty"):
        check_layers(small_net(), [])


def test_imix_contrastive_loss_is_the_soft_cross_entropy_of_a_loop():
    torch.manual_seed(1)
    mixed, other = torch.randn(5, 4), torch.randn(5, 4)
    perm, weight, temperature = torch.tensor([2, 0, 4, 1, 3]), 0.3, 0.5
    total = 0.0
    for i in range(5):
        scores = [F.cosine_similarity(mixed[i], other[j], dim=0).item() / temperature for j in range(5)]
        log_norm = math.log(sum(math.exp(s) for s in scores))
        total -= weight * (scores[i] - log_norm) + (1 - weight) * (scores[int(perm[i])] - log_norm)
    assert math.isclose(imix_contrastive_loss(mixed, other, weight, perm, temperature).item(), total / 5, rel_tol=1e-5)


def test_imix_contrastive_loss_of_one_instance_is_lightlys_moco_loss():
    # i-Mix's MoCo form adds the batch's other keys to MoCo's negatives; with one instance there are none
    torch.manual_seed(5)
    query, key, queue = torch.randn(1, 4), torch.randn(1, 4), F.normalize(torch.randn(10, 4), dim=1)
    moco = NTXentLoss(temperature=0.2, memory_bank_size=(10, 4))
    moco.memory_bank.bank.copy_(queue)  # lightly keeps (size, dim)
    expected = moco(query, key)
    torch.testing.assert_close(
        imix_contrastive_loss(query, key, 1.0, torch.zeros(1, dtype=torch.long), 0.2, queue), expected
    )


def test_imix_contrastive_loss_with_a_queue_is_the_soft_cross_entropy_of_a_loop():
    torch.manual_seed(6)
    mixed, keys, queue = torch.randn(4, 3), torch.randn(4, 3), torch.randn(5, 3)
    perm, weight, temperature = torch.tensor([3, 2, 1, 0]), 0.6, 0.5
    candidates = [*keys, *queue]
    total = 0.0
    for i in range(4):
        scores = [F.cosine_similarity(mixed[i], c, dim=0).item() / temperature for c in candidates]
        log_norm = math.log(sum(math.exp(s) for s in scores))
        total -= weight * (scores[i] - log_norm) + (1 - weight) * (scores[int(perm[i])] - log_norm)
    loss = imix_contrastive_loss(mixed, keys, weight, perm, temperature, negatives=queue)
    assert math.isclose(loss.item(), total / 4, rel_tol=1e-5)


def test_imix_partner_loss_weighs_the_loss_against_each_partner():
    torch.manual_seed(7)
    mixed, other = torch.randn(4, 3), torch.randn(4, 3)
    perm, weight = torch.tensor([1, 2, 3, 0]), 0.25
    squared = lambda a, b: ((a - b) ** 2).sum() / len(a)  # noqa: E731
    expected = (
        sum(
            weight * ((mixed[i] - other[i]) ** 2).sum() + (1 - weight) * ((mixed[i] - other[int(perm[i])]) ** 2).sum()
            for i in range(4)
        )
        / 4
    )
    torch.testing.assert_close(imix_partner_loss(squared, mixed, other, weight, perm), expected)


def test_imix_regression_loss_targets_the_mixture_of_normalised_targets():
    torch.manual_seed(2)
    prediction, target = torch.randn(4, 3), torch.randn(4, 3) * torch.tensor([[1.0], [5.0], [0.2], [3.0]])
    perm, weight = torch.tensor([1, 0, 3, 2]), 0.7
    unit = [t / t.norm() for t in target]
    expected = -sum(
        F.cosine_similarity(prediction[i], weight * unit[i] + (1 - weight) * unit[int(perm[i])], dim=0).item()
        for i in range(4)
    )
    assert math.isclose(imix_regression_loss(prediction, target, weight, perm).item(), expected / 4, rel_tol=1e-5)


def test_a_layer_that_does_not_run_once_per_forward_is_refused():
    net = small_net()
    twice = nn.Sequential(net[0], net[1], net[1], net[4])  # the activation runs twice
    with pytest.raises(ValueError, match=r"'1' ran 2 times in one forward"):
        manifold_mixup_loss(twice, torch.randn(4, 6), torch.zeros(4, dtype=torch.long), ["1"], alpha=1.0)
    unused = nn.ModuleDict({"net": net, "spare": nn.Linear(2, 2)})
    unused.forward = net.forward  # "spare" never runs
    with pytest.raises(ValueError, match="ran 0 times"):
        manifold_mixup_loss(unused, torch.randn(4, 6), torch.zeros(4, dtype=torch.long), ["spare"], alpha=1.0)
