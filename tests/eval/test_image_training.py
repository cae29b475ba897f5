"""Training through the encoder on images (`finetune`, `probe-images`): every lr trained side by side equals
that lr trained alone by a plain torch loop on the same seeded batches (encoder copies for fine-tuning,
heads on the frozen encoder otherwise); the choice is the validation argmax; the frozen probe lands near
scikit-learn's logistic regression on the same features; augmentation stays in the image and is seeded."""

import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from ssl_coded.eval.image_training import augment, train_on_images
from torch import nn

from ssl_coded.data.tensors import TensorImageDataset


def images(n: int, seed: int) -> TensorImageDataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = torch.rand(n, 1, 6, 6, generator=generator) * 120 + labels.view(-1, 1, 1, 1) * 60
    x[labels == 1, :, :3] += 60  # a class told apart by where, not only how bright
    return TensorImageDataset(x.clamp(0, 255).to(torch.uint8), labels)


class Scaled(nn.Module):
    """uint8 images to floats in [0, 1], as the project's encoders take them."""

    def forward(self, x):
        return x.float() / 255


def encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(Scaled(), nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())


def by_hand(model: nn.Module, data: TensorImageDataset, lr: float, epochs: int, batch: int, seed: int, finetune: bool):
    """One lr alone: SGD momentum 0.9, cosine per step, lr x batch / 256, batches in a seeded order."""
    params = model.parameters() if finetune else model[1].parameters()
    optimizer = torch.optim.SGD(params, lr=lr * batch / 256, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * -(-len(data) // batch))
    generator = torch.Generator().manual_seed(seed)
    model.train(finetune)
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        for index in order.split(batch):
            x, y = data.images[index], data.labels[index]
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


@pytest.mark.parametrize("finetune", [True, False])
def test_each_lr_trains_as_it_would_alone(finetune, monkeypatch):
    train, val, test = images(90, 0), images(30, 1), images(30, 2)
    lrs = (0.01, 1.0)
    trained = {}
    import ssl_coded.eval.image_training as module

    keep = module.Classifier.__init__

    def spy(self, enc, head):  # keep the models the grid trains, to compare them
        keep(self, enc, head)
        trained.setdefault("models", []).append(self)

    monkeypatch.setattr(module.Classifier, "__init__", spy)
    result = train_on_images(encoder(), train, val, test, 3, lrs, epochs=2, batch_size=16, finetune=finetune,
                             augmentation="none", seed=3)  # fmt: skip
    for lr, model in zip(lrs, trained["models"], strict=True):
        torch.manual_seed(3)
        head = nn.Linear(4 * 4 * 4, 3)
        alone = by_hand(nn.Sequential(copy.deepcopy(encoder()).eval(), head), train, lr, 2, 16, 3, finetune)
        for ours, theirs in zip(model.parameters(), alone.parameters(), strict=True):
            assert torch.allclose(ours, theirs, atol=1e-5), lr
        with torch.no_grad():
            x = val.images
            assert result.val_top1[lr] == pytest.approx(float((alone(x).argmax(1) == val.labels).float().mean()))
    assert result.best_lr == max(lrs, key=lambda lr: (result.val_top1[lr], -lr))


def test_the_frozen_probe_lands_near_logistic_regression_on_the_same_features():
    train, val, test = images(600, 4), images(150, 5), images(300, 6)
    enc = encoder().eval()
    result = train_on_images(enc, train, val, test, 3, (0.1, 1.0), epochs=30, batch_size=64, finetune=False,
                             augmentation="none")  # fmt: skip
    with torch.no_grad():
        f = {name: enc(d.images).numpy() for name, d in (("train", train), ("test", test))}
    reference = LogisticRegression(max_iter=5000).fit(f["train"], train.labels.numpy())
    assert abs(result.test_top1 - reference.score(f["test"], test.labels.numpy())) <= 0.05
    assert result.test_top1 > 0.6


def test_augmentation_crops_within_the_padding_and_is_seeded():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    assert augment(x.to(torch.uint8), torch.Generator()).dtype == torch.uint8  # fed as the dataset stores it
    first = augment(x, torch.Generator().manual_seed(0), flip=False)
    assert torch.equal(first, augment(x, torch.Generator().manual_seed(0), flip=False))
    assert first.shape == x.shape and not torch.equal(first, augment(x, torch.Generator().manual_seed(1), flip=False))
    # a shift of at most 2 pixels (an eighth of 16): the centre of each image survives
    for i in range(2):
        assert np.isin(x[i, 0, 6:10, 6:10].numpy(), first[i].numpy()).all()
    # a last batch of one image does not stop fine-tuning through batch norm on vectors
    vectors = nn.Sequential(Scaled(), nn.Flatten(), nn.Linear(36, 4), nn.BatchNorm1d(4))
    train_on_images(vectors, images(17, 0), images(6, 1), images(6, 2), 3, (0.1,), epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="is not one of crop, crop-flip, none"):
        train_on_images(encoder(), images(9, 0), images(3, 1), images(3, 2), 3, (0.1,), augmentation="rotate")
