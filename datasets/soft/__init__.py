"""PER's mixed-symmetry regression tasks (Kim et al., ICML 2023) and EMLP's Inertia and O5Synthetic (Finzi et al.,
ICML 2021), regenerated from their published definitions (see README.md in this folder)."""

from .generate import DEFAULTS, TASKS, default_name, make_task

__all__ = ["DEFAULTS", "TASKS", "default_name", "make_task"]
