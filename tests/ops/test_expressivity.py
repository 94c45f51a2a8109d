"""Expressivity: the dimension of the equivariant bilinear maps an op reaches, against the full CG space."""

import pytest
import torch
from e3nn import o3

from equilib.ops import coupling_paths, expressivity, make_tensor_product


def _problem(lmax: int):
    """Features and harmonics with parity (-1)^l; outputs: every irrep a CG product reaches, or the natural ones."""
    natural = o3.Irreps([(2, (l, (-1) ** l)) for l in range(lmax + 1)])
    sh = o3.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])
    candidates = o3.Irreps([(2, (l, p)) for l in range(lmax + 1) for p in (1, -1)])
    reached = sorted({p.i_out for p in coupling_paths(natural, sh, candidates)})
    return natural, sh, o3.Irreps([candidates[i] for i in reached])


def _couplings(lmax: int, gaunt_only: bool):
    out = set()
    for l1 in range(lmax + 1):
        for l2 in range(lmax + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
                if gaunt_only and (l1 + l2 + l3) % 2:
                    continue
                p3 = (-1) ** (l1 + l2)
                out.add((str(o3.Irrep(l1, (-1) ** l1)), str(o3.Irrep(l2, (-1) ** l2)), str(o3.Irrep(l3, p3))))
    return out


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_cg_reaches_every_coupling(lmax):
    natural, sh, every = _problem(lmax)
    result = expressivity(make_tensor_product("cg", natural, sh, every, dtype=torch.float64))
    assert result.dimension == result.full_dimension == len(_couplings(lmax, gaunt_only=False))
    assert not result.missing and set(result.reachable) == _couplings(lmax, gaunt_only=False)


# a rank where the decomposition is exact, and a fitted one (14 L^2: with the pseudo-tensor outputs TDN's 7 L^2
# leaves a 15% fit error at L = 2)
@pytest.mark.parametrize("lmax, rank", [(1, 10**6), (2, 10**6), (2, 56)])
def test_cp_reaches_every_coupling_including_the_odd_ones(lmax, rank):
    natural, sh, every = _problem(lmax)
    tp = make_tensor_product("cp", natural, sh, every, rank=rank, dtype=torch.float64)
    result = expressivity(tp)
    assert result.dimension == result.full_dimension and not result.missing
    assert tp.exact == (rank == 10**6)
    if not tp.exact:  # at the plain float64 tolerance its non-equivariant residual shows up as extra dimensions
        assert tp.fit_error > 1e-8 and expressivity(tp, rtol=1e-9).dimension > result.full_dimension


@pytest.mark.parametrize("backend", ["grid", "gaunt"])
@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_gaunt_products_miss_exactly_the_odd_couplings(backend, lmax):
    natural, sh, _ = _problem(lmax)
    result = expressivity(make_tensor_product(backend, natural, sh, natural, dtype=torch.float64))
    assert set(result.reachable) == _couplings(lmax, gaunt_only=True)
    assert set(result.missing) == _couplings(lmax, gaunt_only=False) - _couplings(lmax, gaunt_only=True)
    assert result.dimension == len(result.reachable) < result.full_dimension
    assert ("1o", "1o", "1e") in result.missing  # the cross product


def test_an_op_restricted_to_fewer_outputs_reaches_less():
    natural, sh, _ = _problem(2)
    result = expressivity(make_tensor_product("cg", natural, sh, "2x0e+2x2e", dtype=torch.float64))
    assert result.dimension == len(result.reachable) > 0
    assert all(c in ("0e", "2e") for _, _, c in result.reachable)
    assert result.dimension < result.full_dimension


@pytest.mark.parametrize("backend", ["cg", "grid"])
def test_float32_ops_are_measured_at_the_float64_tolerance(backend):
    """The float64 copy of a float32-built op has exact tables, so the default 1e-9 tolerance holds for it."""
    natural, sh, every = _problem(2)
    every = every if backend == "cg" else natural
    built32 = expressivity(make_tensor_product(backend, natural, sh, every, dtype=torch.float32))
    built64 = expressivity(make_tensor_product(backend, natural, sh, every, dtype=torch.float64))
    assert built32 == built64
    if backend == "cg":
        assert built32.dimension == built32.full_dimension == 15


def test_bad_arguments():
    natural, sh, _ = _problem(1)
    with pytest.raises(TypeError, match="tp: expected a TensorProduct"):
        expressivity("cg")
    with pytest.raises(ValueError, match="draws"):
        expressivity(make_tensor_product("grid", natural, sh, natural), draws=0)
