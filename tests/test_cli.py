"""The equilib command end to end on the bundled data: train (and resume), eval, relax, md."""

import json
import re

import ase.io
import numpy as np
import pytest
from ase.build import add_adsorbate, bulk, fcc111

from equilib.calculator import EquilibCalculator
from equilib.cli import main

SMALL = ["data.max_train_frames=24", "model.channels=8", "model.num_layers=1", "trainer.max_steps=6",
         "trainer.eval_every=3", "trainer.checkpoint_every=3", "logging.progress=false",
         "data.val={val_id: datasets/oc20_emt/data/s2ef_val_id.lmdb}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "models/potential_grid.yaml", f"trainer.out_dir={out}", *SMALL]) == 0
    return out


def test_train_writes_model_metrics_and_checkpoint(trained, capsys):
    assert {"model.pt", "metrics.csv", "checkpoint.pt"} <= {p.name for p in trained.iterdir()}
    assert main(["train", "models/potential_grid.yaml", f"trainer.out_dir={trained}", *SMALL[:-1],
                 "trainer.max_steps=9", "--resume"]) == 0
    assert '"step": 9' in capsys.readouterr().out


def test_eval_prints_metrics(trained, capsys):
    assert main(["eval", str(trained / "model.pt"), "datasets/oc20_emt/data/s2ef_val_ood_cat.lmdb"]) == 0
    result = json.loads(capsys.readouterr().out)
    manifest = json.loads(open("datasets/oc20_emt/data/manifest.json").read())
    assert result["frames"] == manifest["frames"]["val_ood_cat"]
    assert {"energy_mae", "forces_mae", "forces_cosine", "efwt"} <= set(result)


def test_relax_and_md_write_trajectories(trained, tmp_path, capsys):
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.6, "fcc")
    ase.io.write(tmp_path / "slab.xyz", slab)
    code = main(["relax", str(trained / "model.pt"), str(tmp_path / "slab.xyz"), "--steps", "300", "--fmax", "0.05"])
    out = capsys.readouterr().out
    assert code == 0 and "NOT" not in out, out
    final = ase.io.read(tmp_path / "slab_relax.traj")  # the last frame: the relaxed structure
    final.calc = EquilibCalculator(trained / "model.pt")
    forces = final.get_forces()
    printed = re.search(r"final energy (\S+) eV, max force (\S+) eV/A, converged after (\d+) steps", out)
    assert float(printed[1]) == pytest.approx(final.get_potential_energy(), abs=1e-6)
    assert float(printed[2]) == pytest.approx(np.linalg.norm(forces, axis=1).max(), abs=1e-4)
    assert np.linalg.norm(forces, axis=1).max() < 0.05
    assert len(ase.io.read(tmp_path / "slab_relax.traj", index=":")) == int(printed[3]) + 1
    ase.io.write(tmp_path / "cu.xyz", bulk("Cu", "fcc", a=3.6, cubic=True))
    assert main(["md", str(trained / "model.pt"), str(tmp_path / "cu.xyz"), "--steps", "5", "--log-every", "1"]) == 0
    assert len(ase.io.read(tmp_path / "cu_md.traj", index=":")) == 6


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["train", "models/potential_grid.yaml", "model.chanels=3"]) == 2
    assert "unknown key model.chanels" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.pt"), "datasets/oc20_emt/data/s2ef_val_id.lmdb"]) == 2
