"""The ASE calculator: energies, forces and stress of an equilib potential (or a committee of them), and
:func:`load_potential`, which reads any equilib potential file.

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
from .frames import FrameAveragedPotential
from .nn import EquivariantPotential, InteratomicPotential, PlainPotential
from .nn._potential import _read_model_file

POTENTIALS = {cls.__name__: cls for cls in (EquivariantPotential, PlainPotential, FrameAveragedPotential)}
EXPECTED = "an EquivariantPotential, PlainPotential or FrameAveragedPotential"


def load_potential(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> InteratomicPotential:
    """Any equilib potential saved by its ``save`` method: the class is the one the file's ``kind`` names.

    Args:
        path: The file.
        map_location: Device to load onto (CPU by default).

    Returns:
        The :class:`~equilib.nn.EquivariantPotential`, :class:`~equilib.nn.PlainPotential` or
        :class:`~equilib.frames.FrameAveragedPotential`, in the dtype it was saved in.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not an equilib model file, or its kind is none of these.
    """
    kind = _read_model_file(path, "cpu")["kind"]
    if kind not in POTENTIALS:
        raise ValueError(f"{path}: not an equilib potential file (kind {kind!r}; expected one of "
                         f"{', '.join(POTENTIALS)})")
    return POTENTIALS[kind].load(path, map_location=map_location)


class EquilibCalculator(Calculator):
    """An ASE calculator for an equilib potential, or the mean of a committee of them.

    Any :class:`~equilib.nn.InteratomicPotential`: an :class:`~equilib.nn.EquivariantPotential`, a
    :class:`~equilib.nn.PlainPotential` or a :class:`~equilib.frames.FrameAveragedPotential` (files are read by
    :func:`load_potential`).

    Properties: ``energy`` and ``free_energy`` (eV), per-atom ``energies``, ``forces`` (eV/A) and ``stress`` (eV/A^3,
    Voigt order, periodic cells only); with several models also ``energy_var``, ``forces_var`` (and ``stress_var``),
    the variances across the committee.

    Args:
        model: A model, a path to a saved model, or a non-empty list of them (a committee with one cutoff).
        device: Torch device the models run on.
        dtype: Convert the models to this dtype (``"float64"`` or a torch dtype); None keeps theirs.
        **kwargs: Passed to ``ase.calculators.calculator.Calculator``.

    Raises:
        ValueError: If the list is empty, the committee's cutoffs differ, or a file is not an equilib model.
        TypeError: If an entry is neither a model nor a path.
        FileNotFoundError: If a path does not exist.

    Examples:
        >>> import torch
        >>> from ase.build import molecule
        >>> from equilib.calculator import EquilibCalculator
        >>> from equilib.nn import EquivariantPotential, PotentialConfig
        >>> _ = torch.manual_seed(0)
        >>> config = PotentialConfig(species=[1, 8], cutoff=3.0, channels=4, lmax=1, num_layers=1, num_radial=4,
        ...                          radial_hidden=8)
        >>> atoms = molecule("H2O")
        >>> atoms.calc = EquilibCalculator(EquivariantPotential(config), dtype="float64")
        >>> type(atoms.get_potential_energy()), atoms.get_forces().shape
        (<class 'float'>, (3, 3))
    """

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
                m = load_potential(m, map_location=self.device)
            if not isinstance(m, InteratomicPotential):
                raise TypeError(f"model: expected {EXPECTED} (or a path to one), got {type(m).__name__}")
            if dtype is not None:
                m = m.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
            loaded.append(m.to(self.device).eval())
        cutoffs = {m.cutoff for m in loaded}
        if len(cutoffs) != 1:
            raise ValueError(f"model: a committee needs one cutoff, got {sorted(cutoffs)}")
        self.models = loaded
        self.cutoff = cutoffs.pop()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Compute the properties of ``atoms`` (ASE's calculator interface; called by ``atoms.get_*``).

        Args:
            atoms: The structure; None uses the calculator's current atoms.
            properties: The properties asked for; ``"stress"`` among them also computes the stress.
            system_changes: What changed since the last call (ASE's list).

        Raises:
            PropertyNotImplementedError: If the stress is asked for and the cell is not periodic in all three
                directions.
            ValueError: If the structure holds an element the model does not know (or fails validation).
        """
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
