"""The cp backend (TDN): CP-ALS and the exact slice decomposition, the disk cache, accuracy against cg at fitted
ranks, weight sharing, and parity."""

import numpy as np
import pytest
import torch

from equilib import so3
from equilib.ops import _cp_decomposition as cpd
from equilib.ops import make_tensor_product
from equilib.ops.cp import default_rank
from tests.conftest import randn

L2 = ("4x0e+4x1o+4x2e", "0e+1o+2e", "4x0e+4x1o+4x2e")


def random_low_rank(shape, rank, seed=0):
    rng = np.random.default_rng(seed)
    return np.einsum("ir,jr,kr->ijk", *(rng.standard_normal((d, rank)) for d in shape))


def test_als_recovers_a_low_rank_tensor_deterministically():
    t = random_low_rank((6, 5, 7), 4)
    a, b, c, error = cpd.cp_als(t, 4, tol=1e-11)
    assert error < 1e-11
    assert np.abs(np.einsum("ir,jr,kr->ijk", a, b, c) - t).max() < 1e-9
    again = cpd.cp_als(t, 4, tol=1e-11)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, c), again[:3]))
    # below the tensor's rank the fit cannot be exact, and the reported error is the true one
    a, b, c, error = cpd.cp_als(t, 2)
    true = np.linalg.norm(np.einsum("ir,jr,kr->ijk", a, b, c) - t) / np.linalg.norm(t)
    assert error > 1e-3 and abs(error - true) < 1e-12


def test_als_rejects_bad_arguments():
    with pytest.raises(ValueError, match="tensor: expected a 3-way array, got shape"):
        cpd.cp_als(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="rank: expected a positive integer, got 0"):
        cpd.cp_als(np.ones((2, 2, 2)), 0)


def test_slice_decomposition_is_exact_with_the_bound_as_its_rank():
    rng = np.random.default_rng(1)
    t = rng.standard_normal((4, 6, 5)) * (rng.random((4, 6, 5)) < 0.2)  # sparse, like a CG tensor
    a, b, c = cpd.slice_decomposition(t)
    assert np.abs(np.einsum("ir,jr,kr->ijk", a, b, c) - t).max() < 1e-15
    assert a.shape[1] == cpd.exact_rank_bound(t) <= 20


