"""The fused grid product (equilib.ops._fused_grid): its Triton kernel checked on the CPU through Triton's interpreter
(in a subprocess: TRITON_INTERPRET must be set before Triton is imported) against the unfused float64 product, with
its first and second derivatives; the torch path, the argument checks, and the grid backend's "fused" transform."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from equilib.ops import make_tensor_product
from equilib.ops._fused_grid import fused_grid_product, uses_triton

CHECKS = Path(__file__).with_name("fused_grid_interpreted.py")


@pytest.fixture(scope="module")
def interpreted():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(CHECKS)], capture_output=True, text=True, env=env, timeout=600,
                         cwd=Path(__file__).parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_kernel_equals_the_unfused_product(interpreted):
    for channels_y in (1, 3):
        assert interpreted[f"op_torch.float64_y{channels_y}"] < 1e-13
        assert interpreted[f"op_torch.float32_y{channels_y}"] < 1e-5


def test_kernel_first_and_second_derivatives_pass_gradcheck(interpreted):
    assert all(interpreted[f"{check}_y{c}"] is True for check in ("gradcheck", "gradgradcheck") for c in (1, 3))


@pytest.mark.parametrize("weighted", ["in1+out", "in1+in2+out"])
def test_fused_transform_equals_dense_with_forces_double_backward(interpreted, weighted):
    for what in ("tp", "grad", "double_backward"):
        assert interpreted[f"{what}_{weighted}"] < 1e-12, (what, interpreted)


def test_without_the_interpreter_cpu_runs_the_torch_product(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 9, generator=generator), torch.randn(4, 1, 4, generator=generator)
    a, b, s = (torch.randn(*shape, generator=generator) for shape in ((9, 30), (4, 30), (30, 16)))
    assert not uses_triton(x)
    expected = ((x @ a) * (y @ b)) @ s
    torch.testing.assert_close(fused_grid_product(x, a, y, b, s), expected)


def test_bad_shapes_and_dtypes_are_clear_errors():
    x, y = torch.randn(4, 3, 9), torch.randn(4, 2, 4)
    a, b, s = torch.randn(9, 30), torch.randn(4, 30), torch.randn(30, 16)
    with pytest.raises(ValueError, match=r"x, y: expected \(N, C, D1\) and \(N, C or 1, D2\)"):
        fused_grid_product(x, a, y, b, s)
    with pytest.raises(ValueError, match=r"tables: expected \(D1, P\), \(D2, P\), \(P, D3\)"):
        fused_grid_product(x, a, y[:, :1], b, torch.randn(31, 16))
    with pytest.raises(ValueError, match="expected one dtype"):
        fused_grid_product(x, a.double(), y[:, :1], b, s)


def test_fused_transform_is_selectable_and_reported():
    tp = make_tensor_product("grid", "2x0e+2x1o", "0e+1o", "2x0e+2x1o", transform="fused")
    assert tp.transform == "fused" and "transform='fused'" in repr(tp)
