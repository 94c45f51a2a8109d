"""The README's main job (scripts/main_job.py), shrunk: train, evaluate, relax against EMT, tables and plots."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.max_train_frames=16", "model.channels=8", "model.num_layers=1", "trainer.max_steps=4",
        "trainer.eval_every=2", "trainer.checkpoint_every=2", "logging.progress=false",
        "data.val={val_id: datasets/oc20_emt/data/s2ef_val_id.lmdb}"]


@pytest.fixture(scope="module")
def main_job():
    spec = importlib.util.spec_from_file_location("main_job", ROOT / "scripts" / "main_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.slow
def test_main_job_trains_evaluates_relaxes_and_reports(main_job, tmp_path, capsys):
    out = tmp_path / "run"
    assert main_job(["--out", str(out), "--relaxations", "2", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "| val_id | " in printed and "ADwT" in printed
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((ROOT / "datasets/oc20_emt/data/manifest.json").read_text())
    assert summary["splits"][0]["frames"] == manifest["frames"]["val_id"] and summary["final"]["step"] == 4
    assert len(summary["relaxations"]) == 2 and summary["relaxation_summary"]["relaxed"] == 2
    for row in summary["relaxations"]:
        assert row["system"].split(" + ")[0] in {"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"}
        assert 0.0 <= row["adwt"] <= 1.0 and row["max_displacement"] >= 0.0
    assert {"summary.md", "learning_curves.png", "parity_val_id.png", "relaxation.png", "model.pt"} <= {
        p.name for p in out.iterdir()}
    # Run again into the same directory: the finished run is resumed, not retrained.
    assert main_job(["--out", str(out), "--relaxations", "1", *TINY]) == 0
    assert json.loads((out / "summary.json").read_text())["final"]["step"] == 4


def test_main_job_rejects_bad_arguments(main_job):
    with pytest.raises(SystemExit):
        main_job(["--relaxations", "0"])
