"""The gaunt backend: exact 2D Fourier tables, and the same function as the grid backend (Gaunt product)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from scipy.integrate import quad

from equilib import so3
from equilib.ops import make_tensor_product
from equilib.so3 import azimuth_fourier, projection_fourier, sh_to_fourier, sine_integral
from tests.conftest import randn
from tests.ops.test_conformance import CONFIGS, random_configuration


def test_fourier_series_reproduce_the_harmonics_on_the_whole_torus():
    lmax = 6
    coeff = sh_to_fourier(lmax)
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 2 * np.pi, 50), rng.uniform(0, 2 * np.pi, 50)  # b > pi: the other half of the torus
    points = np.stack([np.sin(b) * np.sin(a), np.cos(b), np.sin(b) * np.cos(a)], -1)
    u = np.arange(-lmax, lmax + 1)
    waves = np.exp(1j * (b[:, None, None] * u[None, :, None] + a[:, None, None] * u[None, None, :]))
    values = np.einsum("puv,kuv->pk", waves, coeff)
    assert np.abs(values - so3.spherical_harmonics(lmax, points)).max() < 1e-13
    assert np.abs(values.imag).max() < 1e-13


def test_sine_integral_closed_form():
    for k in range(-7, 8):
        real = quad(lambda b: math.sin(b) * math.cos(k * b), 0, math.pi)[0]
        imag = quad(lambda b: math.sin(b) * math.sin(k * b), 0, math.pi)[0]
        assert abs(sine_integral(np.array([k]))[0] - complex(real, imag)) < 1e-12


def test_projection_tables_give_an_orthonormal_basis():
    """<Y_l'm', Y_lm> computed from Fourier coefficients and the projection tables is the identity."""
    lmax = 5
    coeff, proj = sh_to_fourier(lmax), projection_fourier(lmax, lmax)
    gram = np.zeros((so3.sh_dim(lmax), so3.sh_dim(lmax)))
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            col = so3.sh_index(l, m)
            for v, s in azimuth_fourier(m).items():
                gram[:, col] += (2 * np.pi * s * coeff[:, :, lmax - v] @ proj[col]).real
    assert np.abs(gram - np.eye(so3.sh_dim(lmax))).max() < 1e-13


@pytest.mark.parametrize("transform", ["fft", "direct"])
@pytest.mark.parametrize("normalization", ["component", "none"])
@pytest.mark.parametrize("weighted", [("in1", "out"), ("in1", "in2", "out")])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_equals_the_grid_backend(config, weighted, normalization, transform, generator):
    if "in2" in weighted and config == "mixed-mul":
        pytest.skip("'in2' weights need one multiplicity in x1")
    options = dict(weighted=weighted, normalization=normalization, dtype=torch.float64)
    fourier = make_tensor_product("gaunt", *CONFIGS[config], transform=transform, **options)
    grid = make_tensor_product("grid", *CONFIGS[config], transform="dense", **options)
    assert fourier.paths == grid.paths and fourier.weight_numel == grid.weight_numel
    assert fourier.output_scale == grid.output_scale
    x1 = randn(6, fourier.irreps_in1.dim, generator=generator)
    x2 = randn(6, fourier.irreps_in2.dim, generator=generator)
    w = randn(6, fourier.weight_numel, generator=generator)
    expected = grid(x1, x2, w)
    assert (fourier(x1, x2, w) - expected).abs().max() < 1e-12 * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("transform", ["fft", "direct"])
@settings(max_examples=15, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=random_configuration())
def test_equals_the_grid_backend_on_random_configurations(transform, config):
    assume(config is not None)
    fourier = make_tensor_product("gaunt", *config, transform=transform, dtype=torch.float64)
    grid = make_tensor_product("grid", *config, transform="dense", dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    x1, x2 = randn(4, fourier.irreps_in1.dim, generator=generator), randn(4, fourier.irreps_in2.dim, generator=generator)
    w = randn(4, fourier.weight_numel, generator=generator)
    assert (fourier(x1, x2, w) - grid(x1, x2, w)).abs().max() < 1e-12


def test_torus_grid_size_and_options():
    tp = make_tensor_product("gaunt", "2x0e+2x1o+2x2e", "0e+1o+2e", "2x0e+2x1o+2x2e")
    assert tp.grid_shape == (9, 7) and tp.transform == "fft"  # L12 = 4: 2*4+1 polar, 4+2+1 azimuthal samples
    tp = make_tensor_product("gaunt", "3x4e", "0e", "3x4e")
    assert tp.grid_shape == (9, 9)  # the input itself needs 2*4+1 azimuthal samples
    with pytest.raises(ValueError, match="transform"):
        make_tensor_product("gaunt", "2x1o", "1o", "2x0e", transform="dense")
    with pytest.raises(ValueError, match="gaunt"):
        make_tensor_product("gaunt", "2x1o", "1o", "2x1e")  # the cross product: an odd path only
