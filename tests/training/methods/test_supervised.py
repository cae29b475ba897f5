import pytest
import torch
import torch.nn.functional as F

from ssl_coded.data import load_splits
from ssl_coded.training.methods import build_method
from ssl_coded.training.recipes import load_config

QUICK = ["trainer.batch_size=32", "data.max_train=200", "data.max_test=100"]


def method_and_batch(*overrides):
    config = load_config("supervised-digits", [*QUICK, *overrides])
    splits = load_splits(config.data)
    torch.manual_seed(0)
    method = build_method(config, splits)
    method.setup("fit")  # where Lightning attaches the coded-smoothing hook
    images, labels = splits.train.images[:32], splits.train.labels[:32]
    return method, images, labels


def step_loss(method, images, labels, seed=1):
    torch.manual_seed(seed)  # the same augmentation (and mixing) draws for every method
    return method.training_step((images, labels), 0)


def test_coded_loss_at_mu_zero_is_plain_cross_entropy():
    erm, images, labels = method_and_batch("method.regularizer=erm")
    coded, _, _ = method_and_batch("method.regularizer=coded", "coded.weight=0.0")
    assert torch.equal(step_loss(erm, images, labels), step_loss(coded, images, labels))


def test_coded_loss_is_cross_entropy_plus_mu_times_decoded_cross_entropy():
    # wiring: how the loss is composed (the coded pass itself is held against tests/oracles.py in
    # tests/core; this network's batch norm makes a pass per coded sample differ by design)
    method, images, labels = method_and_batch("method.regularizer=coded", "coded.weight=0.7")
    loss = step_loss(method, images, labels)
    regularizer = method.coded_hook.regularizer
    method.coded_hook.remove()  # the expectation runs the model by hand
    torch.manual_seed(1)
    x = method.view(method.to_input(images))
    logits = method(x)
    decoded = regularizer.scheme.coded_forward(method, x)
    expected = F.cross_entropy(logits, labels) + 0.7 * F.cross_entropy(decoded, labels)
    torch.testing.assert_close(loss, expected)
    assert 0.0 <= float(regularizer.last_fidelity["decoded_accuracy"]) <= 1.0


def test_alternative_reading_scores_decoded_logits_against_the_models_own():
    method, images, labels = method_and_batch("method.regularizer=coded", "coded.target=outputs", "coded.weight=2.0")
    loss = step_loss(method, images, labels)
    regularizer = method.coded_hook.regularizer
    method.coded_hook.remove()
    torch.manual_seed(1)
    x = method.view(method.to_input(images))
    logits = method(x)
    decoded = regularizer.scheme.coded_forward(method, x)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels) + 2.0 * F.mse_loss(decoded, logits.detach()))


def test_the_embedding_placement_codes_the_head_alone_and_a_classifier_has_no_online_probe():
    method, images, labels = method_and_batch("method.regularizer=coded", "coded.placement=embedding")
    loss = step_loss(method, images, labels)
    regularizer = method.coded_hook.regularizer
    method.coded_hook.remove()
    torch.manual_seed(1)
    features = method.backbone(method.view(method.to_input(images)))
    decoded = regularizer.scheme.coded_forward(method.classifier, features)
    expected = F.cross_entropy(method.classifier(features), labels) + F.cross_entropy(decoded, labels) * 0.5
    torch.testing.assert_close(loss, expected.to(loss.dtype), rtol=1e-5, atol=1e-5)
    assert not any(name.startswith("online_classifier") for name in method.state_dict())
    trained = {id(p) for p in method.parameters()}
    assert {id(p) for group in method.parameter_groups() for p in group["params"]} == trained  # all, once


def test_mixup_mixes_and_reduces_to_erm_without_mixing():
    erm, images, labels = method_and_batch("method.regularizer=erm")
    unmixed, _, _ = method_and_batch("method.regularizer=mixup", "method.mixup_alpha=0.0")
    mixed, _, _ = method_and_batch("method.regularizer=mixup", "method.mixup_alpha=1.0")
    assert torch.equal(step_loss(erm, images, labels), step_loss(unmixed, images, labels))
    assert not torch.equal(step_loss(erm, images, labels), step_loss(mixed, images, labels))


def test_classify_takes_unit_pixels_and_matches_the_normalised_forward():
    method, images, _ = method_and_batch()
    method.eval()
    torch.testing.assert_close(method.classify(images.float() / 255), method(method.to_input(images)))


def test_coded_enabled_on_a_supervised_recipe_names_the_right_key():
    from ssl_coded.training.config import ConfigError

    with pytest.raises(ConfigError, match=r"method\.regularizer=coded"):
        load_config("supervised-digits", ["coded.enabled=true"])


def test_a_placement_that_names_no_submodule_is_refused():
    with pytest.raises(ValueError, match=r"coded\.placement='backbone\.block9' is neither a placement"):
        method_and_batch("method.regularizer=coded", "coded.placement=backbone.block9")


