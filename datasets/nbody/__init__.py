"""EGNN's charged-particle n-body data (nbody_small), generated deterministically (see README.md in this folder)."""

from .generate import N_FRAMES, SPLITS, TASK_FRAMES, baselines, task

__all__ = ["N_FRAMES", "SPLITS", "TASK_FRAMES", "baselines", "task"]
