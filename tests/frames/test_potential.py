"""Frame-averaged potentials (global and local PCA frames): exact E(3) invariance where the plain backbone has none,
forces against finite differences (molecule, periodic slab, stress of a bulk cell), batches, periodic images,
stochastic frames, degenerate spectra, save/load, the ASE calculator and a short training run."""

import warnings

import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.optimize import BFGS
from torch_geometric.data import Batch

from equilib.calculator import EquilibCalculator, load_potential
from equilib.data import AtomicData, write_ase_io
from equilib.frames import FrameAveragedPotential, FrameAveragedPotentialConfig
from equilib.groups import E3, SE3, GroupElement, Positions, Scalars, Vectors, assert_equivariant, equivariance_error
from equilib.nn import PlainPotential, PlainPotentialConfig
from equilib.so3 import random_rotation
from tests import potentials
from tests.potentials import CUTOFF, data_of, force_difference, rattled, strained, stress_difference

MODES = ["global", "local"]


def backbone(seed=0, dtype="float64", perturb=0.3):
    """A small plain potential, its weights moved away from the initialisation (seeded) so that it leans on the edge
    directions as a trained one may: at initialisation the energy hardly depends on them."""
    torch.manual_seed(seed)
    model = PlainPotential(PlainPotentialConfig(species=[1, 6, 8, 29], cutoff=CUTOFF, channels=8, num_layers=2,
                                                avg_num_neighbors=10.0, e0s={29: -0.3, 8: -1.0}, dtype=dtype))
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype))
    return model


def ethanol():
    return rattled(molecule("CH3CH2OH"), 0, 0.05)


def adslab():
    return potentials.adslab(seed=1)


def bulk_cell():
    return strained(rattled(bulk("Cu", "fcc", a=3.6, cubic=True), 2, 0.1), 3)


def elements(generator, count=4):
    """E(3) elements, half of them improper, with translations."""
    rotations = random_rotation(count, generator=generator)
    rotations[::2] *= -1.0
    translations = 3.0 * torch.randn(count, 3, generator=generator, dtype=torch.float64)
    return GroupElement(linear=rotations, translation=translations)


def as_function(model, data, output):
    """The model's energy or forces as a function of positions and cell (the neighbor list stays valid)."""
    def fn(pos, cell):
        moved = data.clone()
        moved.pos, moved.cell = pos, cell
        return model(moved, compute_forces=output == "forces")[output]
    return fn


STRUCTURES = {"molecule": ethanol, "slab": adslab, "bulk": bulk_cell}


@pytest.mark.parametrize("structure", STRUCTURES)
def test_energy_invariant_forces_equivariant_where_the_backbone_is_not(structure, generator):
    plain = backbone()
    data = data_of(STRUCTURES[structure]())
    g = elements(generator)
    inputs, in_reps = (data.pos, data.cell), (Positions(), Vectors())
    for mode in MODES:
        model = FrameAveragedPotential(plain, frames=mode)
        assert_equivariant(as_function(model, data, "energy"), E3(), inputs, in_reps, Scalars(), elements=g)
        assert_equivariant(as_function(model, data, "forces"), E3(), inputs, in_reps, Vectors(), elements=g)
    error = equivariance_error(as_function(plain, data, "forces"), E3(), inputs, in_reps, Vectors(), elements=g)
    assert error > 1e-3  # the backbone alone is far from equivariant (so the checks above can fail)
    energy_error = equivariance_error(as_function(plain, data, "energy"), E3(), inputs, in_reps, Scalars(), elements=g)
    assert energy_error > 1e-5


def test_proper_frames_are_invariant_under_rotations_only(generator):
    data = data_of(ethanol())
    model = FrameAveragedPotential(backbone(), frames="global", group="SE3")
    assert model.num_frames == 4
    fn, inputs, in_reps = as_function(model, data, "energy"), (data.pos, data.cell), (Positions(), Vectors())
    assert_equivariant(fn, SE3(), inputs, in_reps, Scalars(), generator=generator)
    mirror = GroupElement(linear=-torch.eye(3, dtype=torch.float64).unsqueeze(0))
    assert equivariance_error(fn, E3(), inputs, in_reps, Scalars(), elements=mirror) > 1e-6


