"""``equilib curvature`` on tiny trained runs: the report's files and tables, the top eigenvalue against a direct
Lanczos run at the checkpoint's weights, a validation split, the EMA weights, a file of structures for a potential,
and errors."""

import csv

import pytest
import torch

from equilib.cli import main
from equilib.curvature import Hessian, task_loss, top_eigenpairs
from equilib.train import Trainer, build_config
from equilib.train._curvature_callback import curvature_indices

NBODY = ["data.max_train=60", "data.max_val=40", "data.batch_size=20", "data.eval_batch_size=20", "data.dtype=float64",
         "model.channels=8", "model.lmax=1", "model.num_layers=2", "model.num_radial=4", "model.radial_hidden=8",
         "trainer.max_steps=6", "trainer.eval_every=3", "trainer.checkpoint_every=3", "logging.progress=false",
         "logging.plots=false"]
SMALL = ["--batches", "1", "--trace-matvecs", "12", "--block-probes", "4", "--density-steps", "8",
         "--density-probes", "2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nbody")
    assert main(["train", "models/nbody_equivariant.yaml", f"trainer.out_dir={out}", *NBODY]) == 0
    return out


def _rows(path):
    return list(csv.DictReader(open(path)))


def test_the_report_of_a_run(run, capsys):
    assert main(["curvature", str(run), "--top-k", "3", "--tol", "1e-8", *SMALL]) == 0
    out = run / "curvature_step6"
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    assert {"report.md", "eigenvalues.csv", "trace.csv", "stability.csv", "blocks.csv", "density.png",
            "density.csv"} <= {p.name for p in out.iterdir()}
    eigenvalues = _rows(out / "eigenvalues.csv")
    assert list(eigenvalues[0]) == ["k", "eigenvalue", "residual", "relative_residual", "converged"]
    values = [float(r["eigenvalue"]) for r in eigenvalues]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    assert all(r["converged"] == "True" and float(r["relative_residual"]) <= 1e-8 for r in eigenvalues)

    # the same structures and weights, directly
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    trainer = Trainer(build_config(checkpoint["config"]))
    trainer.load_checkpoint(run / "checkpoint.pt")
    batches = [trainer.batch(part) for part in curvature_indices(len(trainer.train), 1, 20, seed=0)]
    direct = top_eigenpairs(Hessian(trainer.model, task_loss(trainer.task), batches), k=3, tol=1e-10,
                            generator=torch.Generator().manual_seed(5))
    assert values == pytest.approx(direct.eigenvalues.tolist(), rel=1e-6)

    (trace,) = _rows(out / "trace.csv")
    assert trace["estimator"] == "hutch++" and int(trace["matvecs"]) == 12 and float(trace["stderr"]) > 0
    stability = _rows(out / "stability.csv")
    assert [r["source"] for r in stability] == ["config", "checkpoint"]
    assert float(stability[0]["lr"]) == trainer.config.optimizer.lr
    assert float(stability[1]["lr"]) == trainer.optimizer.param_groups[0]["lr"]
    for row in stability:
        assert float(row["lr * lambda_max"]) == pytest.approx(float(row["lr"]) * values[0], rel=1e-12)
        assert float(row["lr * trace"]) == pytest.approx(float(row["lr"]) * float(trace["value"]), rel=1e-12)
        assert float(row["lr * adam_sharpness"]) > 0  # AdamW: the preconditioned sharpness
    blocks = _rows(out / "blocks.csv")
    assert sum(int(b["size"]) for b in blocks) == sum(p.numel() for p in trainer.model.parameters())
    per_entry = [float(b["trace_per_entry"]) for b in blocks]
    assert per_entry == sorted(per_entry, reverse=True)
    density = _rows(out / "density.csv")
    assert len(density) == 16 and {r["probe"] for r in density} == {"0", "1"}
    assert sum(float(r["weight"]) for r in density) == pytest.approx(2.0, rel=1e-9)  # each probe's weights sum to 1
    report = (out / "report.md").read_text()
    for heading in ("## Top eigenvalues (Lanczos)", "## Trace", "## Stability", "## Blocks by trace per parameter",
                    "## Spectral density (SLQ)", "![Spectral density (SLQ)](density.png)"):
        assert heading in report
    assert (out / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_split_the_ema_weights_and_the_model_dtype(run, tmp_path):
    out = tmp_path / "report"
    assert main(["curvature", str(run / "checkpoint.pt"), "valid", "--weights", "ema", "--dtype", "model", "--params",
                 "readout", "--blocks", "parameter", "--no-keep-graph", "--out", str(out), *SMALL]) == 0
    assert "over 1 batch(es) of valid (20 examples" in (out / "report.md").read_text()
    stability = _rows(out / "stability.csv")
    assert "lr * adam_sharpness" not in stability[0]  # the optimizer's state is not the EMA weights'
    blocks = _rows(out / "blocks.csv")
    assert blocks and all(b["block"].startswith("readout.") for b in blocks)  # one block per readout parameter


def test_a_file_of_structures_for_a_potential(tmp_path):
    run = tmp_path / "potential"
    assert main(["train", "models/potential_grid.yaml", f"trainer.out_dir={run}", "data.max_train_frames=16",
                 "model.channels=4", "model.num_layers=1", "model.lmax=1", "trainer.max_steps=2",
                 "trainer.eval_every=2", "logging.progress=false", "logging.plots=false",
                 "data.val={val_id: datasets/oc20_emt/data/s2ef_val_id.lmdb}"]) == 0
    out = tmp_path / "report"
    assert main(["curvature", str(run), "datasets/oc20_emt/data/s2ef_val_ood_cat.lmdb", "--batch-size", "2",
                 "--top-k", "1", "--out", str(out), *SMALL]) == 0
    report = (out / "report.md").read_text()
    assert "over 1 batch(es) of datasets/oc20_emt/data/s2ef_val_ood_cat.lmdb (2 examples" in report
    assert len(_rows(out / "eigenvalues.csv")) == 1


def test_errors_name_the_argument(run, tmp_path, capsys):
    assert main(["curvature", str(tmp_path / "missing")]) == 2
    assert f"equilib curvature: run: {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["curvature", str(tmp_path / "empty")]) == 2
    assert "run: no checkpoint.pt in" in capsys.readouterr().err
    assert main(["curvature", str(run), "nope"]) == 2
    assert "data: 'nope' is neither a split of the run (train, valid, test) nor a file" in capsys.readouterr().err
    assert main(["curvature", str(run), "models/nbody_gnn.yaml"]) == 2
    assert "data: a file is read for the potential task only; for the nbody task name a split" in \
        capsys.readouterr().err


def test_the_comparison_script_tabulates_runs_and_their_spread(run, tmp_path):
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("curvature_compare", "scripts/curvature_compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    twin = tmp_path / "twin"
    shutil.copytree(run, twin, ignore=shutil.ignore_patterns("curvature_step*"))
    out = tmp_path / "table.md"
    assert compare.main(["--run", f"a={run}", str(twin), "--metric", "test/mse", "--top", "2", "--curvature-args",
                         " ".join(SMALL), "--out", str(out)]) == 0
    text = out.read_text()
    eigenvalues = [float(r["eigenvalue"]) for r in _rows(twin / "curvature_step6" / "eigenvalues.csv")]
    assert f"| a ({twin}) |" in text and f"{eigenvalues[0]:.4g}, {eigenvalues[1]:.4g}" in text
    summary = next(line for line in text.splitlines() if line.startswith("| a | 2 |"))  # the same weights twice
    mean, spread = summary.split("|")[4].split("+-")
    assert float(mean) == pytest.approx(eigenvalues[0], rel=1e-3) and float(spread) <= 1e-6 * eigenvalues[0]
    with pytest.raises(SystemExit, match="no checkpoint.pt"):
        compare.main(["--run", f"a={tmp_path}", "--metric", "test/mse"])
