"""Checks of the fused grid product's Triton kernel, run by tests/ops/test_fused_grid.py in a subprocess with
TRITON_INTERPRET=1 (the interpreter must be chosen before Triton is first imported). Prints one JSON object of
measured errors; every call of the torch fallback raises, so each number comes from the kernel."""

import json
import os

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

import torch  # noqa: E402

from equilib.ops import _fused_grid, make_tensor_product  # noqa: E402

reference = _fused_grid._reference


def _no_fallback(*args):
    raise AssertionError("the torch fallback ran instead of the Triton kernel")


_fused_grid._reference = _no_fallback
generator = torch.Generator().manual_seed(0)
results = {}


def randn(*shape, dtype=torch.float64):
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)


# the op alone: odd sizes (rows, points and columns not multiples of the blocks), broadcast and full y
for channels_y in (1, 3):
    for dtype in (torch.float64, torch.float32):
        x, y = randn(7, 3, 9, dtype=dtype), randn(7, channels_y, 4, dtype=dtype)
        a, b, s = randn(9, 70, dtype=dtype), randn(4, 70, dtype=dtype), randn(70, 25, dtype=dtype)
        out = _fused_grid.fused_grid_product(x, a, y, b, s)
        ref = reference(x.double(), a.double(), y.double(), b.double(), s.double())
        results[f"op_{dtype}_y{channels_y}"] = ((out.double() - ref).abs().max() / ref.abs().max()).item()
    x, y = randn(3, 3, 9).requires_grad_(), randn(3, channels_y, 4).requires_grad_()
    tables = randn(9, 40), randn(4, 40), randn(40, 16)

    def product(x, y, tables=tables):
        return _fused_grid.fused_grid_product(x, tables[0], y, tables[1], tables[2])

    results[f"gradcheck_y{channels_y}"] = torch.autograd.gradcheck(product, (x, y))
    results[f"gradgradcheck_y{channels_y}"] = torch.autograd.gradgradcheck(product, (x, y))

# the grid backend's "fused" transform against "dense": values, gradients and the double backward of forces
for weighted in (("in1", "out"), ("in1", "in2", "out")):
    irreps = ("4x0e+4x1o+4x2e", "0e+1o+2e", "4x0e+4x1o+4x2e")
    fused = make_tensor_product("grid", *irreps, weighted=weighted, transform="fused", dtype=torch.float64)
    dense = make_tensor_product("grid", *irreps, weighted=weighted, transform="dense", dtype=torch.float64)
    x1, x2, w = randn(5, fused.irreps_in1.dim), randn(5, fused.irreps_in2.dim), randn(5, fused.weight_numel)
    values = {}
    for name, tp in (("fused", fused), ("dense", dense)):
        if name == "dense":
            _fused_grid._reference = reference
        p1, p2 = x1.clone().requires_grad_(), x2.clone().requires_grad_()
        out = tp(p1, p2, w)
        energy = (out * torch.cos(out)).sum()
        (force,) = torch.autograd.grad(energy, p2, create_graph=True)
        (curvature,) = torch.autograd.grad(force.square().sum(), p1)
        values[name] = (out, force, curvature)
    key = "+".join(weighted)
    for i, what in enumerate(("tp", "grad", "double_backward")):
        f, d = values["fused"][i], values["dense"][i]
        results[f"{what}_{key}"] = ((f - d).abs().max() / d.abs().max()).item()
    _fused_grid._reference = _no_fallback

print(json.dumps(results))
