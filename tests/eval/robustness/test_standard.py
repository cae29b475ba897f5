import pytest
import torch
from ssl_coded.eval.robustness.standard import AsModule, highest_loss, standard_attacks
from torch import nn

from ssl_coded.extras import MissingExtraError


def linear_problem(n=64, classes=4, dim=10, seed=0):
    """A linear classifier and points well inside the pixel range, where the L-inf worst case is known."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(dim, classes)
    model.weight.data = torch.randn(classes, dim, generator=generator)
    model.bias.data = torch.zeros(classes)
    x = 0.3 + 0.4 * torch.rand(n, 1, 1, dim, generator=generator)
    return (lambda images: model(images.flatten(1))), x, model.weight.data


def worst_case_correct(weight, logits, y, eps):
    """Closed form for a linear model away from the pixel bounds: image i survives every L-inf perturbation
    of radius eps iff, against every other class j, logit_y - logit_j > eps * ||w_y - w_j||_1."""
    survives = []
    for i, label in enumerate(y.tolist()):
        gaps = [
            logits[i, label] - logits[i, j] - eps * (weight[label] - weight[j]).abs().sum()
            for j in range(weight.shape[0])
            if j != label
        ]
        survives.append(min(gaps) > 0)
    return torch.tensor(survives)


@pytest.mark.parametrize("eps", [0.02, 0.05])
def test_apgd_reaches_the_closed_form_worst_case_of_a_linear_model_and_nothing_beats_it(eps):
    model, x, weight = linear_problem()
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    truth = worst_case_correct(weight, logits, y, eps)
    assert 0.1 < truth.float().mean() < 0.9  # the eps grid cuts through the margins
    ok = standard_attacks(model, x, y, eps, steps=20, eot_samples=1, square_queries=200, seed=0)
    assert set(ok) == {"apgd-ce", "apgd-dlr", "square-ta"}
    for name, correct in ok.items():  # no attack may break an image that is provably robust
        assert not (truth & ~correct).any(), f"{name} broke an image that is provably robust"
    # the DLR loss is a margin, so on a linear model APGD-DLR finds every image the closed form can break
    # (cross-entropy spreads its gradient over the classes and may miss a few)
    assert torch.equal(ok["apgd-dlr"], truth)


def test_the_eot_attacks_run_on_a_randomized_model_and_the_global_generator_is_left_alone():
    model, x, _ = linear_problem(n=16, dim=6)

    def noisy(images):  # a randomized defence: every call draws noise from the global generator
        return model(images + 0.01 * torch.randn_like(images))

    y = model(x).argmax(1)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = standard_attacks(noisy, x, y, 0.05, steps=3, eot_samples=2, square_queries=5, seed=7, randomized=True)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's generator state is untouched
    assert set(first) == {"eot-pgd-ta", "apgd-eot", "apgd-dlr-eot", "square-ta"}  # what the undefended model faces
    again = standard_attacks(noisy, x, y, 0.05, steps=3, eot_samples=2, square_queries=5, seed=7, randomized=True)
    assert all(torch.equal(first[name], again[name]) for name in first)  # a seed repeats the attack


def test_two_classes_skip_dlr_and_a_missing_torchattacks_names_the_extra(monkeypatch):
    model, x, _ = linear_problem(n=8, classes=2, dim=6)
    y = model(x).argmax(1)
    assert set(standard_attacks(model, x, y, 0.05, 2, 1, 5, seed=0)) == {"apgd-ce", "square-ta"}
    monkeypatch.setitem(__import__("sys").modules, "torchattacks", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'ssl-coded\[attack\]'"):
        standard_attacks(model, x, y, 0.05, 2, 1, 5, seed=0)


def test_apgd_against_a_randomized_model_perturbs_every_image():
    # torchattacks' APGD returns the clean image wherever its final check, one draw of a randomized
    # model, says the image was not fooled; the harness takes each image's highest-loss point instead
    import torchattacks

    model, x, _ = linear_problem(n=16, dim=6)
    y = model(x).argmax(1)

    def noisy(images):
        return model(images + 0.05 * torch.randn_like(images))

    torch.manual_seed(0)
    apgd = torchattacks.APGD(AsModule(noisy, x.device), norm="Linf", eps=0.05, steps=3, eot_iter=2)
    x_adv = highest_loss(apgd)(x, y)
    moved = (x_adv - x).flatten(1).abs().amax(1)
    assert (moved > 0).all() and (moved <= 0.05 + 1e-6).all()
