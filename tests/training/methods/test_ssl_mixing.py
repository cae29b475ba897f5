import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.loss.swav_loss import sinkhorn

from ssl_coded.data import load_splits
from ssl_coded.training.config import ConfigError
from ssl_coded.training.methods import build_method
from ssl_coded.training.mixing import imix_contrastive_loss, imix_regression_loss
from ssl_coded.training.recipes import load_config

QUICK = ["trainer.batch_size=16", "data.max_train=64", "data.max_test=32"]


def simclr(*overrides):
    config = load_config("simclr-digits", [*QUICK, *overrides])
    splits = load_splits(config.data)
    torch.manual_seed(0)
    return build_method(config, splits), splits.train.images[:16]


def test_simclr_imix_adds_the_weighted_soft_contrastive_loss_of_a_mixed_first_view():
    method, images = simclr("method.mixing=imix", "method.mixing_weight=0.5", "method.mixing_alpha=1.0")
    method.log = lambda *args, **kwargs: None  # no trainer attached
    x = method.to_input(images)
    torch.manual_seed(3)
    loss, _ = method.ssl_step(x)
    torch.manual_seed(3)  # the same draws, in the same order, by hand
    view0, view1 = method.view(x), method.view(x)
    z0, z1 = method(view0), method(view1)
    weight = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(len(x))
    mixed = method(weight * view0 + (1 - weight) * view0[perm])
    ntxent = NTXentLoss(temperature=method.config.method.temperature)(z0, z1)
    expected = ntxent + 0.5 * imix_contrastive_loss(mixed, z1, weight, perm, method.config.method.temperature)
    torch.testing.assert_close(loss, expected)


def test_byol_imix_regresses_the_mixed_targets():
    config = load_config("byol-digits", [*QUICK, "method.mixing=imix", "method.mixing_weight=2.0"])
    splits = load_splits(config.data)
    torch.manual_seed(0)
    method = build_method(config, splits)
    method.log = lambda *args, **kwargs: None
    plain = build_method(load_config("byol-digits", QUICK), splits)
    plain.load_state_dict(method.state_dict())
    schedule = type("Trainer", (), {"estimated_stepping_batches": 10, "global_step": 0})()  # the momentum schedule
    method._trainer = plain._trainer = schedule
    x = method.to_input(splits.train.images[:16])
    torch.manual_seed(4)
    with_imix, _ = method.ssl_step(x)
    torch.manual_seed(4)
    without, _ = plain.ssl_step(x)
    torch.manual_seed(4)  # the same draws by hand: two views, then the mixing
    view0, view1 = plain.view(x), plain.view(x)
    weight = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(len(x))
    predicted = method(weight * view0 + (1 - weight) * view0[perm])
    extra = imix_regression_loss(predicted, method.forward_momentum(view1), weight, perm)
    torch.testing.assert_close(with_imix - without, 2.0 * extra, atol=1e-5, rtol=1e-4)


def paired(recipe, *overrides):
    """A method with the overrides and a plain copy of it (same weights), both on the momentum schedule."""
    splits = load_splits(load_config(recipe, QUICK).data)
    torch.manual_seed(0)
    method = build_method(load_config(recipe, [*QUICK, *overrides]), splits)
    plain = build_method(load_config(recipe, QUICK), splits)
    plain.load_state_dict(method.state_dict())
    method.log = lambda *args, **kwargs: None
    schedule = type("Trainer", (), {"estimated_stepping_batches": 10, "global_step": 0, "current_epoch": 0})()
    method._trainer = plain._trainer = schedule
    return method, plain, method.to_input(splits.train.images[:16])


