"""The curvature benchmark (scripts/bench_curvature.py), shrunk: its tables, its memory probe, its convergence count."""

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_curvature", ROOT / "scripts" / "bench_curvature.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_memory_counts_the_tensors_alive_at_once(bench):
    def two_then_one():
        a = torch.empty(2**20, dtype=torch.float64)  # 8 MiB
        b = torch.empty(2**20, dtype=torch.float64)  # 16 MiB held
        del a, b
        return torch.empty(2**19, dtype=torch.float64)  # 4 MiB

    assert bench.peak_mib(two_then_one) == pytest.approx(16.0, abs=0.1)


def test_stays_within_counts_products_until_the_estimate_stays_close(bench):
    assert bench.stays_within([1.0, 1.9, 2.0, 1.5, 1.999], 2.0, 1e-3) == 5
    assert bench.stays_within([2.0, 2.0], 2.0, 1e-3) == 1
    assert bench.stays_within([2.0, 1.0], 2.0, 1e-3) is None


@pytest.mark.slow
def test_bench_curvature_prints_and_writes_its_tables(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "libraries", lambda: (None, None, ["pyhessian (test)", "curvlinops (test)"]))
    out = tmp_path / "bench.md"
    assert bench.main(["--dtypes", "float64", "--loss-kinds", "mse", "--batches", "1", "--batch-size", "1",
                       "--repeats", "1", "--warmup", "0", "--ref-steps", "4", "--power-iters", "3", "--compare",
                       "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    for heading in ("## 1. One gradient", "## 2. lambda_max", "## 3. Side by side", "Comparison skipped"):
        assert heading in printed and heading in text
    row = next(line for line in text.splitlines() if line.startswith("| mse | float64 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert float(cells[2]) > 0 and float(cells[-1]) < 1e-5  # gradient ms; FD against autograd in float64
    assert len(cells) == 13 and float(cells[5].split()[0]) > 0  # the kept-graph product's ms
    assert "| float64 | 1 | Lanczos" in text and "| float64 | 1 | power iteration" in text
    assert "| float64 | 1 | the same, `Hessian(keep_graph=True)`" in text
