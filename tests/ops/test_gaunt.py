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
        real = quad(lambda b, k=k: math.sin(b) * math.cos(k * b), 0, math.pi)[0]
        imag = quad(lambda b, k=k: math.sin(b) * math.sin(k * b), 0, math.pi)[0]
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
    assert torch.equal(fourier.path_weights(w), grid.path_weights(w))  # one weight layout
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
    x1 = randn(4, fourier.irreps_in1.dim, generator=generator)
    x2 = randn(4, fourier.irreps_in2.dim, generator=generator)
    w = randn(4, fourier.weight_numel, generator=generator)
    assert (fourier(x1, x2, w) - grid(x1, x2, w)).abs().max() < 1e-12


def test_torus_grid_size_and_options():
    tp = make_tensor_product("gaunt", "2x0e+2x1o+2x2e", "0e+1o+2e", "2x0e+2x1o+2x2e")
    assert tp.grid_shape == (5, 7)  # L12 = 4: 4+1 polar nodes in [0, pi], 4+2+1 azimuths
    assert tp.transform == "direct"  # single-channel x2
    assert make_tensor_product("gaunt", "2x0e+2x1o", "0e+1o", "2x0e+2x1o").transform == "direct"  # L12 = 2 too
    assert make_tensor_product("gaunt", "3x0e+3x1o", "3x0e+3x1o", "3x0e+3x1o").transform == "fft"  # 'uuu'
    tp = make_tensor_product("gaunt", "3x0e+3x1o", "0e+1o", "3x0e+3x1o", weighted=("in1", "in2", "out"))
    assert tp.transform == "fft"  # 'in2' weights make x2 one signal per channel
    assert make_tensor_product("gaunt", "3x4e", "0e", "3x4e").grid_shape == (5, 9)
    with pytest.raises(ValueError, match="transform"):
        make_tensor_product("gaunt", "2x1o", "1o", "2x0e", transform="dense")
    with pytest.raises(ValueError, match="gaunt"):
        make_tensor_product("gaunt", "2x1o", "1o", "2x1e")  # the cross product: an odd path only


def test_analysis_gives_the_signal_on_the_torus_grid(generator):
    """Per-m Fourier tables, inverse DCT/DST and azimuthal DFT reproduce sum x_lm Y_lm at the torus nodes."""
    ls = [0, 1, 2, 3]
    tp = make_tensor_product("gaunt", "0e+1o+2e+3o", "0e+1o+2e+3o", "0e+1o+2e+3o", transform="fft",
                             dtype=torch.float64)
    tables = tp._tables
    layout = tables.layout(ls, "separable")
    x = randn(3, so3.sh_dim(3), generator=generator)
    columns = torch.stack([x[:, so3.sh_index(*col)] if col else torch.zeros(3, dtype=x.dtype) for col in layout], -1)
    order_major = columns.T.reshape(2 * max(ls) + 1, len(ls), 3, 1)  # (n_m, n_l, batch, 1)
    values = tables.analysis_module(ls, "fft", torch.float64)(order_major)  # (n_a, n_b, batch, 1)
    a, b = np.meshgrid(tables.a, tables.b, indexing="ij")
    points = np.stack([np.sin(b) * np.sin(a), np.cos(b), np.sin(b) * np.cos(a)], -1).reshape(-1, 3)
    expected = torch.as_tensor(so3.spherical_harmonics(3, points)) @ x.T  # (n_a n_b, batch)
    assert (values.reshape(-1, 3) - expected).abs().max() < 1e-12


def test_azimuth_product_table_multiplies_the_azimuthal_functions():
    tp = make_tensor_product("gaunt", "0e+1o+2e", "0e+1o+2e", "0e+1o+2e+3o+4e", transform="direct")
    tables = tp._tables
    s_in, s_out = tables.azimuth_basis(tables.lmax), tables.azimuth_basis(tables.lout)  # (n_a, orders)
    table = tables.azimuth_product()
    for i, m1 in enumerate(range(-tables.lmax, tables.lmax + 1)):
        for j, m2 in enumerate(range(-tables.lmax, tables.lmax + 1)):
            if abs(m1) + abs(m2) <= tables.lout:  # the product's frequencies stay within the outputs
                assert np.abs(s_in[:, i] * s_in[:, j] - s_out @ table[j, i]).max() < 1e-13
