"""Shared math on the sphere and the rotation group, used by every tensor-product backend.

Real spherical harmonics in e3nn's convention (and in the 2D Fourier basis of the torus), exact product
quadrature rules, Clebsch-Gordan and Gaunt coefficients, random rotations and Wigner D matrices (for tests and
diagnostics).
"""

from ._coupling import clebsch_gordan_m0, gaunt_path_scale, gaunt_tensor, gaunt_w3j_factor
from ._fourier import azimuth_fourier, projection_fourier, sh_to_fourier, sine_integral, theta_fourier
from ._harmonics import (
    associated_legendre,
    azimuthal_harmonics,
    sh_dim,
    sh_index,
    spherical_harmonics,
    spherical_harmonics_angles,
)
from ._quadrature import S2Grid, exact_grid_size, gauss_legendre_grid
from ._rotation import random_rotation, wigner_D

__all__ = [
    "S2Grid",
    "associated_legendre",
    "azimuth_fourier",
    "azimuthal_harmonics",
    "clebsch_gordan_m0",
    "exact_grid_size",
    "gauss_legendre_grid",
    "gaunt_path_scale",
    "gaunt_tensor",
    "gaunt_w3j_factor",
    "projection_fourier",
    "random_rotation",
    "sh_dim",
    "sh_index",
    "sh_to_fourier",
    "sine_integral",
    "spherical_harmonics",
    "spherical_harmonics_angles",
    "theta_fourier",
    "wigner_D",
]
