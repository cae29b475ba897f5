import numpy as np
import pytest
import torch
from scipy.interpolate import FloaterHormannInterpolator, make_smoothing_spline

from ssl_coded.coding import (
    _TORCH_CACHE,
    CodingScheme,
    berrut_matrix,
    chebyshev_first_kind,
    chebyshev_second_kind,
    coding_matrices,
    coding_matrices_float64,
    random_mixing_matrices,
    scipy_lambda,
    smoothing_spline_matrix,
)
from tests.oracles import berrut_by_hand, chebyshev_points, spline_by_scipy


@pytest.mark.parametrize("n", [1, 2, 7, 8, 64])
def test_chebyshev_first_kind_matches_closed_form(n):
    expected = np.sort(np.cos((2 * np.arange(n) + 1) * np.pi / (2 * n)))
    np.testing.assert_allclose(chebyshev_first_kind(n), expected, atol=1e-15)


@pytest.mark.parametrize("n", [2, 3, 8, 65])
def test_chebyshev_second_kind_matches_closed_form_and_includes_ends(n):
    points = chebyshev_second_kind(n)
    np.testing.assert_allclose(points, np.sort(np.cos(np.arange(n) * np.pi / (n - 1))), atol=1e-15)
    assert points[0] == -1.0 and points[-1] == 1.0


def test_odd_chebyshev_sets_contain_exact_zero_and_are_symmetric():
    assert chebyshev_first_kind(9)[4] == 0.0
    assert chebyshev_second_kind(9)[4] == 0.0
    np.testing.assert_array_equal(chebyshev_first_kind(10), -chebyshev_first_kind(10)[::-1])


def scipy_spline_matrix(knots, targets, lam):
    return np.stack([make_smoothing_spline(knots, e, lam=lam)(targets) for e in np.eye(len(knots))], axis=1)


@pytest.mark.parametrize("lam", [1e-8, 1e-4, 1e-2, 1.0])
@pytest.mark.parametrize("k,n", [(8, 16), (13, 40), (32, 64)])
def test_spline_encoder_matches_scipy_inside_the_knots(k, n, lam):
    alpha, beta = chebyshev_first_kind(k), chebyshev_second_kind(n)
    inside = beta[(beta >= alpha[0]) & (beta <= alpha[-1])]
    ours = smoothing_spline_matrix(alpha, inside, lam)
    np.testing.assert_allclose(ours, scipy_spline_matrix(alpha, inside, lam), atol=1e-8)


@pytest.mark.parametrize("lam", [1e-6, 1e-2, 1.0])
def test_spline_decoder_matches_scipy(lam):
    beta, alpha = chebyshev_second_kind(24), chebyshev_first_kind(12)  # alphas all inside betas
    ours = smoothing_spline_matrix(beta, alpha, lam)
    np.testing.assert_allclose(ours, scipy_spline_matrix(beta, alpha, lam), atol=1e-8)


@pytest.mark.parametrize("lam", [1e-6, 1e-2, 1.0])
def test_spline_continues_linearly_beyond_the_outer_knots(lam):
    alpha = chebyshev_first_kind(10)
    outside = np.array([-1.0, -0.995, 0.995, 1.0, 1.5])
    outside = outside[(outside < alpha[0]) | (outside > alpha[-1])]
    ours = smoothing_spline_matrix(alpha, outside, lam)
    for j, e in enumerate(np.eye(len(alpha))):
        spline = make_smoothing_spline(alpha, e, lam=lam)
        slope = spline.derivative()
        for i, z in enumerate(outside):
            end = alpha[0] if z < alpha[0] else alpha[-1]
            linear = spline(end) + (z - end) * slope(end)
            assert ours[i, j] == pytest.approx(linear, abs=1e-8)
    # SciPy continues the end cubic instead: the two must differ where curvature is present
    rough = np.sin(7 * alpha)
    cubic_tail = make_smoothing_spline(alpha, rough, lam=1e-8)(np.array([1.5]))
    assert abs((smoothing_spline_matrix(alpha, np.array([1.5]), 1e-8) @ rough)[0] - cubic_tail[0]) > 1e-2