def test_moco_imix_finds_both_instances_among_the_keys_and_the_queue():
    method, plain, x = paired("moco-digits", "method.mixing=imix", "method.mixing_weight=0.5")
    queue = torch.nn.functional.normalize(torch.randn(method.config.method.memory_bank_size, 64), dim=1)
    for model in (method, plain):
        model.criterion.memory_bank.bank.copy_(queue)  # a full queue: the negatives i-Mix must see
    torch.manual_seed(4)
    with_imix, _ = method.ssl_step(x)
    torch.manual_seed(4)
    without, _ = plain.ssl_step(x)
    torch.manual_seed(4)  # the same draws by hand: query and key views, then the mixing
    query_view, key_view = plain.view(x), plain.view(x)
    weight = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(len(x))
    mixed = method(weight * query_view + (1 - weight) * query_view[perm])
    key = method.forward_momentum(key_view)
    extra = imix_contrastive_loss(mixed, key, weight, perm, method.config.method.temperature, negatives=queue)
    torch.testing.assert_close(with_imix - without, 0.5 * extra, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("recipe", ["vicreg-digits", "barlowtwins-digits"])
def test_two_view_imix_adds_the_loss_against_both_partners(recipe):
    method, plain, x = paired(recipe, "method.mixing=imix")
    torch.manual_seed(4)
    with_imix, _ = method.ssl_step(x)
    torch.manual_seed(4)
    without, _ = plain.ssl_step(x)
    torch.manual_seed(4)
    view0, view1 = plain.view(x), plain.view(x)
    weight = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(len(x))
    mixed, z1 = method(weight * view0 + (1 - weight) * view0[perm]), method(view1)
    extra = weight * method.criterion(mixed, z1) + (1 - weight) * method.criterion(mixed, z1[perm])
    torch.testing.assert_close(with_imix - without, extra, atol=1e-4, rtol=1e-4)


def imix_draws(plain, x):
    """A step's draws after torch.manual_seed(4), in its order: two views, then the mixing."""
    torch.manual_seed(4)
    view0, view1 = plain.view(x), plain.view(x)
    weight = float(torch.distributions.Beta(1.0, 1.0).sample())
    return view0, view1, weight, torch.randperm(len(x))


def imix_difference(method, plain, x):
    torch.manual_seed(4)
    with_imix, _ = method.ssl_step(x)
    torch.manual_seed(4)
    without, _ = plain.ssl_step(x)
    return with_imix - without


def test_simsiam_imix_predicts_both_instances_projections():
    method, plain, x = paired("simsiam-digits", "method.mixing=imix")
    difference = imix_difference(method, plain, x)
    view0, view1, weight, perm = imix_draws(plain, x)
    predicted = method(weight * view0 + (1 - weight) * view0[perm])
    z1 = method.projection_head(method.backbone(view1))
    cosine = lambda j: F.cosine_similarity(predicted, z1[j], dim=1).mean()  # noqa: E731
    expected = -(weight * cosine(torch.arange(len(x))) + (1 - weight) * cosine(perm))
    torch.testing.assert_close(difference, expected, atol=1e-5, rtol=1e-4)


def test_dino_imix_matches_both_instances_teacher_distributions():
    method, plain, x = paired("dino-digits", "method.mixing=imix")
    center = method.criterion.center.clone()  # before the step's loss moves it
    difference = imix_difference(method, plain, x)
    view0, view1, weight, perm = imix_draws(plain, x)
    c = method.criterion
    teacher = F.softmax((method.forward_teacher(view1) - center.reshape(1, -1)) / c.teacher_temp_schedule[0], dim=-1)
    student = F.log_softmax(method(weight * view0 + (1 - weight) * view0[perm]) / c.student_temp, dim=-1)
    expected = -(weight * (teacher * student).sum(-1) + (1 - weight) * (teacher[perm] * student).sum(-1)).mean()
    torch.testing.assert_close(difference, expected, atol=1e-5, rtol=1e-4)


def test_swav_imix_predicts_both_instances_codes():
    method, plain, x = paired("swav-digits", "method.mixing=imix")
    difference = imix_difference(method, plain, x)
    view0, view1, weight, perm = imix_draws(plain, x)
    codes = sinkhorn(method(view1).detach(), iterations=3, epsilon=0.05)
    scores = F.log_softmax(method(weight * view0 + (1 - weight) * view0[perm]) / 0.1, dim=1)
    expected = -(weight * (codes * scores).sum(1) + (1 - weight) * (codes[perm] * scores).sum(1)).mean()
    torch.testing.assert_close(difference.reshape(()), expected, atol=1e-5, rtol=1e-4)


def test_mixing_is_refused_where_it_has_no_meaning():
    with pytest.raises(
        ConfigError,
        match=r"method\.mixing is not a key of mae \(a key of simclr, byol, moco, vicreg, barlowtwins, simsiam, "
        r"dino, swav\); mae's keys: name, ",
    ):
        load_config("mae-digits", ["method.mixing=imix"])
    with pytest.raises(ConfigError, match=r"method\.mixing='cutmix' is not one of none, imix"):
        load_config("simclr-digits", ["method.mixing=cutmix"])
