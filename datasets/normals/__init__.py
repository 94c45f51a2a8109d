"""Point clouds with true unit normals (analytic surfaces and the pyvista wheel's meshes) for the normal-estimation
task of Frame Averaging (see README.md in this folder); read the file with :class:`equilib.data.NormalsDataset`."""

from .generate import ANALYTIC, MESH_FILES, SPLITS

__all__ = ["ANALYTIC", "MESH_FILES", "SPLITS"]
