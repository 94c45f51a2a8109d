"""Layers and models built from ``equilib.ops``: radial bases, interaction blocks, interatomic potentials."""

from ._interaction import InteractionBlock
from ._potential import EquivariantPotential, PotentialConfig
from ._radial import BesselBasis, PolynomialCutoff

__all__ = ["BesselBasis", "EquivariantPotential", "InteractionBlock", "PolynomialCutoff", "PotentialConfig"]
