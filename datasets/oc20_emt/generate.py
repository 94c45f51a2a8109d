"""OC20-style adsorbate-slab data from ASE's EMT calculator (recipe in the spirit of Chanussot et al. 2021, OC20).

Slabs: fcc(111), fcc(100), fcc(211) of Al, Cu, Ag, Au, Ni, Pd, Pt; adsorbates built from C, H, N, O placed at
ontop, bridge or hollow sites (triangles of surface atoms), randomly rattled, relaxed with BFGS with the bottom
layers fixed. Every relaxation frame is an S2EF frame; every relaxation gives one IS2RE target. Energies are
referenced as OC20's are: E(adslab) - E(relaxed clean slab) - sum of gas-phase references of the adsorbate atoms
(H from H2, O from O2, N from N2, C from CO - O), all with EMT. Tags follow OC20: 0 subsurface (fixed),
1 surface (within 3 A of the top atom), 2 adsorbate. Deterministic from the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import fcc100, fcc111, fcc211
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.data import covalent_radii
from ase.optimize import BFGS

METALS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
FACETS = {"111": (fcc111, (2, 2, 4)), "100": (fcc100, (2, 2, 4)), "211": (fcc211, (3, 2, 3))}
# Adsorbates: symbols and positions relative to the binding atom (first), which sits at the site.
ADSORBATES = {
    "O": ("O", [[0, 0, 0]]),
    "H": ("H", [[0, 0, 0]]),
    "N": ("N", [[0, 0, 0]]),
    "C": ("C", [[0, 0, 0]]),
    "OH": ("OH", [[0, 0, 0], [0, 0, 0.97]]),
    "CO": ("CO", [[0, 0, 0], [0, 0, 1.15]]),
    "CH": ("CH", [[0, 0, 0], [0, 0, 1.10]]),
    "NH": ("NH", [[0, 0, 0], [0, 0, 1.03]]),
    "CH2": ("CH2", [[0, 0, 0], [0.9, 0, 0.6], [-0.9, 0, 0.6]]),
    "NH2": ("NH2", [[0, 0, 0], [0.85, 0, 0.55], [-0.85, 0, 0.55]]),
}
# Out-of-distribution splits, as OC20 holds out adsorbates and catalysts. OC20's held-out catalysts are unseen
# materials made of elements seen in training; here they are unseen (metal, facet) surfaces of seen metals.
OOD_ADSORBATES = ("CH2", "NH2")
OOD_CATALYSTS = (("Pd", "111"), ("Au", "211"), ("Ni", "100"))
CATALYSTS = tuple((metal, facet) for metal in METALS for facet in FACETS)
SPLITS = ("train", "val_id", "val_ood_ads", "val_ood_cat", "val_ood_both")
SURFACE_DEPTH = 3.0  # A below the top atom that count as surface (free); deeper atoms are fixed
RATTLE = 0.03  # A, standard deviation of the random displacement of each free atom's start
SEED_BOUND = 2**31  # each system's placement seed is drawn from [0, SEED_BOUND)


@dataclass(frozen=True)
class System:
    """One relaxation: which slab, which adsorbate, which site, and the seed of its random placement."""

    sid: int
    metal: str
    facet: str
    adsorbate: str
    seed: int

    @property
    def split_group(self) -> str:
        ood_ads, ood_cat = self.adsorbate in OOD_ADSORBATES, (self.metal, self.facet) in OOD_CATALYSTS
        return {(False, False): "id", (True, False): "val_ood_ads", (False, True): "val_ood_cat",
                (True, True): "val_ood_both"}[(ood_ads, ood_cat)]


def slab(metal: str, facet: str) -> Atoms:
    """The clean slab with OC20 tags and its subsurface fixed."""
    build, size = FACETS[facet]
    atoms = build(metal, size, vacuum=7.0)
    z = atoms.positions[:, 2]
    surface = z > z.max() - SURFACE_DEPTH
    atoms.set_tags(surface.astype(int))
    atoms.set_constraint(FixAtoms(mask=~surface))
    return atoms


def place_adsorbate(atoms: Atoms, adsorbate: str, rng: np.random.Generator) -> Atoms:
    """Put ``adsorbate`` at a random ontop, bridge or hollow site of the top layer, lifted until no atom is closer
    to the surface than the sum of covalent radii, then rattled."""
    symbols, rel = ADSORBATES[adsorbate]
    z = atoms.positions[:, 2]
    top = np.flatnonzero(z > z.max() - 0.5)
    first = rng.choice(top)
    # Periodic images of the top atoms near the chosen one, to form bridge and hollow sites.
    cell = atoms.cell.array
    images = [atoms.positions[i] + a * cell[0] + b * cell[1] for i in top for a in (-1, 0, 1) for b in (-1, 0, 1)]
    images = np.array(images)
    order = np.argsort(np.linalg.norm(images[:, :2] - atoms.positions[first, :2], axis=1))
    n_site = rng.integers(1, 4)  # 1 ontop, 2 bridge, 3 hollow
    site = images[order[:n_site]].mean(0)
    height = {1: 1.9, 2: 1.6, 3: 1.3}[int(n_site)] + rng.normal(0, 0.15)
    anchor = np.array([site[0], site[1], z.max() + height]) + np.append(rng.normal(0, 0.2, 2), 0)
    angle = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    ads = Atoms(symbols, positions=anchor + np.asarray(rel, dtype=float) @ rot.T, tags=[2] * len(rel))
    _lift_clear_of(ads, atoms)
    combined = atoms.copy()
    combined.extend(ads)
    combined.set_constraint(FixAtoms(mask=combined.get_tags() == 0))
    free = combined.get_tags() > 0
    combined.positions[free] += rng.normal(0, RATTLE, (int(free.sum()), 3))
    return combined


def _lift_clear_of(ads: Atoms, surface: Atoms, factor: float = 1.0, step: float = 0.05) -> None:
    """Raise ``ads`` in z until every adsorbate-surface distance (periodic images included) is at least
    ``factor`` times the sum of covalent radii, so that no start has atoms nearly on top of each other."""
    images = [surface.positions + a * surface.cell[0] + b * surface.cell[1] for a in (-1, 0, 1) for b in (-1, 0, 1)]
    images = np.concatenate(images)
    radii = np.tile(covalent_radii[surface.numbers], 9)
    closest = factor * (covalent_radii[ads.numbers][:, None] + radii[None, :])
    while (np.linalg.norm(ads.positions[:, None] - images[None], axis=-1) < closest).any():
        ads.positions[:, 2] += step


def relax(atoms: Atoms, fmax: float = 0.05, steps: int = 150) -> list[Atoms]:
    """BFGS relaxation with EMT; every visited structure with its energy and (unconstrained) forces."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    frames = []
    optimizer = BFGS(atoms, logfile=None)
    for _ in optimizer.irun(fmax=fmax, steps=steps):
        frame = atoms.copy()
        frame.info["energy"] = atoms.get_potential_energy()
        frame.arrays["forces"] = atoms.get_forces(apply_constraint=False)
        frames.append(frame)
    return frames


