"""Frame averaging (Puny et al., ICLR 2022): exact E(3)/SE(3)/O(3)/SO(3) equivariance for any backbone.

:func:`pca_frames` computes, per point cloud (a PyG ``batch`` vector or leading axes), the centroid and the PCA
frames: covariance eigenvectors with every sign choice (8 for O3/E3, the 4 proper ones for SO3/SE3), in one batched
``eigh``; degenerate spectra are detected (warn, raise or ignore). :func:`frame_set` adds exactly equivariant
tie-break frames where the spectrum is degenerate (a varying number per cloud). :class:`FrameAveraged` wraps a
backbone whose inputs and outputs are described by :mod:`equilib.groups` representations and averages it over the
frames (all of them, or one random frame per system in stochastic training), for systems of equal size or PyG
batches of graphs. See docs/frames.md.
"""

from ._averaging import FrameAveraged
from ._fa_gnn import FrameAveragedDynamicsGNN
from ._frame_set import FrameSet, frame_set, sample_frame_set
from ._pca import TOLERANCE, Frames, pca_frames, relative_gaps, sign_matrices
from ._potential import FrameAveragedPotential, FrameAveragedPotentialConfig

__all__ = ["TOLERANCE", "FrameAveraged", "FrameAveragedDynamicsGNN", "FrameAveragedPotential",
           "FrameAveragedPotentialConfig", "FrameSet", "Frames", "frame_set", "pca_frames", "relative_gaps",
           "sample_frame_set", "sign_matrices"]
