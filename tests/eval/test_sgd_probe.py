"""The SGD probe's lr grid: the heads trained side by side in one pass equal heads trained one lr at a
time by a plain torch loop (same initialisation and batches); the choice is the brute-force argmax of
validation top-1; the refit scores near scikit-learn's logistic regression on an easy task."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from ssl_coded.eval.sgd_probe import sgd_probe_grid, train_heads


def noisy(n: int, seed: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    return (rng.normal(size=(n, 10)) + 1.2 * np.eye(classes, 10)[labels]).astype(np.float32), labels


def one_head_by_hand(x, y, classes, lr, epochs, batch_size, seed):
    """lightly's SGD probe for one lr, written out: SGD momentum 0.9, cosine decay per step."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.SGD(head.parameters(), lr=lr * batch_size / 256, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * -(-len(x) // batch_size))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = torch.nn.functional.cross_entropy(head(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return head


def test_heads_trained_together_equal_heads_trained_one_at_a_time():
    x, y = (torch.from_numpy(a) for a in noisy(300, 0))
    lrs = (0.01, 0.3, 3.0)
    together = train_heads(x, y, 4, lrs, epochs=3, batch_size=64, seed=5)
    for lr, head in zip(lrs, together, strict=True):
        alone = one_head_by_hand(x, y, 4, lr, epochs=3, batch_size=64, seed=5)
        assert torch.allclose(head.weight, alone.weight, atol=1e-5), lr
        assert torch.allclose(head.bias, alone.bias, atol=1e-5), lr
    assert not torch.allclose(together[0].weight, together[2].weight, atol=1e-3)  # the lr mattered


def test_the_lr_is_chosen_on_validation_and_the_refit_scores_as_logistic_regression():
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = noisy(600, 1), noisy(200, 2), noisy(400, 3)
    lrs = (1e-4, 0.01, 1.0)
    result = sgd_probe_grid(train_x, train_y, val_x, val_y, test_x, test_y, lrs=lrs, epochs=20, batch_size=64)

    mean, std = train_x.mean(0), train_x.std(0, ddof=1)
    x, vx = (torch.from_numpy((a - mean) / std) for a in (train_x, val_x))
    by_hand = {}
    for lr in lrs:
        head = one_head_by_hand(x, torch.from_numpy(train_y), 4, lr, epochs=20, batch_size=64, seed=0)
        by_hand[lr] = float((head(vx).argmax(1).numpy() == val_y).mean())
    assert result.val_top1 == pytest.approx(by_hand, abs=1 / 200)
    assert result.best_lr == max(lrs, key=lambda lr: (result.val_top1[lr], -lr))
    assert result.val_top1[1e-4] < result.val_top1[result.best_lr]  # a too-small lr loses: the grid matters

    joint_x, joint_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    scaler = StandardScaler().fit(joint_x)
    reference = LogisticRegression(max_iter=2000).fit(scaler.transform(joint_x), joint_y)
    assert abs(result.test_top1 - reference.score(scaler.transform(test_x), test_y)) <= 0.03
    assert 0.5 < result.test_top1 < 0.95


def test_a_bad_grid_is_refused():
    x, y = noisy(20, 4)
    with pytest.raises(ValueError, match="learning rates > 0"):
        sgd_probe_grid(x, y, x, y, x, y, lrs=(0.1, 0.0))