def _finite_difference_check(model, atoms, eps=1e-5):
    forces = model(data_of(atoms))["forces"].detach().numpy()
    fd = np.array([[force_difference(model, atoms, atom, axis, eps) for axis in range(3)]
                   for atom in range(len(atoms))])
    scale = np.abs(forces).max()
    assert scale > 1e-2
    return np.abs(forces - fd).max() / scale


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("structure", ["molecule", "slab"])
def test_forces_are_minus_the_energy_gradient_frames_included(mode, structure):
    model = FrameAveragedPotential(backbone(), frames=mode)
    assert _finite_difference_check(model, STRUCTURES[structure]()) < 1e-6


@pytest.mark.parametrize("mode", MODES)
def test_stress_is_the_strain_derivative_over_volume(mode):
    model, atoms = FrameAveragedPotential(backbone(), frames=mode), bulk_cell()
    stress = model(data_of(atoms), compute_stress=True)["stress"][0].detach().numpy()
    for i, j in [(0, 0), (1, 2), (2, 1), (0, 1)]:
        assert stress[i, j] == pytest.approx(stress_difference(model, atoms, i, j), abs=1e-8)
    assert np.abs(stress - stress.T).max() < 1e-12 and np.abs(stress).max() > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_batches_of_different_sizes_equal_one_at_a_time(mode):
    model = FrameAveragedPotential(backbone(), frames=mode)
    structures = [data_of(f()) for f in (ethanol, adslab, bulk_cell, lambda: molecule("CH4"), ideal_adslab)]
    batch = model(Batch.from_data_list(structures), compute_stress=False)  # CH4 and the ideal slab get more frames
    start = 0
    for k, data in enumerate(structures):
        single = model(data)
        n = data.num_nodes
        assert float(batch["energy"][k]) == pytest.approx(float(single["energy"][0]), abs=1e-12)
        assert torch.allclose(batch["forces"][start:start + n], single["forces"], atol=1e-12, rtol=0)
        start += n


def test_periodic_images_local_frames_are_invariant_global_frames_are_not():
    """Re-wrapping atoms into other periodic images: the same crystal, but other Cartesian positions."""
    atoms = adslab()
    imaged = atoms.copy()
    imaged.positions[0] += atoms.cell[0]
    imaged.positions[3] -= atoms.cell[0] + atoms.cell[1]
    plain = backbone()
    moved = {}
    for mode in MODES:
        model = FrameAveragedPotential(plain, frames=mode)
        a, b = model(data_of(atoms)), model(data_of(imaged))
        moved[mode] = (abs(float(a["energy"] - b["energy"])), float((a["forces"] - b["forces"]).abs().max()),
                       float(a["forces"].abs().max()))
    energy, forces, scale = moved["local"]
    assert energy < 1e-12 and forces < 1e-12 * scale
    energy, forces, scale = moved["global"]
    assert energy > 1e-6 and forces > 1e-4 * scale  # another periodic image changes the global PCA


def test_stochastic_frames_average_all_frames_at_evaluation():
    data = data_of(adslab())
    for mode in MODES:
        plain = backbone()
        exact = FrameAveragedPotential(plain, frames=mode).eval()
        draws = [FrameAveragedPotential(plain, frames=mode, stochastic=True,
                                        generator=torch.Generator().manual_seed(7)) for _ in range(2)]
        reference = exact(data)
        for model in draws:
            out = model.eval()(data)
            assert torch.equal(out["energy"], reference["energy"]) and torch.equal(out["forces"], reference["forces"])
        first, second = (model.train()(data, compute_forces=False)["energy"] for model in draws)
        assert torch.equal(first, second)  # the same seeded draw
        assert abs(float(first - reference["energy"])) > 1e-6  # one frame per structure (atom), not the average
    with torch.no_grad():
        for mode in MODES:
            model = FrameAveragedPotential(backbone(), frames=mode, stochastic=True).train()
            assert model(data, compute_forces=False)["energy"].shape == (1,)


def ideal_adslab():
    """An unrattled Cu(111) slab with O in an fcc hollow: every atom sits on a C3v site, whose neighbourhood has a
    uniaxial second moment (two equal eigenvalues)."""
    slab = fcc111("Cu", (2, 2, 2), vacuum=5.0)
    add_adsorbate(slab, "O", 1.4, "fcc")
    return slab


