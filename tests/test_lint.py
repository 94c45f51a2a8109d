"""The linter is part of the test run: ``ruff check`` (its rules in pyproject.toml) passes on the code and tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINTED = ["equilib", "tests", "scripts", "datasets"]


def test_ruff_check_passes():
    assert all((ROOT / name).is_dir() for name in LINTED), f"expected {LINTED} under {ROOT}"
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", *LINTED],
        cwd=ROOT, capture_output=True, text=True,
    )
    if "No module named ruff" in result.stderr:
        raise AssertionError("ruff is not installed: it comes with the dev extra (pip install -e '.[dev]')")
    report = f"{result.stdout}{result.stderr}"
    assert result.returncode == 0, f"ruff check failed (fix by hand or with `ruff check --fix`):\n{report}"
    assert "All checks passed" in result.stdout, report
