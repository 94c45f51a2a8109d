"""scripts/soft_potential.py gives each run a step budget from its measured step time, trains and reports."""

import importlib.util

import torch


def test_the_potential_regulariser_script_budgets_trains_and_reports(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("soft_potential", "scripts/soft_potential.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--runs", "plain,plain_o3", "--minutes", "0.02", "--evaluations", "1", "--calibration-steps", "1",
            "--strength", "3", "--out", str(tmp_path), "data.max_train_frames=40"]
    assert script.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [row.strip("|").split("|") for row in rows]
    assert len(cells) == 2 and "strength 3" in cells[1][0]
    for name, row in zip(("plain", "plain_o3"), cells):
        budget = (tmp_path / name / "seed0" / "budget.txt").read_text().split()
        steps = int(next(b for b in budget if b.startswith("trainer.max_steps=")).split("=")[1])
        assert int(row[1]) == steps  # the last evaluation is the budget's last step
        assert all(0 < float(c) < 1 for c in row[3:7])  # force MAE on the four splits
        assert 0 <= float(row[8]) < 1  # E(3) equivariance error
    config = torch.load(tmp_path / "plain_o3" / "seed0" / "checkpoint.pt", weights_only=False)["config"]
    term = config["loss"]["terms"][0]
    assert term["name"] == "soft_equivariance" and term["method"] == "sampled" and term["strengths"] == [3.0]
    # a second call reads the saved budgets and the finished runs instead of training again
    assert script.main([*args, "--report-only"]) == 0
    again = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert again == rows
