"""equilib.so3 against independent references: e3nn's SH, closed-form integrals, sympy's CG, group identities."""

import math

import numpy as np
import pytest
import torch
from e3nn import o3

from equilib import so3


def test_spherical_harmonics_match_e3nn(generator):
    v = torch.randn(200, 3, generator=generator, dtype=torch.float64)
    ours = so3.spherical_harmonics(10, v.numpy())
    ref = o3.spherical_harmonics(list(range(11)), v, normalize=True, normalization="integral")
    assert np.abs(ours - ref.numpy()).max() < 1e-12
    comp = so3.spherical_harmonics(3, v.numpy(), normalization="component")
    assert np.allclose((comp[:, 9:16] ** 2).sum(-1), 7.0)  # sum_m Y_3m^2 = 2l + 1


def test_spherical_harmonics_errors():
    with pytest.raises(ValueError, match="vectors: expected non-zero vectors"):
        so3.spherical_harmonics(2, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="normalization: expected 'integral' or 'component'"):
        so3.spherical_harmonics(2, np.ones((1, 3)), normalization="norm")


def _monomial_integral(a: int, b: int, c: int) -> float:
    """Closed form of the integral of x^a y^b z^c over the unit sphere."""
    if a % 2 or b % 2 or c % 2:
        return 0.0
    g = math.gamma
    return 2 * g((a + 1) / 2) * g((b + 1) / 2) * g((c + 1) / 2) / g((a + b + c + 3) / 2)


def _max_error(grid, degree):
    xyz = grid.points()
    worst = 0.0
    for a in range(degree + 1):
        for b in range(degree + 1 - a):
            c = degree - a - b
            got = grid.integrate(xyz[:, 0] ** a * xyz[:, 1] ** b * xyz[:, 2] ** c)
            worst = max(worst, abs(got - _monomial_integral(a, b, c)))
    return worst


@pytest.mark.parametrize("degree", [0, 1, 4, 7, 12, 18])
def test_product_rule_is_exact_and_minimal(degree):
    n_beta, n_alpha = so3.exact_grid_size(degree)
    assert _max_error(so3.gauss_legendre_grid(n_beta, n_alpha), degree) < 1e-13
    assert abs(so3.gauss_legendre_grid(n_beta, n_alpha).weights.sum() - 4 * math.pi) < 1e-12
    # One point fewer is no longer exact for some monomial of this degree: in the azimuth always, in the polar angle
    # for even degrees (for odd ones the odd powers of z that the rule misses integrate to zero anyway).
    if degree >= 2:
        assert _max_error(so3.gauss_legendre_grid(n_beta, n_alpha - 1), degree) > 1e-6
    if degree >= 2 and degree % 2 == 0:
        assert _max_error(so3.gauss_legendre_grid(n_beta - 1, n_alpha), degree) > 1e-6


def test_harmonics_are_orthonormal_on_the_exact_grid():
    grid = so3.gauss_legendre_grid(*so3.exact_grid_size(2 * 7))
    y = grid.harmonics(7)
    gram = (y * grid.weights.reshape(-1, 1)).T @ y
    assert np.abs(gram - np.eye(64)).max() < 1e-13


def test_grid_arguments_are_checked():
    with pytest.raises(ValueError, match="n_beta: expected a positive int"):
        so3.gauss_legendre_grid(0, 3)
    with pytest.raises(ValueError, match="degree: expected a non-negative int"):
        so3.exact_grid_size(-1)


def test_clebsch_gordan_m0_matches_sympy():
    from sympy.physics.wigner import clebsch_gordan

    for l1 in range(6):
        for l2 in range(6):
            for l3 in range(11):
                ref = float(clebsch_gordan(l1, l2, l3, 0, 0, 0))
                assert abs(so3.clebsch_gordan_m0(l1, l2, l3) - ref) < 1e-14


@pytest.mark.parametrize("lmax", [5])
def test_gaunt_tensor_is_the_scaled_wigner_3j_on_even_paths(lmax):
    for l1 in range(lmax + 1):
        for l2 in range(lmax + 1):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                g = so3.gaunt_tensor(l1, l2, l3)
                w3j = o3.wigner_3j(l1, l2, l3, dtype=torch.float64).numpy()
                assert np.abs(g - so3.gaunt_w3j_factor(l1, l2, l3) * w3j).max() < 1e-13
                if (l1 + l2 + l3) % 2:
                    assert np.abs(g).max() < 1e-15  # no antisymmetric (odd) Gaunt coupling
                else:
                    assert np.abs(g).max() > 0.05


def test_gaunt_tensor_is_rotation_invariant(generator):
    rot = so3.random_rotation(generator=generator)
    d = [so3.wigner_D(f"{l}e", rot).numpy() for l in (2, 3, 3)]
    g = so3.gaunt_tensor(2, 3, 3)
    rotated = np.einsum("ijk,ai,bj,ck->abc", g, *d)
    assert np.abs(rotated - g).max() < 1e-13


def test_random_rotations_are_uniform_rotations(generator):
    rots = so3.random_rotation(4000, generator=generator)
    eye = torch.eye(3, dtype=torch.float64)
    assert (rots @ rots.transpose(-1, -2) - eye).abs().max() < 1e-13
    assert (torch.linalg.det(rots) - 1).abs().max() < 1e-13
    assert rots.mean(0).abs().max() < 0.05  # Haar measure: E[R] = 0 (4000 samples, ~5 sigma)


def test_wigner_D_is_a_representation_with_parity(generator):
    irreps = "0e+0o+1o+1e+2e+3o"
    r1, r2 = so3.random_rotation(2, generator=generator)
    d = lambda g: so3.wigner_D(irreps, g)  # noqa: E731
    assert (d(r1 @ r2) - d(r1) @ d(r2)).abs().max() < 1e-13
    assert (d(r1)[2:5, 2:5] - r1).abs().max() < 1e-14  # 1o transforms as a vector
    inv = d(-r1)
    assert (inv[1, 1] + 1).abs() < 1e-14 and (inv[2:5, 2:5] + r1).abs().max() < 1e-14
    assert (inv[5:8, 5:8] - r1).abs().max() < 1e-14  # 1e: a pseudovector
    batch = so3.wigner_D(irreps, torch.stack([r1, r2]))
    assert batch.shape == (2, 20, 20) and (batch[1] - d(r2)).abs().max() == 0
    with pytest.raises(ValueError, match="matrix: expected orthogonal 3x3 matrices"):
        so3.wigner_D(irreps, 2 * r1)