def test_fitted_factors_are_cached_on_disk(tmp_path, monkeypatch):
    t = random_low_rank((5, 5, 5), 3, seed=2)
    first = cpd.fitted_factors(t, 2, 1e-7, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted again instead of reading the cache")

    monkeypatch.setattr(cpd, "cp_als", no_fit)
    second = cpd.fitted_factors(t, 2, 1e-7, tmp_path)
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
    with pytest.raises(AssertionError, match="fitted again"):  # another rank is another entry
        cpd.fitted_factors(t, 3, 1e-7, tmp_path)
    monkeypatch.setenv("EQUILIB_CACHE", str(tmp_path / "env"))
    assert cpd.cache_dir() == tmp_path / "env" / "cp"


def test_an_unusable_cache_warns_and_still_fits(tmp_path):
    (tmp_path / "a-file").write_text("")
    t = random_low_rank((4, 4, 4), 2, seed=3)
    with pytest.warns(UserWarning, match="cache_dir: could not store the fitted CP factors"):
        *_, error = cpd.fitted_factors(t, 2, 1e-9, tmp_path / "a-file" / "cp")
    assert error < 1e-9


def relative_error_against_cg(tp, generator, n=32):
    cg = make_tensor_product("cg", tp.irreps_in1, tp.irreps_in2, tp.irreps_out, dtype=torch.float64)
    x1 = randn(n, tp.irreps_in1.dim, generator=generator)
    x2 = randn(n, tp.irreps_in2.dim, generator=generator)
    w = randn(n, tp.weight_numel, generator=generator)
    ref = cg(x1, x2, tp.cg_weights(w))
    return float((tp(x1, x2, w) - ref).norm() / ref.norm())


def equivariance_error(tp, generator, g):
    x1, x2 = randn(16, tp.irreps_in1.dim, generator=generator), randn(16, tp.irreps_in2.dim, generator=generator)
    w = randn(16, tp.weight_numel, generator=generator)
    d1, d2, d3 = (so3.wigner_D(irreps, g) for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    out = tp(x1, x2, w)
    return float((tp(x1 @ d1.T, x2 @ d2.T, w) - out @ d3.T).norm() / out.norm())


@pytest.mark.slow
def test_default_rank_is_tdn_schedule_and_the_fit_error_is_the_error_against_cg(generator):
    tp = make_tensor_product("cp", *L2, dtype=torch.float64)
    assert tp.rank == default_rank(2) == 28 and not tp.exact
    assert 1e-6 < tp.fit_error < 1e-3  # measured 3.6e-4
    error = relative_error_against_cg(tp, generator)
    assert 0.3 * tp.fit_error < error < 3 * tp.fit_error
    rotation = equivariance_error(tp, generator, so3.random_rotation(generator=generator))
    assert 1e-7 < rotation < 10 * tp.fit_error  # approximately, not exactly, equivariant
    assert f"rank=28, weight_sharing='shared', fit_error={tp.fit_error:.1e}" in repr(tp)


@pytest.mark.slow
def test_error_falls_with_rank_and_vanishes_at_the_exact_rank(generator):
    errors = [make_tensor_product("cp", *L2, rank=r, dtype=torch.float64).fit_error for r in (10, 20, 40)]
    assert errors[0] > errors[1] > errors[2]
    exact = make_tensor_product("cp", *L2, rank=10**6, dtype=torch.float64)
    assert exact.exact and exact.fit_error == 0 and exact.rank < 10**6
    assert relative_error_against_cg(exact, generator) < 1e-14


def test_rank_is_shared_out_over_blocks_exactly():
    from equilib.ops.cp import _share_out

    assert _share_out(3, [100, 1, 1]) == [1, 1, 1]
    assert _share_out(60, [100, 10, 20]) == [46, 5, 9]
    assert _share_out(500, [100, 10, 20]) == [100, 10, 20]  # enough for every block: all exact
    for rank in range(3, 131):
        share = _share_out(rank, [100, 10, 20])
        assert sum(share) == rank and all(1 <= s <= b for s, b in zip(share, [100, 10, 20]))


def test_shared_weights_do_not_grow_with_the_paths():
    for lmax in (2, 4):
        irreps = "+".join(f"8x{l}{'eo'[l % 2]}" for l in range(lmax + 1))
        sh = "+".join(f"{l}{'eo'[l % 2]}" for l in range(lmax + 1))
        shared = make_tensor_product("cp", irreps, sh, irreps, rank=10**6, dtype=torch.float64)
        per_path = make_tensor_product("cp", irreps, sh, irreps, rank=10**6, weight_sharing="per-path")
        cg = make_tensor_product("cg", irreps, sh, irreps)
        assert shared.weight_numel == 8
        assert per_path.weight_numel == cg.weight_numel == 8 * len(cg.paths)


@pytest.mark.parametrize("weight_sharing", ["shared", "per-path"])
def test_exact_rank_equals_cg_with_several_multiplicities_and_uuu(weight_sharing, generator):
    """Several channel groups (one decomposition each) and per-channel x2: cg_weights maps the weights across."""
    for irreps in (("4x0e+2x1o+3x2e+2x1e", "0e+1o+2e", "4x0e+2x1o+3x2e+2x1e"),
                   ("3x0e+3x1o+3x2e", "3x0e+3x1o", "3x0e+3x1o+3x2e")):
        tp = make_tensor_product("cp", *irreps, rank=10**6, weight_sharing=weight_sharing, dtype=torch.float64)
        assert tp.exact and relative_error_against_cg(tp, generator) < 1e-14


def test_per_path_uses_the_cg_weight_layout(generator):
    tp = make_tensor_product("cp", *L2, rank=10**6, weight_sharing="per-path", dtype=torch.float64)
    assert relative_error_against_cg(tp, generator) < 1e-14
    fitted = make_tensor_product("cp", *L2, weight_sharing="per-path", dtype=torch.float64)
    assert fitted.rank == 28 and 0.05 < fitted.fit_error  # same rank, one decomposition per path: much worse


def test_parity_exact_is_exactly_inversion_equivariant_at_a_fitted_rank(generator):
    inversion = -torch.eye(3, dtype=torch.float64)
    exact = make_tensor_product("cp", *L2, rank=40, parity="exact", dtype=torch.float64)
    approximate = make_tensor_product("cp", *L2, rank=20, dtype=torch.float64)
    assert not exact.exact and not approximate.exact
    assert equivariance_error(exact, generator, inversion) < 1e-14
    assert equivariance_error(approximate, generator, inversion) > 1e-6


def test_odd_paths_are_realized(generator):
    """The cross product 1o x 1o -> 1e, which no Gaunt product can express."""
    tp = make_tensor_product("cp", "4x1o", "1o", "4x1e", rank=10**6, dtype=torch.float64)
    assert [(p.l1, p.l2, p.l3) for p in tp.paths] == [(1, 1, 1)]
    assert relative_error_against_cg(tp, generator) < 1e-14
    with pytest.raises(ValueError, match="l1 \\+ l2 \\+ l3 odd"):
        make_tensor_product("grid", "4x1o", "1o", "4x1e")


def test_per_sample_and_channel_contractions_agree(generator):
    irreps = "16x0e+16x1o+16x2e"
    ops = {c: make_tensor_product("cp", irreps, "0e+1o+2e", irreps, contraction=c, dtype=torch.float64)
           for c in ("auto", "channels", "sample")}
    x1, x2 = randn(5, ops["auto"].irreps_in1.dim, generator=generator), randn(5, 9, generator=generator)
    w = randn(5, 16, generator=generator)
    ref = ops["channels"](x1, x2, w)
    assert torch.allclose(ops["sample"](x1, x2, w), ref, atol=1e-12)
    assert ops["auto"]._per_sample == [True]  # 9 * 9 * (28 + 16) < 16 * 18 * 28
    with pytest.raises(ValueError, match="contraction: 'sample' needs x2 entries of multiplicity 1"):
        make_tensor_product("cp", *L2, weight_sharing="per-path", contraction="sample")


def test_clear_errors_for_bad_options():
    for options, message in (
        ({"rank": 0}, "rank: expected a positive integer or None"),
        ({"rank": 2.5}, "rank: expected a positive integer or None"),
        ({"weight_sharing": "some"}, "weight_sharing: expected one of"),
        ({"parity": "maybe"}, "parity: expected one of"),
        ({"contraction": "both"}, "contraction: expected one of"),
        ({"tol": 0.0}, r"tol: expected a float in \(0, 1\)"),
        ({"rank": 2, "parity": "exact"}, "rank: expected at least 4 \\(one component per independent block\\)"),
    ):
        with pytest.raises(ValueError, match=message):
            make_tensor_product("cp", *L2, **options)
