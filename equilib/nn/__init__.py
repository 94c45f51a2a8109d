"""Layers and models built from ``equilib.ops``: radial bases, interaction blocks, interatomic potentials, point-cloud
dynamics models."""

from ._interaction import InteractionBlock
from ._point_cloud import EquivariantDynamicsNet, PlainDynamicsGNN, complete_graph
from ._potential import EquivariantPotential, PotentialConfig
from ._radial import BesselBasis, PolynomialCutoff

__all__ = ["BesselBasis", "EquivariantDynamicsNet", "EquivariantPotential", "InteractionBlock", "PlainDynamicsGNN",
           "PolynomialCutoff", "PotentialConfig", "complete_graph"]
