"""QM9 as point clouds, converted from the qm9pack wheel's CSV files (see README.md in this folder)."""

from .generate import SPLITS, TARGETS
from .reader import QM9

__all__ = ["QM9", "SPLITS", "TARGETS"]