def test_berrut_matches_closed_form_and_scipy():
    nodes, targets = chebyshev_first_kind(11), chebyshev_second_kind(23)
    ours = berrut_matrix(nodes, targets)
    reference = np.stack([FloaterHormannInterpolator(nodes, e, d=0)(targets) for e in np.eye(len(nodes))], axis=1)
    np.testing.assert_allclose(ours, reference, atol=1e-8)
    # closed form at one point, written out
    z, w = 0.3, (-1.0) ** np.arange(len(nodes))
    np.testing.assert_allclose(berrut_matrix(nodes, [z])[0], (w / (z - nodes)) / np.sum(w / (z - nodes)), atol=1e-15)


@pytest.mark.parametrize("kind", ["spline", "berrut"])
@pytest.mark.parametrize("k,n", [(2, 2), (3, 7), (16, 16), (33, 130)])
def test_rows_are_affine(kind, k, n):
    enc, dec = coding_matrices_float64(k, n, kind, 1e-2, 1e-2)
    assert enc.shape == (n, k) and dec.shape == (k, n)
    np.testing.assert_allclose(enc.sum(axis=1), 1.0, atol=1e-10)
    np.testing.assert_allclose(dec.sum(axis=1), 1.0, atol=1e-10)


def test_berrut_recovers_nodes_exactly():
    nodes = chebyshev_second_kind(9)
    np.testing.assert_array_equal(berrut_matrix(nodes, nodes), np.eye(9))
    # an odd K and odd N share the point 0: the coincident row is a unit vector, not nan
    enc, _ = coding_matrices_float64(9, 9, "berrut")
    np.testing.assert_array_equal(enc[4], np.eye(9)[4])


