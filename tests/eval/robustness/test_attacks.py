import pytest
import torch
from ssl_coded.eval.robustness.attacks import fgsm, margin, pgd, project, square_attack
from torch import nn


def linear_model(dim=12, classes=3, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(dim, classes))
    return model


def images(n=16, seed=1):
    return torch.rand(n, 1, 3, 4, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "eot", "square"])
def test_attacks_stay_in_the_eps_ball_and_the_pixel_range(attack):
    model, x = linear_model(), images()
    y = model(x).argmax(1)
    eps = 0.1
    runs = {
        "fgsm": lambda: fgsm(model, x, y, eps),
        "pgd": lambda: pgd(model, x, y, eps, steps=5),
        "eot": lambda: pgd(model, x, y, eps, steps=3, eot_samples=3),
        "square": lambda: square_attack(model, x, y, eps, queries=30),
    }
    x_adv = runs[attack]()
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, x)


def test_pgd_on_a_linear_model_finds_the_worst_case_direction():
    # two classes, logit gap w.x: the worst L-inf perturbation is -eps * sign(w) (for label 0 vs 1);
    # pixels kept away from the bounds so the projection never clips
    weight = torch.tensor([[0.5, -2.0, 1.0, 3.0, -0.7, 0.2], [0.0] * 6])
    model = nn.Linear(6, 2, bias=False)
    model.weight.data = weight
    x = torch.full((4, 6), 0.5)
    y = torch.zeros(4, dtype=torch.long)
    eps = 0.05
    x_adv = pgd(model, x, y, eps, steps=20, random_start=True, generator=torch.Generator().manual_seed(0))
    expected = x - eps * (weight[0] - weight[1]).sign()
    assert torch.allclose(x_adv, expected.expand_as(x_adv), atol=1e-6)
    assert torch.allclose(fgsm(model, x, y, eps), expected.expand_as(x_adv), atol=1e-6)


def test_eot_with_one_sample_equals_plain_pgd_on_one_draw():
    # a randomized nonlinear model (its gradient depends on the noise) whose randomness comes from a
    # generator reseeded identically for both runs
    torch.manual_seed(0)
    base = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))
    x = images()
    y = base(x).argmax(1)

    def randomized(generator):
        def model(z):
            noise = torch.randn(z.shape, generator=generator)
            return base(z + 0.5 * noise)

        return model

    def attack(samples):
        model = randomized(torch.Generator().manual_seed(3))
        return pgd(model, x, y, 0.1, steps=4, eot_samples=samples, generator=torch.Generator().manual_seed(0))

    # plain PGD written out by hand: one fresh draw of the model per step
    draws, start = torch.Generator().manual_seed(3), torch.Generator().manual_seed(0)
    x_adv = project(x + 0.1 * (2 * torch.rand(x.shape, generator=start) - 1), x, 0.1)
    for _ in range(4):
        z = x_adv.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(
            base(z + 0.5 * torch.randn(z.shape, generator=draws)), y, reduction="sum"
        )
        (gradient,) = torch.autograd.grad(loss, z)
        x_adv = project(x_adv + 0.025 * gradient.sign(), x, 0.1)
    assert torch.equal(attack(1), x_adv)
    assert not torch.equal(attack(1), attack(2))  # S=2 averages two draws per step: a different path


def test_attacks_beat_random_noise_and_square_lowers_the_margin():
    model, x = linear_model(seed=4), images(64, seed=5)
    y = model(x).argmax(1)
    eps = 0.3
    noise = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(6)) < 0.5, -eps, eps)

    def accuracy(z):
        return float((model(z).argmax(1) == y).float().mean())

    with torch.no_grad():
        noisy = accuracy(project(x + noise, x, eps))
        adversarial = pgd(model, x, y, eps, steps=10)
        assert accuracy(adversarial) < noisy and accuracy(adversarial) < 1.0

        def no_gradient_model(z):  # the search only reads outputs
            return model(z.detach())

        before = margin(model(x), y)
        found = square_attack(no_gradient_model, x, y, eps, queries=100)
        after = margin(model(found), y)
    assert (after < before).float().mean() > 0.5  # the margin fell for most images
    assert accuracy(found) < noisy


def test_project_and_margin():
    x = torch.tensor([[0.0, 0.5, 1.0]])
    assert torch.equal(project(torch.tensor([[-0.3, 0.9, 1.2]]), x, 0.2), torch.tensor([[0.0, 0.7, 1.0]]))
    assert torch.allclose(margin(torch.tensor([[2.0, 5.0, 1.0]]), torch.tensor([1])), torch.tensor([3.0]))
    assert torch.allclose(margin(torch.tensor([[2.0, 5.0, 1.0]]), torch.tensor([2])), torch.tensor([-4.0]))
    with pytest.raises(ValueError, match="steps and eot_samples must be >= 1"):
        pgd(nn.Identity(), x, torch.tensor([0]), 0.1, steps=0)
