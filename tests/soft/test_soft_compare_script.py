"""scripts/soft_compare.py trains its runs and reports every one."""

import importlib.util

import torch


def test_the_soft_experiment_script_trains_and_reports(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("soft_compare", "scripts/soft_compare.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    small = ["--epochs", "3", "model.hidden=4x0+2x1+2x2", "model.num_layers=1", "trainer.eval_every=3",
             "data.max_train=100"]
    assert script.main(["--runs", "mlp,exact_o2z,rpp_o3,per", "--seeds", "0", "--out", str(tmp_path), *small]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 4
    cells = [row.strip("|").split("|") for row in rows]
    assert all(float(c[2]) > 0 and float(c[3]) > 0 for c in cells)  # test and OOD MSE
    assert float(cells[1][5]) < 1e-6 < float(cells[1][4])  # exactly O(2)z-equivariant, not O(3)
    assert cells[3][6].strip() == "0, 100, 100, 100"  # PER's strengths before its rescaling step
    config = torch.load(tmp_path / "rpp_o3" / "seed0" / "checkpoint.pt", weights_only=False)["config"]
    assert config["model"]["mode"] == "rpp" and config["loss"]["terms"][0]["name"] == "rpp_prior"
    pendulum = ["--task", "pendulum", "--runs", "exact_o2z,per", "--seeds", "0", "--out", str(tmp_path), "--epochs",
                "1", "model.hidden=4x0+2x1+2x2", "data.max_train=20", "data.batch_size=10", "trainer.max_steps=2",
                "trainer.eval_every=2"]
    assert script.main(pendulum) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [row.strip("|").split("|") for row in rows]
    assert len(cells) == 2 and float(cells[0][5]) < 1e-6 < float(cells[0][4])  # the flow is exactly O(2)z-equivariant
    assert cells[1][6].strip() == "0, 0.001, 0.001, 0.001"
    assert (tmp_path / "pendulum" / "per" / "seed0" / "metrics.csv").is_file()
    # sampled errors of a flow that starts exactly equivariant (zero energy): finite from the first steps on
    sampled = [arg.replace("pendulum", "pendulum_sampled") for arg in pendulum]
    sampled[sampled.index("exact_o2z,per")] = "per"
    sampled[sampled.index("trainer.max_steps=2")] = "trainer.max_steps=3"
    assert script.main(sampled) == 0


def test_the_soft_experiment_script_on_o5_and_cossim(tmp_path, capsys):
    """O(5) and scalings as candidates: an exactly O(5)-invariant model has no O(5) error; the CosSim mixture starts
    at its strengths."""
    spec = importlib.util.spec_from_file_location("soft_compare", "scripts/soft_compare.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    small = ["--seeds", "0", "--out", str(tmp_path), "--epochs", "2", "model.hidden=4x0+2x1+2x2", "model.num_layers=1",
             "trainer.eval_every=2", "data.max_train=50"]
    assert script.main(["--task", "o5", "--runs", "mlp,exact_o5,single_o5", *small]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[0].startswith("| model | best epochs | test MSE | OOD MSE | O5 error | final strengths O5 |")
    cells = [row.strip("|").split("|") for row in lines[1:]]
    assert float(cells[1][4]) < 1e-6 < float(cells[0][4])  # exact O(5) against the free MLP
    assert script.main(["--task", "cossim", "--runs", "exact_so3_scale,per", *small]) == 0
    cells = [row.strip("|").split("|") for row in capsys.readouterr().out.splitlines()
             if row.startswith("| ") and "---" not in row][1:]
    assert float(cells[0][4]) < 1e-6 and float(cells[0][5]) < 1e-6  # SO(3) x scalings: both errors vanish
    assert cells[1][6].strip() == "100, 100, 100"


def test_the_soft_experiment_script_on_nbody_with_a_field(tmp_path, capsys):
    """The plain GNN with sampled regularisers on n-body with a field along z: every run trains, the exact model has
    no O(3) error and the mixture starts with O(3) at 0."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "datasets.nbody", "--field", "0.3", "--num-train", "20", "--num-valid", "10",
                    "--num-test", "10", "--stream-train", "20", "--stream-valid", "10", "--out", str(tmp_path),
                    "--name", "field"], check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location("soft_compare", "scripts/soft_compare.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--task", "nbody_field", "--runs", "mlp,exact_o3,per", "--seeds", "0", "--out", str(tmp_path / "runs"),
            "--epochs", "2", f"data.path={tmp_path / 'field.npz'}", "data.batch_size=10", "trainer.eval_every=2"]
    assert script.main(args) == 0
    cells = [row.strip("|").split("|") for row in capsys.readouterr().out.splitlines()
             if row.startswith("| ") and "---" not in row][1:]
    assert [c[0].strip() for c in cells] == ["plain GNN (free)", "E(3)-equivariant message passing (exact)",
                                             "PER: O3 (0), O2x (1), O2y (1), O2z (1), rescaled once"]
    assert float(cells[1][4]) < 1e-5 < float(cells[0][4])
    assert cells[2][6].strip() == "0, 1, 1, 1"


def test_the_soft_experiment_script_on_se3(tmp_path, capsys):
    """Translations as candidates: the runs on centred positions have no translation error, the free MLP has one."""
    spec = importlib.util.spec_from_file_location("soft_compare", "scripts/soft_compare.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--task", "se3", "--runs", "mlp,exact_translations,exact_so3_translations,per", "--seeds", "0", "--out",
            str(tmp_path), "--epochs", "2", "model.hidden=4x0+2x1+2x2", "model.num_layers=1", "trainer.eval_every=2",
            "data.max_train=50"]
    assert script.main(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[0].startswith("| model | best epochs | test MSE | OOD MSE | SO3 error | Translations error |")
    cells = [row.strip("|").split("|") for row in lines[1:]]
    assert float(cells[1][5]) < 1e-6 < min(float(cells[0][5]), float(cells[1][4]))  # centred: translations only
    assert float(cells[2][4]) < 1e-6 and float(cells[2][5]) < 1e-6  # centred and exactly O(3): SE(3)
    assert cells[3][6].strip() == "1, 1, 1"
