"""Atomic data: OC20-style graphs, neighbor lists, readers/writers (OC20 LMDB, ASE-LMDB, ase.io), statistics;
point-cloud dynamics (n-body) data; QM9 molecules."""

from ._ase_formats import AseIoReader, AseLmdbReader, write_ase_io, write_ase_lmdb
from ._atomic_data import MAX_ATOMIC_NUMBER, AtomicData, batch_index, edge_vectors
from ._dataset import AtomicDataset, detect_format
from ._nbody import NBodyDataset
from ._neighbors import edge_vectors_and_lengths, neighbor_list
from ._normals import NormalsDataset
from ._oc20_lmdb import OC20LmdbReader, write_oc20_lmdb
from ._qm9 import QM9Dataset
from ._statistics import force_rms, mean_neighbors, per_element_energies, require_labels

__all__ = [
    "MAX_ATOMIC_NUMBER",
    "AseIoReader",
    "AseLmdbReader",
    "AtomicData",
    "AtomicDataset",
    "NBodyDataset",
    "NormalsDataset",
    "OC20LmdbReader",
    "QM9Dataset",
    "batch_index",
    "detect_format",
    "edge_vectors",
    "edge_vectors_and_lengths",
    "force_rms",
    "mean_neighbors",
    "neighbor_list",
    "per_element_energies",
    "require_labels",
    "write_ase_io",
    "write_ase_lmdb",
    "write_oc20_lmdb",
]