def test_a_block_placement_adds_the_hooks_penalty_on_that_block_alone():
    erm, images, labels = method_and_batch("method.regularizer=erm")
    coded, _, _ = method_and_batch("method.regularizer=coded", "coded.placement=backbone.features.3")
    coded.setup("fit")
    erm.setup("fit")
    logged = {}
    coded.log = lambda name, value, **kwargs: logged.setdefault(name, value)
    erm.log = lambda *args, **kwargs: None
    with_penalty, plain = step_loss(coded, images, labels), step_loss(erm, images, labels)
    assert float(logged["train_coded_penalty"].detach()) > 0
    torch.testing.assert_close(with_penalty - plain, logged["train_coded_penalty"])
    block = dict(coded.named_parameters())
    coded.zero_grad()
    logged.clear()
    step_loss(coded, images, labels)
    logged["train_coded_penalty"].backward()  # the penalty's gradient: the block and what feeds it, never the head
    assert block["backbone.features.3.0.weight"].grad.abs().sum() > 0
    assert block["classifier.weight"].grad is None or block["classifier.weight"].grad.abs().sum() == 0


def test_manifold_mixup_at_the_input_alone_is_mixup_with_the_same_draws():
    method, images, labels = method_and_batch(
        "method.regularizer=manifold_mixup", "method.mixup_layers=[input]", "method.mixup_alpha=0.4"
    )
    loss = step_loss(method, images, labels)
    torch.manual_seed(1)
    x = method.view(method.to_input(images))
    torch.randint(1, ())  # the layer draw
    weight = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(len(x))
    logits = method(weight * x + (1 - weight) * x[perm])
    expected = weight * F.cross_entropy(logits, labels) + (1 - weight) * F.cross_entropy(logits, labels[perm])
    torch.testing.assert_close(loss, expected)


def test_manifold_mixup_names_a_missing_layer():
    with pytest.raises(ValueError, match=r"backbone\.features\.9"):
        method_and_batch("method.regularizer=manifold_mixup", "method.mixup_layers=[backbone.features.9]")


def test_noise_is_added_in_pixel_units():
    method, images, labels = method_and_batch("method.regularizer=noise", "method.noise_std=0.2")
    seen = []
    method.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    step_loss(method, images, labels)
    torch.manual_seed(1)
    clean = method.view(method.to_input(images))
    pixel_noise = (seen[0] - clean) * method.std  # back to [0, 1] pixel units
    assert abs(float(pixel_noise.std()) - 0.2) < 0.01
    erm, _, _ = method_and_batch("method.regularizer=erm")
    silent, _, _ = method_and_batch("method.regularizer=noise", "method.noise_std=0.0")
    assert torch.equal(step_loss(erm, images, labels), step_loss(silent, images, labels))


def test_without_augmentation_a_view_is_the_image_itself():
    method, images, _ = method_and_batch("augment.enabled=false")
    x = method.to_input(images)
    assert torch.equal(method.view(x), x)


def test_the_summary_reports_train_and_test_accuracy_and_their_gap():
    config = load_config("supervised-digits", QUICK)
    splits = load_splits(config.data)
    method = build_method(config, splits)
    metrics = method.test_metrics(splits)
    method.eval()
    with torch.no_grad():
        for split, key in ((splits.train, "train_accuracy"), (splits.test, "test_accuracy")):
            hits = [int(method(method.to_input(image[None])).argmax()) == int(label) for image, label in split]
            assert metrics[key] == pytest.approx(sum(hits) / len(hits))
    assert metrics["generalization_gap"] == pytest.approx(metrics["train_accuracy"] - metrics["test_accuracy"])


def test_compare_refuses_an_unknown_regularizer_before_training(tmp_path, capsys):
    from ssl_coded.cli import main

    args = ["train", "supervised-digits", f"out_dir={tmp_path}", "--compare", "--regularizers", "erm,cutout"]
    assert main(args) == 2
    assert "['cutout'] are not regularizers; choose from erm, mixup, manifold_mixup, noise, coded" in (
        capsys.readouterr().err
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # trains
def test_a_classifier_checkpoint_with_the_old_online_probe_still_loads_and_resumes(tmp_path):
    """Before classifiers stood on their own base they carried lightly's online probe: its weights in the
    state_dict and its parameters in a third optimizer group. Such a checkpoint is made here by adding both
    to a new one; it must evaluate and resume."""
    from ssl_coded.cli import main
    from ssl_coded.training.checkpoints import load_checkpoint_file, load_trained

    quick = ["trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128", f"out_dir={tmp_path}"]
    assert main(["train", "supervised-digits", "trainer.max_epochs=1", *quick, "name=old"]) == 0
    last = tmp_path / "old" / "checkpoints" / "last.ckpt"
    for path in (last, last.with_name("best.ckpt")):
        checkpoint = load_checkpoint_file(path)
        dim = checkpoint["state_dict"]["classifier.weight"].shape[1]
        checkpoint["state_dict"] |= {
            "online_classifier.classification_head.weight": torch.randn(10, dim),
            "online_classifier.classification_head.bias": torch.zeros(10),
        }
        for optimizer in checkpoint["optimizer_states"]:
            free = 1 + max(i for group in optimizer["param_groups"] for i in group["params"])
            optimizer["param_groups"].append({**optimizer["param_groups"][-1], "params": [free, free + 1]})
            optimizer["state"] |= {i: {"momentum_buffer": torch.zeros(1)} for i in (free, free + 1)}
        torch.save(checkpoint, path)
    (tmp_path / "old" / "summary.json").unlink()  # not finished: the resume continues it
    assert load_trained(tmp_path / "old").method.classifier.weight.shape == (10, dim)
    assert main(["train", "supervised-digits", "trainer.max_epochs=2", *quick, "name=old", "--resume"]) == 0
    resumed = load_checkpoint_file(last)
    assert resumed["epoch"] == 1 and not any(k.startswith("online_classifier") for k in resumed["state_dict"])