def test_spline_interpolates_as_lambda_goes_to_zero():
    knots = chebyshev_first_kind(12)
    errors = [np.abs(smoothing_spline_matrix(knots, knots, lam) - np.eye(12)).max() for lam in (1e-2, 1e-5, 1e-8, 0.0)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-12


def test_spline_is_exact_on_linear_functions_at_any_smoothing():
    # a line has zero curvature, so the penalty does not touch it: a check on the extrapolation too
    alpha, beta = chebyshev_first_kind(10), chebyshev_second_kind(25)
    line = 3.0 * alpha - 0.5
    np.testing.assert_allclose(smoothing_spline_matrix(alpha, beta, 10.0) @ line, 3.0 * beta - 0.5, atol=1e-10)


def test_lambda_units():
    knots = chebyshev_first_kind(5)
    spacing = (knots[-1] - knots[0]) / 4
    assert scipy_lambda(2.0, knots, "scipy") == 2.0
    assert scipy_lambda(2.0, knots, "mean") == 10.0
    assert scipy_lambda(2.0, knots, "spacing") == pytest.approx(2.0 * spacing**3)
    with pytest.raises(ValueError, match="lambda units"):
        scipy_lambda(1.0, knots, "bogus")


def test_spacing_units_make_smoothing_batch_size_independent():
    # the spread of a smoother's weights, measured in node spacings, stays put as K grows
    def width_in_spacings(k, units, lam):
        knots = chebyshev_first_kind(k)
        row = smoothing_spline_matrix(knots, knots, scipy_lambda(lam, knots, units))[k // 2]
        offsets = np.arange(k) - k // 2
        return np.sqrt(np.sum(np.abs(row) * offsets**2) / np.sum(np.abs(row)))

    spacing = [width_in_spacings(k, "spacing", 1.0) for k in (32, 128, 512)]
    raw = [width_in_spacings(k, "scipy", 1e-6) for k in (32, 128, 512)]
    assert max(spacing) / min(spacing) < 1.3
    assert raw[-1] / raw[0] > 5


def test_build_is_cached_once_per_shape_for_k512_n256():
    coding_matrices_float64.cache_clear()
    _TORCH_CACHE.clear()
    enc, dec = coding_matrices(512, 256, "spline", 1e-2, 1e-2)
    again = coding_matrices(512, 256, "spline", 1e-2, 1e-2)
    assert again[0] is enc and again[1] is dec
    assert coding_matrices_float64.cache_info().misses == 1
    assert enc.dtype == torch.float32 and enc.shape == (256, 512)
    assert coding_matrices(512, 256, "spline", 1e-2, 1e-2, dtype=torch.float64)[0].dtype == torch.float64
    assert coding_matrices_float64.cache_info().misses == 1  # casting reuses the float64 build


def test_scheme_num_coded_and_validation():
    assert CodingScheme(coded_ratio=4.0).num_coded_for(8) == 32
    assert CodingScheme(num_coded=10).num_coded_for(8) == 10
    assert CodingScheme(coded_ratio=0.1).num_coded_for(3) == 2
    with pytest.raises(ValueError, match="unknown coding family"):
        CodingScheme(kind="chebfun")
    with pytest.raises(ValueError, match="too small to code"):
        CodingScheme().matrices(1)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="lambda_enc must be a finite number"):
            CodingScheme(lambda_enc=bad)
    assert [CodingScheme(coded_ratio=1.5).num_coded_for(k) for k in (3, 5, 7)] == [5, 8, 11]  # halves round up


@pytest.mark.parametrize("kind", ["spline", "berrut"])
def test_coded_forward_of_a_linear_map_converges_as_n_grows(kind):
    # smooth data: x_k = g(alpha_k) for a smooth vector-valued g; fn linear
    k = 16
    alpha = torch.as_tensor(chebyshev_first_kind(k))
    x = torch.stack([torch.sin(2 * alpha), torch.cos(3 * alpha), alpha**2], dim=1)
    weight = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fn = lambda t: t @ weight  # noqa: E731
    errors = []
    for ratio in (1, 2, 4, 8):
        scheme = CodingScheme(kind=kind, coded_ratio=ratio, lambda_enc=1e-6, lambda_dec=1e-6)
        decoded = scheme.coded_forward(fn, x)
        errors.append(float((decoded - fn(x)).norm() / fn(x).norm()))
    assert errors[-1] < errors[0] / 2
    assert errors[-1] < 0.05


def test_coded_forward_keeps_trailing_shape_and_dtype():
    x = torch.randn(6, 2, 3, 3)
    out = CodingScheme(coded_ratio=1.5).coded_forward(lambda t: t * 2, x)
    assert out.shape == x.shape and out.dtype == torch.float32


def test_cast_flushes_subnormal_weights_and_keeps_rows_affine():
    enc, dec = coding_matrices(256, 256, "spline", 1e-2, 1e-2, dtype=torch.float32)
    tiny = torch.finfo(torch.float32).tiny
    for matrix in (enc, dec):
        assert not ((matrix != 0) & (matrix.abs() < tiny)).any()
        torch.testing.assert_close(matrix.double().sum(1), torch.ones(256, dtype=torch.float64))


def test_coded_batch_size_splits_the_coded_pass_without_changing_the_result():
    calls = []

    def fn(t):
        calls.append(t.shape[0])
        return torch.tanh(t @ torch.ones(3, 2))

    x, scheme = torch.randn(8, 3), CodingScheme(coded_ratio=2.5)
    whole = scheme.coded_forward(fn, x)
    chunked = scheme.coded_forward(fn, x, coded_batch_size=8)
    torch.testing.assert_close(chunked, whole)
    assert calls == [20, 8, 8, 4]


def test_matrices_first_built_under_inference_mode_still_train():
    _TORCH_CACHE.clear()
    with torch.inference_mode():
        CodingScheme(num_coded=11).coded_forward(lambda t: t, torch.randn(7, 3))
    weight = torch.randn(3, 2, requires_grad=True)
    CodingScheme(num_coded=11).coded_forward(lambda t: t @ weight, torch.randn(7, 3)).sum().backward()
    assert weight.grad is not None


def test_low_precision_inputs_are_coded_in_float32():
    x = torch.randn(256, 8, dtype=torch.float64)
    scheme = CodingScheme(kind="berrut", coded_ratio=4.0)
    exact = scheme.coded_forward(lambda t: t, x)
    half = scheme.coded_forward(lambda t: t, x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    enc, _ = scheme.matrices(256, dtype=torch.bfloat16)
    assert enc.dtype == torch.float32
    # the error is bf16 rounding of inputs and outputs (~4e-3), not of the matrices as well
    error = (half.double() - exact).norm() / exact.norm()
    assert error < 8e-3


def test_random_mixing_ablation_is_affine_and_decodes_a_linear_fn_exactly():
    torch.manual_seed(0)
    enc, dec = random_mixing_matrices(16, 32, dtype=torch.float64)
    torch.testing.assert_close(enc.sum(dim=1), torch.ones(32, dtype=torch.float64))
    assert ((enc > 0).sum(dim=1) <= 2).all() and (enc >= 0).all()
    torch.testing.assert_close(dec @ enc, torch.eye(16, dtype=torch.float64))
    scheme = CodingScheme(kind="mix", coded_ratio=2.0)
    weight = torch.randn(5, 3, dtype=torch.float64)
    x = torch.randn(16, 5, dtype=torch.float64)
    torch.testing.assert_close(scheme.coded_forward(lambda t: t @ weight, x), x @ weight)
    torch.manual_seed(1)
    first = scheme.matrices(16, torch.float64)[0]
    torch.manual_seed(1)
    assert torch.equal(first, scheme.matrices(16, torch.float64)[0])  # seeded
    assert not torch.equal(first, scheme.matrices(16, torch.float64)[0])  # new mixtures every call


@pytest.mark.parametrize("k", [8, 64, 128])
def test_random_mixing_with_n_equal_k_decodes_within_varahs_bound(k):
    # Each row of E is (1 - t) on one item and t <= 1/2 on another, every item the larger part of one
    # row: E is a row permutation of a diagonally dominant matrix, and Varah (1975) bounds the inverse,
    # norm_inf(E^-1) <= 1 / min over rows of (|diagonal| - sum of the rest). Checked with NumPy's inverse.
    torch.manual_seed(k)
    for _ in range(10):
        enc, _ = random_mixing_matrices(k, k, dtype=torch.float64)
        e = enc.numpy()
        larger = e.max(axis=1)
        assert sorted(e.argmax(axis=1)) == list(range(k))  # every item is the larger part of one row
        margin = larger - (e.sum(axis=1) - larger)
        inverse = np.linalg.inv(e)
        assert np.abs(inverse).sum(axis=1).max() <= 1 / margin.min() * (1 + 1e-9)


@pytest.mark.parametrize(
    ("kind", "k", "n"), [("spline", 12, 24), ("spline", 9, 9), ("berrut", 12, 30), ("berrut", 7, 5)]
)
def test_matrices_equal_the_definitions_built_independently(kind, k, n):
    # SciPy's smoothing spline column by column (linear beyond the outer knots) and Berrut's formula
    # term by term, at Chebyshev points computed from their cosine definitions
    enc, dec = coding_matrices(k, n, kind, 1e-2, 1e-2, "spacing", dtype=torch.float64)
    alpha, beta = chebyshev_points(k, 1), chebyshev_points(n, 2)
    coder = berrut_by_hand if kind == "berrut" else lambda a, b: spline_by_scipy(a, b, 1e-2)
    np.testing.assert_allclose(enc.numpy(), coder(alpha, beta), atol=1e-9)
    np.testing.assert_allclose(dec.numpy(), coder(beta, alpha), atol=1e-9)
