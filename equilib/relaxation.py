"""Structure relaxations with any ASE calculator, and OC20's IS2RS/IS2RE-style comparison with a reference.

A model relaxes the initial structure of an IS2RE record (``pos``, ``y_init``, ``y_relaxed``, ``pos_relaxed``, as
written by ``datasets/oc20_emt``); :func:`compare_relaxation` measures it against the reference relaxation:

- ``energy_error``: model energy at its relaxed structure minus the reference relaxed energy (IS2RE by relaxation);
- ``reference_energy_gap``: the *reference* calculator's energy at the model's relaxed structure minus the reference
  relaxed energy (did the model find a structure that is really as low? OC20 checks this with DFT);
- ``max_displacement``: the largest distance between a free atom's model-relaxed and reference-relaxed position
  (minimum image), and ``adwt``: OC20's average distance within threshold (Chanussot et al. 2021, IS2RS): the
  fraction of free atoms closer than a threshold to their reference position, averaged over thresholds 0.01 to
  0.5 A.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

ADWT_THRESHOLDS = np.arange(0.01, 0.5, 0.001)  # A, OC20's IS2RS thresholds

OPTIMIZERS = {"bfgs": BFGS, "fire": FIRE}


@dataclass
class Relaxation:
    """What a relaxation visited; ``steps`` is the number of optimizer steps taken (``len(energies) - 1``).

    Attributes:
        atoms: The final atoms (a copy of the input, with the calculator attached).
        energies: Potential energy at every visited structure, in eV.
        converged: Whether the largest force (and, with ``cell``, the cell force) met ``fmax``.
        fmax: Largest force norm on the final structure, in eV/A (fixed atoms count as zero).
        frames: A copy of the atoms at every visited structure.
    """

    atoms: Atoms
    energies: list[float] = field(default_factory=list)
    converged: bool = False
    fmax: float = float("nan")
    frames: list[Atoms] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.energies) - 1


def relax(atoms: Atoms, calculator, fmax: float = 0.05, steps: int = 300, optimizer: str = "bfgs",
          trajectory: str | None = None, logfile: str | None = None, cell: bool = False) -> Relaxation:
    """Relax a copy of ``atoms`` with ``calculator`` until max |F| <= ``fmax`` or ``steps`` steps.

    Constraints of ``atoms`` are kept. ``cell=True`` relaxes the cell too (ASE's ``FrechetCellFilter``; the
    calculator must give the stress): convergence then also asks the filter's cell forces to be below ``fmax``, while
    ``Relaxation.fmax`` stays the atoms' largest force.

    Args:
        atoms: The starting structure (not modified).
        calculator: Any ASE calculator.
        fmax: Force threshold in eV/A.
        steps: Largest number of optimizer steps.
        optimizer: ``"bfgs"`` or ``"fire"`` (ASE's).
        trajectory: ASE trajectory file the optimizer writes; None writes none.
        logfile: Optimizer log file (``"-"`` for stdout); None writes none.
        cell: Relax the cell as well.

    Returns:
        The :class:`Relaxation`.

    Raises:
        ValueError: If ``optimizer`` is unknown, ``fmax`` is not positive or ``steps`` is negative.

    Examples:
        >>> from ase.build import bulk
        >>> from ase.calculators.emt import EMT
        >>> from equilib.relaxation import relax
        >>> atoms = bulk("Cu", cubic=True)
        >>> atoms.rattle(0.05, seed=0)
        >>> result = relax(atoms, EMT(), fmax=0.01)
        >>> result.converged, result.fmax <= 0.01, len(result.frames) == result.steps + 1
        (True, True, True)
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    if fmax <= 0 or steps < 0:
        raise ValueError(f"fmax, steps: expected fmax > 0 and steps >= 0, got {fmax}, {steps}")
    atoms = atoms.copy()
    atoms.calc = calculator
    result = Relaxation(atoms)
    target = FrechetCellFilter(atoms) if cell else atoms
    run = OPTIMIZERS[optimizer](target, trajectory=trajectory, logfile=logfile)
    for _ in run.irun(fmax=fmax, steps=steps):
        result.energies.append(float(atoms.get_potential_energy()))
        result.frames.append(atoms.copy())
    result.fmax = _largest_force(atoms)  # constrained: fixed atoms report zero, as the optimizer sees them
    result.converged = (_largest_force(target) if cell else result.fmax) <= fmax
    return result


def _largest_force(atoms) -> float:
    """The largest force norm of ``atoms`` (or of a filter's degrees of freedom); 0 without any."""
    return float(np.linalg.norm(atoms.get_forces(), axis=1).max()) if len(atoms) else 0.0


def minimum_image_distances(positions: np.ndarray, reference: np.ndarray, cell: np.ndarray,
                            pbc: np.ndarray) -> np.ndarray:
    """Per-atom distance between two position sets of one cell, each displacement wrapped to its minimum image.

    Wrapped along the periodic directions only; exact for displacements shorter than half the cell's widths.

    Args:
        positions: (n, 3) positions in Angstrom.
        reference: (n, 3) reference positions.
        cell: (3, 3) cell, rows = lattice vectors.
        pbc: Three bools, the periodic directions.

    Returns:
        (n,) distances in Angstrom.

    Examples:
        >>> import numpy as np
        >>> from equilib.relaxation import minimum_image_distances
        >>> cell = 4.0 * np.eye(3)
        >>> minimum_image_distances([[0.1, 0, 0], [0, 0, 0]], [[3.9, 0, 0], [0, 0, 0.2]], cell, [True, True, True])
        array([0.2, 0.2])
    """
    delta = np.asarray(positions, dtype=float) - np.asarray(reference, dtype=float)
    pbc = np.asarray(pbc, dtype=bool)
    if pbc.any():
        fractional = np.linalg.solve(np.asarray(cell, dtype=float).T, delta.T).T
        fractional[:, pbc] -= np.round(fractional[:, pbc])
        delta = fractional @ np.asarray(cell, dtype=float)
    return np.linalg.norm(delta, axis=1)


def average_distance_within_threshold(distances: np.ndarray, thresholds: np.ndarray = ADWT_THRESHOLDS) -> float:
    """OC20's ADwT for one structure: the fraction of atoms closer than each threshold, averaged over the thresholds.

    Args:
        distances: (n,) per-atom distances to the reference, in Angstrom.
        thresholds: Thresholds in Angstrom; default OC20's 0.01 to 0.5 A in steps of 0.001.

    Returns:
        The ADwT in [0, 1].

    Raises:
        ValueError: If ``distances`` is empty.

    Examples:
        >>> import numpy as np
        >>> from equilib.relaxation import average_distance_within_threshold
        >>> average_distance_within_threshold(np.array([0.005, 1.0]), thresholds=np.array([0.01, 0.1]))
        0.5
    """
    distances = np.asarray(distances, dtype=float)
    if distances.size == 0:
        raise ValueError("distances: expected at least one atom")
    return float((distances[None, :] < np.asarray(thresholds)[:, None]).mean())


def compare_relaxation(model_calculator, reference_calculator, record, fmax: float = 0.05, steps: int = 300,
                       rerun_reference: bool = False) -> dict:
    """Relax an IS2RE record's initial structure with the model and compare with its reference relaxation.

    The reference calculator (e.g. EMT) gives raw energies; the record's ``y_init`` fixes the offset between the two.

    Args:
        model_calculator: ASE calculator of the model.
        reference_calculator: ASE calculator of the reference (the one the record was relaxed with).
        record: An :class:`~equilib.data.AtomicData` with ``y_init``, ``y_relaxed`` and ``pos_relaxed`` (referenced
            energies as in OC20).
        fmax: Force threshold of the model's relaxation, eV/A.
        steps: Largest number of optimizer steps.
        rerun_reference: Also relax the initial structure with the reference calculator.

    Returns:
        A dict with ``sid``, ``converged``, ``steps``, ``energy`` (the model's final energy), ``reference_energy``
        (``y_relaxed``), ``energy_error``, ``reference_energy_gap``, ``max_displacement`` and ``adwt`` (the metrics
        of the module docstring, displacements over the free atoms), and the curves ``model_energies``,
        ``reference_energies_along_model`` and, with ``rerun_reference``, ``reference_energies``.

    Raises:
        ValueError: If ``record`` lacks ``y_init``, ``y_relaxed`` or ``pos_relaxed``.
    """
    for key in ("y_init", "y_relaxed", "pos_relaxed"):
        if key not in record:
            raise ValueError(f"record: expected an IS2RE record with {key!r} (keys: {sorted(record.keys())})")
    initial = record.to_ase()
    free = ~record.fixed.numpy()
    reference_atoms = initial.copy()
    reference_atoms.calc = reference_calculator
    offset = float(reference_atoms.get_potential_energy()) - float(record.y_init)
    model = relax(initial, model_calculator, fmax=fmax, steps=steps)
    reference_along_model = []
    for frame in model.frames:
        frame.calc = reference_calculator
        reference_along_model.append(float(frame.get_potential_energy()) - offset)
    reference_at_model = reference_along_model[-1]  # the last frame is the relaxed structure
    y_relaxed = float(record.y_relaxed)
    distances = minimum_image_distances(model.atoms.positions, record.pos_relaxed.double().numpy(),
                                        initial.cell.array, initial.pbc)[free]
    result = {
        "sid": int(record.sid) if "sid" in record else None,
        "converged": model.converged,
        "steps": model.steps,
        "energy": model.energies[-1],
        "reference_energy": y_relaxed,
        "energy_error": model.energies[-1] - y_relaxed,
        "reference_energy_gap": reference_at_model - y_relaxed,
        "max_displacement": float(distances.max()),
        "adwt": average_distance_within_threshold(distances),
        "model_energies": model.energies,
        "reference_energies_along_model": reference_along_model,
    }
    if rerun_reference:
        rerun = relax(initial, reference_calculator, fmax=fmax, steps=steps)
        result["reference_energies"] = [e - offset for e in rerun.energies]
    return result
