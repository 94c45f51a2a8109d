"""The ASE calculator: energies, forces and stress of an equilib potential (or a committee of them).

Follows ASE's calculator conventions (as MACE's calculator does): eV, Angstrom, eV/A, stress in eV/A^3 in Voigt
order (xx, yy, zz, yz, xz, xy), ``free_energy`` equal to ``energy``, per-atom ``energies``; results are recomputed
only when ``check_state`` sees the atoms change. With several models the results are committee means, and
``energy_var``, ``forces_var`` (and ``stress_var``) hold the variances across the committee.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .data import AtomicData
from .nn import EquivariantPotential


class EquilibCalculator(Calculator):
    """``EquilibCalculator(model_or_path_or_list, device="cpu", dtype=None)``; ``dtype`` converts the models."""

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None, **kwargs):
        super().__init__(**kwargs)
        models = model if isinstance(model, (list, tuple)) else [model]
        if not models:
            raise ValueError("model: expected a model, a path, or a non-empty list of them")
        self.device = torch.device(device)
        loaded = []
        for m in models:
            if isinstance(m, (str, os.PathLike)):
                m = EquivariantPotential.load(m, map_location=self.device)
            if not isinstance(m, EquivariantPotential):
                raise TypeError(f"model: expected an EquivariantPotential or a path to one, got {type(m).__name__}")
            if dtype is not None:
                m = m.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
            loaded.append(m.to(self.device).eval())
        cutoffs = {m.config.cutoff for m in loaded}
        if len(cutoffs) != 1:
            raise ValueError(f"model: a committee needs one cutoff, got {sorted(cutoffs)}")
        self.models = loaded
        self.cutoff = cutoffs.pop()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        if want_stress and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress: needs a cell periodic in all three directions")
        data = AtomicData.from_ase(self.atoms, cutoff=self.cutoff, labels=False).to(self.device)
        outputs = []
        for model in self.models:
            out = model(data, compute_forces=True, compute_stress=want_stress)
            outputs.append({k: v.detach().double().cpu().numpy() for k, v in out.items()})
        stacked = {k: np.stack([o[k] for o in outputs]) for k in outputs[0]}
        mean = {k: v.mean(0) for k, v in stacked.items()}
        self.results["energy"] = self.results["free_energy"] = float(mean["energy"][0])
        self.results["energies"] = mean["energies"]
        self.results["forces"] = mean["forces"]
        if want_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(mean["stress"][0])
        if len(self.models) > 1:
            self.results["energy_var"] = float(stacked["energy"][:, 0].var())
            self.results["forces_var"] = stacked["forces"].var(0)
            if want_stress:
                self.results["stress_var"] = full_3x3_to_voigt_6_stress(stacked["stress"][:, 0].var(0))
