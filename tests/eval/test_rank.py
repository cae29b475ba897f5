import numpy as np
import pytest
import torch
from scipy.stats import entropy
from ssl_coded.eval.rank import effective_rank, main


def with_singular_values(singular: np.ndarray, n: int, d: int, seed: int = 0) -> np.ndarray:
    """An (n, d) matrix whose singular values are `singular`, from random orthonormal factors."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, len(singular))))
    v, _ = np.linalg.qr(rng.standard_normal((d, len(singular))))
    return u @ np.diag(singular) @ v.T


# RankMe's eps adds about eps * log(1 / eps) per zero singular value: 1e-4 relative covers it
def test_equal_singular_values_give_their_count():
    assert effective_rank(torch.eye(8)) == pytest.approx(8.0, rel=1e-5)
    assert effective_rank(with_singular_values(np.ones(5), n=40, d=12)) == pytest.approx(5.0, rel=1e-4)


def test_matches_the_entropy_of_the_normalised_spectrum():
    singular = np.array([10.0, 4.0, 2.0, 1.0, 0.5, 0.1])
    expected = np.exp(entropy(singular / singular.sum()))  # scipy, from the known spectrum
    assert effective_rank(with_singular_values(singular, n=50, d=20)) == pytest.approx(expected, rel=1e-4)


def test_a_rank_r_matrix_scores_at_most_r():
    rng = np.random.default_rng(1)
    low_rank = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 64))
    assert 1.0 < effective_rank(low_rank) <= 3.0 + 1e-3


def test_refuses_what_is_not_a_matrix():
    with pytest.raises(ValueError, match="non-empty"):
        effective_rank(np.zeros(5))


def test_the_command_tables_each_row_over_its_seeds(tmp_path, capsys):
    for row, dims in (("plain", 6), ("collapsed", 2)):
        for seed in (0, 1):
            folder = tmp_path / row / f"seed{seed}" / "features"
            folder.mkdir(parents=True)
            features = with_singular_values(np.ones(dims), n=30, d=16, seed=seed).astype(np.float32)
            np.save(folder / "test-0123.features.npy", features)
    assert main([str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "| plain | 2 | 6.0 +- 0.0 | 6.0, 6.0 |" in table
    assert "| collapsed | 2 | 2.0 +- 0.0 | 2.0, 2.0 |" in table


def test_the_command_refuses_a_directory_without_features(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "run the study first" in capsys.readouterr().err


def test_the_command_refuses_a_cell_with_two_cached_entries(tmp_path, capsys):
    folder = tmp_path / "row" / "seed0" / "features"
    folder.mkdir(parents=True)
    for key in ("0123", "4567"):  # features of two checkpoints: the rank would depend on which one
        np.save(folder / f"test-{key}.features.npy", np.eye(4, dtype=np.float32))
    assert main([str(tmp_path)]) == 2
    assert "more than one cached test entry" in capsys.readouterr().err
