"""Atomic data: OC20-style graphs and neighbor lists (readers, writers and statistics follow)."""

from ._atomic_data import AtomicData, edge_vectors
from ._neighbors import neighbor_list

__all__ = ["AtomicData", "edge_vectors", "neighbor_list"]
