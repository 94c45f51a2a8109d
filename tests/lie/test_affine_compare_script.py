"""scripts/affine_compare.py trains its runs and reports every one."""

import importlib.util
import subprocess
import sys

import pytest


def digits_and_script(tmp_path, name: str):
    """A small file of the recipe's fallback source in ``tmp_path`` and the script ``scripts/<name>.py`` loaded."""
    pytest.importorskip("sklearn")
    subprocess.run([sys.executable, "-m", "datasets.affine_digits", "--source", "digits", "--num-train", "32",
                    "--num-valid", "8", "--num-test", "8", "--out", str(tmp_path), "--name", "digits"], check=True,
                   capture_output=True)
    spec = importlib.util.spec_from_file_location(name, f"scripts/{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_affine_experiment_script_trains_and_reports(tmp_path, capsys):
    script = digits_and_script(tmp_path, "affine_compare")
    args = ["--runs", "cnn_augmented,gl2", "--seeds", "0", "--out", str(tmp_path / "runs"), "--timed-steps", "1",
            f"data.path={tmp_path / 'digits.npz'}", "data.batch_size=16", "trainer.max_steps=2",
            "trainer.eval_every=2", "model.channels=2", "model.head_hidden=8"]
    assert script.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| model | parameters | s/epoch | steps | minutes | test_clean error |")
    cells = [row.strip("|").split("|") for row in rows[1:]]
    assert [c[0].strip() for c in cells] == ["CNN + affine augmentation", "R^2 ⋊ GL+(2)"]
    assert all(c[3].strip() == "2" and 0 <= float(c[5]) <= 100 and int(c[1]) > 0 for c in cells)
    assert (tmp_path / "runs" / "gl2" / "timing.txt").is_file()


def test_the_samples_curve_script_reports_group_and_identity_errors(tmp_path, capsys):
    script = digits_and_script(tmp_path, "lie_samples_curve")
    assert script.main(["--data", str(tmp_path / "digits.npz"), "--runs-dir", str(tmp_path / "runs"), "--groups",
                        "so2", "--samples", "1,2", "--repeats", "1", "--images", "4", "--out", str(tmp_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| SO2")]
    assert [row.split("|")[1].strip() for row in rows] == ["SO2", "SO2, quarter turns"]
    for row in rows:
        assert "untrained" in row
        pairs = [cell.split(" / ") for cell in row.strip("|").split("|")[2:]]
        assert all(float(a) > 0 and float(b) > 0 for a, b in pairs)  # fresh draws at every forward: noise at g = 1
    assert (tmp_path / "samples_curve.png").is_file()