def gas_references() -> dict[str, float]:
    """EMT energies per atom of H, O, N from relaxed H2, O2, N2, and of C from CO minus O."""

    def relaxed(symbols, distance):
        molecule = Atoms(symbols, positions=[[0, 0, 0], [0, 0, distance]], cell=[12, 12, 12])
        return relax(molecule, fmax=0.01, steps=200)[-1].info["energy"]

    ref = {"H": relaxed("H2", 0.74) / 2, "O": relaxed("O2", 1.21) / 2, "N": relaxed("N2", 1.10) / 2}
    ref["C"] = relaxed("CO", 1.13) - ref["O"]
    return ref


def systems(n_systems: int, seed: int, ood_fraction: float = 0.15) -> list[System]:
    """``n_systems`` (metal, facet, adsorbate) draws, stratified: a fraction ``ood_fraction`` of them has a held-out
    catalyst, the same fraction a held-out adsorbate (so ``ood_fraction^2`` both), each group at least once when
    ``n_systems >= 4``; the order is shuffled."""
    if not 0 <= ood_fraction < 1:
        raise ValueError(f"ood_fraction: expected a number in [0, 1), got {ood_fraction!r}")
    rng = np.random.default_rng(seed)
    at_least = 1 if n_systems >= 4 else 0
    n_both = max(at_least, round(n_systems * ood_fraction**2))
    n_one = max(at_least, round(n_systems * ood_fraction * (1 - ood_fraction)))
    groups = [(True, True)] * n_both + [(True, False)] * n_one + [(False, True)] * n_one
    groups = (groups + [(False, False)] * n_systems)[:n_systems]
    rng.shuffle(groups)
    id_catalysts = [c for c in CATALYSTS if c not in OOD_CATALYSTS]
    id_ads = [a for a in ADSORBATES if a not in OOD_ADSORBATES]
    out = []
    for sid, (ood_cat, ood_ads) in enumerate(groups):
        catalysts = OOD_CATALYSTS if ood_cat else id_catalysts
        metal, facet = catalysts[rng.integers(len(catalysts))]
        adsorbate = rng.choice(OOD_ADSORBATES if ood_ads else id_ads)
        out.append(System(sid, metal, facet, str(adsorbate), int(rng.integers(SEED_BOUND))))
    return out


def subsample(n_frames: int, keep: int) -> list[int]:
    """Indices of ``keep`` frames spread evenly over a trajectory of ``n_frames``, first and last included (all
    frames when ``keep`` is 0 or at least ``n_frames``); OC20 likewise samples S2EF frames from its trajectories."""
    if keep < 0:
        raise ValueError(f"keep: expected a number >= 0, got {keep}")
    if keep == 0 or keep >= n_frames:
        return list(range(n_frames))
    if keep == 1:
        return [n_frames - 1]
    return sorted({round(k * (n_frames - 1) / (keep - 1)) for k in range(keep)})


def assign_split(system: System, val_fraction: float, seed: int) -> str:
    """OOD groups by their held-out elements; in-distribution systems to train or val_id by a seeded hash."""
    group = system.split_group
    if group != "id":
        return group
    return "val_id" if np.random.default_rng([seed, system.sid]).random() < val_fraction else "train"
