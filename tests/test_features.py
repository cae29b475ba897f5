import numpy as np
import pytest
import torch
from ssl_coded.eval.features import cached_features, load_encoder

from ssl_coded.cli import main
from ssl_coded.train import CheckpointError

QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.batch_size=32", "eval.bank_size=128"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["pretrain", "simclr-digits", *QUICK, f"out_dir={out}", "name=run"]) == 0
    return out / "run"


def test_features_match_the_backbone_and_are_cached(run_dir, tmp_path, monkeypatch):
    encoder = load_encoder(run_dir)
    features, labels = cached_features(encoder, encoder.splits.test, "test", tmp_path)
    with torch.no_grad():
        direct = encoder.method.backbone(encoder.method.to_input(encoder.splits.test.images))
    np.testing.assert_allclose(features, direct.numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(labels, encoder.splits.test.labels.numpy())
    # the second call reads the cache: the backbone must not run again
    monkeypatch.setattr(encoder.method, "backbone", None)
    again, _ = cached_features(encoder, encoder.splits.test, "test", tmp_path)
    assert isinstance(again, np.memmap) and np.array_equal(again, features)


def test_a_changed_checkpoint_never_reuses_stale_features(run_dir, tmp_path):
    encoder = load_encoder(run_dir)
    cached_features(encoder, encoder.splits.test, "test", tmp_path)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for key, value in checkpoint["state_dict"].items():
        if value.is_floating_point():
            checkpoint["state_dict"][key] = value * 1.5
    changed = tmp_path / "changed.ckpt"
    torch.save(checkpoint, changed)
    other = load_encoder(changed)
    assert other.checkpoint_hash != encoder.checkpoint_hash
    new, _ = cached_features(other, other.splits.test, "test", tmp_path)
    old, _ = cached_features(encoder, encoder.splits.test, "test", tmp_path)
    assert len(list(tmp_path.glob("test-*.features.npy"))) == 2 and not np.allclose(new, old)


def test_unusable_checkpoints_name_the_problem(run_dir, tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"no")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_encoder(garbage)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an ssl-coded pretraining checkpoint"):
        load_encoder(foreign)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["recipe_yaml"] = checkpoint["recipe_yaml"].replace("width: 32", "width: 16")
    mismatched = tmp_path / "mismatched.ckpt"
    torch.save(checkpoint, mismatched)
    with pytest.raises(CheckpointError, match="does not fit its recipe's model"):
        load_encoder(mismatched)
