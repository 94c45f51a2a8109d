"""EMLP's double spring pendulum (O(2) about z exact) and RPP's windy one (O(2) about z slightly broken), generated
deterministically for soft-equivariance experiments (see README.md in this folder)."""

from .generate import SPLITS, SYSTEMS, flow, generate, hamiltonian, vector_field

__all__ = ["SPLITS", "SYSTEMS", "flow", "generate", "hamiltonian", "vector_field"]
