import numpy as np
import pytest
import torch
from ssl_coded.eval.features import FeatureSource, cached_features

from ssl_coded.training.checkpoints import CheckpointError, load_trained

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


@pytest.mark.slow
def test_features_match_the_backbone_and_are_cached(quick_run, tmp_path, monkeypatch):
    trained = load_trained(quick_run)
    source = FeatureSource(trained.features, trained.checkpoint_hash)
    test = trained.splits.test
    features, labels = cached_features(source, test, "test", tmp_path, batch_size=64)
    with torch.no_grad():  # one image at a time, by hand: no batching, no cache
        method = trained.method
        direct = torch.cat([method.backbone(method.to_input(test.images[i : i + 1])) for i in range(len(test))])
    np.testing.assert_allclose(features, direct.numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(labels, test.labels.numpy())
    # the second call reads the cache: the encoder must not run again
    monkeypatch.setattr(source, "encode", None)
    again, _ = cached_features(source, test, "test", tmp_path)
    assert isinstance(again, np.memmap) and np.array_equal(again, features)


def test_a_plain_module_with_trainable_weights_is_an_encoder(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(12, 3)  # requires grad: extraction must run without autograd
    dataset = torch.utils.data.TensorDataset(torch.randn(10, 12), torch.arange(10))
    features, labels = cached_features(FeatureSource(model, key="linear"), dataset, "train", tmp_path, 4)
    with torch.no_grad():
        np.testing.assert_allclose(features, model(dataset.tensors[0]).numpy(), rtol=1e-6)
    assert labels.tolist() == list(range(10))


def test_any_dataset_of_image_label_pairs_works_uncached(tmp_path):
    images = torch.arange(5 * 3 * 2 * 2, dtype=torch.float32).view(5, 3, 2, 2)
    dataset = torch.utils.data.TensorDataset(images, torch.tensor([0, 1, 0, 1, 2]))
    features, labels = cached_features(FeatureSource(lambda x: x.flatten(1) * 2), dataset, "test", tmp_path, 2)
    assert np.array_equal(features, images.flatten(1).numpy() * 2) and labels.tolist() == [0, 1, 0, 1, 2]
    assert not list(tmp_path.iterdir())  # no key: nothing cached


@pytest.mark.slow
def test_a_changed_checkpoint_never_reuses_stale_features(quick_run, tmp_path):
    encoder = load_trained(quick_run)
    source = FeatureSource(encoder.features, encoder.checkpoint_hash)
    cached_features(source, encoder.splits.test, "test", tmp_path)
    checkpoint = torch.load(quick_run / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in checkpoint["state_dict"].items():
        if value.is_floating_point():
            checkpoint["state_dict"][key] = value * 1.5
    changed = tmp_path / "changed.ckpt"
    torch.save(checkpoint, changed)
    other = load_trained(changed)
    assert other.checkpoint_hash != encoder.checkpoint_hash
    new, _ = cached_features(FeatureSource(other.features, other.checkpoint_hash), other.splits.test, "test", tmp_path)
    old, _ = cached_features(source, encoder.splits.test, "test", tmp_path)
    assert len(list(tmp_path.glob("test-*.features.npy"))) == 2 and not np.allclose(new, old)


@pytest.mark.slow
def test_unusable_checkpoints_name_the_problem(quick_run, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"no")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_trained(garbage)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an ssl-coded pretraining checkpoint"):
        load_trained(foreign)
    checkpoint = torch.load(quick_run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["recipe_yaml"] = checkpoint["recipe_yaml"].replace("width: 32", "width: 16")
    mismatched = tmp_path / "mismatched.ckpt"
    torch.save(checkpoint, mismatched)
    with pytest.raises(CheckpointError, match="does not fit its recipe's model"):
        load_trained(mismatched)
