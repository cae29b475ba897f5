import pytest
import torch
from torch import nn

from ssl_coded import CodingScheme, randomized_coded_predict
from tests.oracles import coded_pass_by_hand


@pytest.mark.parametrize("kind", ["spline", "berrut"])
def test_identity_network_returns_the_batch_in_order(kind):
    # interpolating coders with many coded points decode the identity almost exactly (D @ E -> I),
    # so a wrong un-permutation would put rows in the wrong places, far beyond the tolerance
    x = torch.randn(9, 3, dtype=torch.float64)
    scheme = CodingScheme(kind=kind, coded_ratio=64.0, lambda_enc=0.0, lambda_dec=0.0)
    out = randomized_coded_predict(lambda t: t, x, scheme, num_draws=3, generator=0)
    torch.testing.assert_close(out, x, atol=2e-2, rtol=0)
    nearest = torch.cdist(out, x).argmin(dim=1)
    assert torch.equal(nearest, torch.arange(9))


def test_permutation_changes_the_prediction_and_unpermutes_correctly():
    # a nonlinear net: the decoded rows depend on which alpha each sample got
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2)).double()
    x = torch.randn(16, 4, dtype=torch.float64)
    scheme = CodingScheme(kind="berrut", coded_ratio=4.0)
    a = randomized_coded_predict(net, x, scheme, generator=1)
    b = randomized_coded_predict(net, x, scheme, generator=2)
    assert not torch.allclose(a, b)
    # manual reference for seed 1
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    decoded = coded_pass_by_hand(net, x[perm], "berrut", coded_ratio=4.0)
    reference = torch.empty_like(decoded)
    reference[perm] = decoded
    torch.testing.assert_close(a, reference)


def test_reproducible_with_a_seed_and_averages_draws():
    net = nn.Linear(4, 3)
    x = torch.randn(10, 4)
    scheme = CodingScheme()
    one = randomized_coded_predict(net, x, scheme, num_draws=4, generator=7)
    two = randomized_coded_predict(net, x, scheme, num_draws=4, generator=7)
    torch.testing.assert_close(one, two)
    generator = torch.Generator().manual_seed(7)
    draws = [randomized_coded_predict(net, x, scheme, generator=generator) for _ in range(4)]
    torch.testing.assert_close(one, torch.stack(draws).mean(0))


def test_gradients_flow_to_the_input_for_attacks():
    x = torch.randn(8, 4, requires_grad=True)
    randomized_coded_predict(nn.Linear(4, 2), x, CodingScheme(), generator=0).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_single_input_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"at least 2.*predict several inputs together"):
        randomized_coded_predict(nn.Identity(), torch.randn(1, 3), CodingScheme())


def test_classifier_pads_a_single_image_with_the_reference_batch_and_returns_its_row():
    from ssl_coded.inference import RandomizedCodedClassifier

    x = torch.randn(1, 3, dtype=torch.float64)
    reference = torch.randn(7, 3, dtype=torch.float64)
    scheme = CodingScheme(kind="berrut", coded_ratio=64.0)
    defended = RandomizedCodedClassifier(lambda t: t, scheme, group_size=8, reference=reference, generator=0)
    out = defended(x)
    assert out.shape == (1, 3)
    torch.testing.assert_close(out, x, atol=2e-2, rtol=0)
    # the same image in the same seeded context gives the same answer
    again = RandomizedCodedClassifier(lambda t: t, scheme, group_size=8, reference=reference, generator=0)(x)
    torch.testing.assert_close(out, again)


def test_classifier_codes_groups_and_refuses_a_lone_image_without_reference():
    from ssl_coded.inference import RandomizedCodedClassifier

    x = torch.randn(22, 3, dtype=torch.float64)
    scheme = CodingScheme(kind="berrut", coded_ratio=64.0)
    out = RandomizedCodedClassifier(lambda t: t, scheme, group_size=10, generator=0)(x)
    assert torch.equal(torch.cdist(out, x).argmin(dim=1), torch.arange(22))
    with pytest.raises(ValueError, match="at least 2"):
        RandomizedCodedClassifier(lambda t: t, scheme, group_size=10)(x[:1])
    with pytest.raises(ValueError, match="padding needs 9"):
        RandomizedCodedClassifier(lambda t: t, scheme, group_size=10, reference=x[:3])


def test_rci_wraps_an_ssl_encoder_with_a_linear_probe():
    # any composition is a classifier to RCI: a (frozen) encoder followed by a probe
    from ssl_coded.inference import RandomizedCodedClassifier
    from ssl_coded.training.backbones import SmallCNN

    torch.manual_seed(0)
    encoder, probe = SmallCNN(1, width=8).eval(), nn.Linear(32, 10)
    images = torch.rand(40, 1, 8, 8)

    def classify(x):
        return probe(encoder(x))

    with torch.no_grad():
        direct = classify(images)
        defended = RandomizedCodedClassifier(classify, CodingScheme("berrut", coded_ratio=8.0), 16, generator=0)
        logits = defended(images)
    assert logits.shape == direct.shape
    relative = (logits - direct).norm() / direct.norm()
    assert 0 < relative < 0.2  # randomized, yet close to the encoder + probe's own logits
