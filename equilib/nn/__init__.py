"""Layers and models built from ``equilib.ops``: radial bases, interaction blocks, interatomic potentials (equivariant,
and a plain Cartesian backbone for frame averaging), point-cloud dynamics models, Hamiltonian flows of learned
energies."""

from ._hamiltonian import HamiltonianFlow
from ._interaction import InteractionBlock
from ._plain_potential import PlainPotential, PlainPotentialConfig
from ._point_cloud import EquivariantDynamicsNet, PlainDynamicsGNN, complete_graph
from ._pointnet import PointNet
from ._potential import EquivariantPotential, InteratomicPotential, PotentialConfig
from ._radial import BesselBasis, PolynomialCutoff

__all__ = ["BesselBasis", "EquivariantDynamicsNet", "EquivariantPotential", "HamiltonianFlow", "InteractionBlock",
           "InteratomicPotential", "PlainDynamicsGNN", "PlainPotential", "PlainPotentialConfig", "PointNet",
           "PolynomialCutoff", "PotentialConfig", "complete_graph"]