def test_degenerate_spectra_get_exact_tie_break_frames(generator):
    """Methane (a spherical top) and the ideal slab (C3v sites) are degenerate globally or locally: the tie-break
    frames keep energy and forces exactly E(3)-equivariant, where the arbitrary PCA frames do not."""
    g = elements(generator)
    for atoms, mode in [(molecule("CH4"), "global"), (molecule("CH4"), "local"), (ideal_adslab(), "local")]:
        data = data_of(atoms)
        inputs, in_reps = (data.pos, data.cell), (Positions(), Vectors())
        model = FrameAveragedPotential(backbone(), frames=mode)
        assert int(model.frame_set(data).counts.max()) > model.num_frames  # expanded
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # nothing to report: the average is exact
            assert_equivariant(as_function(model, data, "energy"), E3(), inputs, in_reps, Scalars(), elements=g)
            assert_equivariant(as_function(model, data, "forces"), E3(), inputs, in_reps, Vectors(), elements=g)
        arbitrary = FrameAveragedPotential(backbone(), frames=mode, on_degenerate="ignore")
        error = equivariance_error(as_function(arbitrary, data, "forces"), E3(), inputs, in_reps, Vectors(),
                                   elements=g)
        assert error > 1e-6, (mode, error)  # so the checks above can fail
    counts = FrameAveragedPotential(backbone(), frames="local").frame_set(data_of(ideal_adslab())).counts
    assert int((counts > 8).sum()) >= 3  # sites far enough from the adsorbate keep a uniaxial or isotropic moment
    assert FrameAveragedPotential(backbone()).frame_set(data_of(molecule("CH4"))).counts.tolist() == [24]  # T_d


def test_degenerate_spectra_warn_raise_and_never_give_nan(generator):
    methane = molecule("CH4")  # a spherical top: every global frame is arbitrary, the carbon's neighbourhood too
    dimer = molecule("CO")  # one neighbour each: rank-one neighbourhoods
    for atoms in (methane, dimer):
        for mode in MODES:
            model = FrameAveragedPotential(backbone(), frames=mode, on_degenerate="warn")
            with pytest.warns(RuntimeWarning, match="degenerate PCA spectrum"):
                out = model(data_of(atoms), compute_stress=False)
            assert torch.isfinite(out["forces"]).all() and torch.isfinite(out["energy"]).all()
            with pytest.raises(ValueError, match="degenerate PCA spectrum"):
                FrameAveragedPotential(backbone(), frames=mode, on_degenerate="raise")(data_of(atoms))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                FrameAveragedPotential(backbone(), frames=mode, on_degenerate="ignore")(data_of(atoms))
    with pytest.warns(RuntimeWarning, match="continuous stabiliser"):  # a linear molecule turns freely about its axis
        FrameAveragedPotential(backbone())(data_of(dimer))
    with warnings.catch_warnings():  # but its own edges lie on the axis: nothing to report, exact
        warnings.simplefilter("error", RuntimeWarning)
        data = data_of(dimer)
        fn = as_function(FrameAveragedPotential(backbone(), frames="local"), data, "forces")
        assert_equivariant(fn, E3(), (data.pos, data.cell), (Positions(), Vectors()), Vectors(),
                           elements=elements(generator))
    for mode in MODES:  # a degenerate structure next to a regular one: the regular one keeps its exact forces
        for option in ("expand", "ignore"):
            model = FrameAveragedPotential(backbone(), frames=mode, on_degenerate=option)
            mixed = model(Batch.from_data_list([data_of(methane), data_of(ethanol())]))
            alone = model(data_of(ethanol()))
            assert torch.isfinite(mixed["forces"]).all()
            assert torch.allclose(mixed["forces"][len(methane):], alone["forces"], atol=1e-12, rtol=0)
    lone = data_of(molecule("H2O"))
    lone.edge_index = lone.edge_index[:, :0]  # no neighbours at all: nothing to frame, nothing reported
    lone.cell_offsets = lone.cell_offsets[:0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = FrameAveragedPotential(backbone(), frames="local")(lone)
    assert torch.isfinite(out["forces"]).all() and out["forces"].abs().max() == 0


def test_save_load_and_dtype(tmp_path):
    data = data_of(adslab())
    for mode in MODES:
        model = FrameAveragedPotential(backbone(dtype="float32"), frames=mode, group="SE3", stochastic=True,
                                       tolerance=1e-4, on_degenerate="ignore").to(torch.float64)
        assert model.dtype == torch.float64 and model.config.backbone.dtype == "float64"
        path = tmp_path / f"{mode}.pt"
        model.save(path)
        for loaded in (FrameAveragedPotential.load(path), load_potential(path)):
            assert isinstance(loaded, FrameAveragedPotential) and loaded.config == model.config
            assert torch.equal(loaded.eval()(data)["forces"], model.eval()(data)["forces"])
    PlainPotential(backbone().config).save(tmp_path / "plain.pt")
    assert isinstance(load_potential(tmp_path / "plain.pt"), PlainPotential)
    with pytest.raises(ValueError, match="no 'kind': 'FrameAveragedPotential'"):
        FrameAveragedPotential.load(tmp_path / "plain.pt")


def test_calculator_relaxes_a_molecule(tmp_path):
    for mode in MODES:
        model = FrameAveragedPotential(backbone(), frames=mode)
        model.save(tmp_path / "fa.pt")
        for calc in (EquilibCalculator(model), EquilibCalculator(tmp_path / "fa.pt")):
            atoms = ethanol()
            atoms.calc = calc
            start = atoms.get_potential_energy()
            BFGS(atoms, logfile=None).run(fmax=1e-3, steps=5)
            assert atoms.get_potential_energy() < start - 1e-3
    with pytest.raises(TypeError, match="model: expected an EquivariantPotential, PlainPotential or Frame"):
        EquilibCalculator(torch.nn.Linear(2, 2))


def test_errors():
    plain = backbone()
    with pytest.raises(ValueError, match=r"frames: expected one of \('global', 'local'\), got 'atoms'"):
        FrameAveragedPotential(plain, frames="atoms")
    with pytest.raises(ValueError, match="group: expected one of"):
        FrameAveragedPotential(plain, group="SO2")
    with pytest.raises(ValueError, match="tolerance: expected a positive number, got 0"):
        FrameAveragedPotential(plain, tolerance=0)
    with pytest.raises(ValueError, match="on_degenerate: expected one of"):
        FrameAveragedPotential(plain, on_degenerate="sometimes")
    with pytest.raises(ValueError, match="stochastic: expected a bool"):
        FrameAveragedPotential(plain, stochastic="yes")
    with pytest.raises(TypeError, match="backbone: expected an equilib.nn.PlainPotential, got Linear"):
        FrameAveragedPotential(torch.nn.Linear(3, 1))
    with pytest.raises(TypeError, match="backbone: expected a PlainPotentialConfig"):
        FrameAveragedPotentialConfig(backbone=3)
    model = FrameAveragedPotential(plain)
    with pytest.raises(ValueError, match="data: expected a neighbor list"):
        model(AtomicData.from_ase(ethanol()))
    with pytest.raises(ValueError, match=r"atomic_numbers: elements \[79\] are not among the model's species"):
        model(AtomicData.from_ase(bulk("Au", "fcc", a=4.1), cutoff=CUTOFF))


def test_training_through_the_trainer(tmp_path):
    from equilib.data import AtomicDataset
    from equilib.train import Trainer, load_config

    frames = AtomicDataset("datasets/oc20_emt/data/s2ef_val_id.lmdb")
    for name, picks in (("train", range(0, 48, 4)), ("val", range(100, 132, 8))):
        write_ase_io(tmp_path / f"{name}.extxyz", [frames[k] for k in picks])
    config = load_config(None, [
        f"trainer.out_dir={tmp_path / 'run'}", f"data.train={tmp_path / 'train.extxyz'}",
        f"data.val={{val: {tmp_path / 'val.extxyz'}}}", "data.batch_size=4", "data.eval_batch_size=4",
        "model={name: frame_averaged_potential, channels: 8, num_layers: 1, num_radial: 4, frames: local, "
        "stochastic: true, on_degenerate: ignore, dtype: float64}",
        "trainer.max_steps=3", "trainer.eval_every=3", "trainer.checkpoint_every=3", "logging.progress=false",
        "logging.plots=false", "callbacks=[{name: equivariance_error, every: 3, samples: 2}]"])
    trainer = Trainer(config)
    assert isinstance(trainer.model, FrameAveragedPotential) and trainer.model.stochastic
    final = trainer.run()
    assert np.isfinite(final["train_loss"]) and final["val/forces_mae"] > 0
    assert final["equivariance_error/val"] < 1e-9
    saved = load_potential(tmp_path / "run" / "model.pt")
    assert isinstance(saved, FrameAveragedPotential) and saved.frames == "local"
    assert saved.config.backbone.scale != 1.0 and saved.config.backbone.e0s  # normalised by the training data
