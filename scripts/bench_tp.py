"""Tensor-product benchmark: the MLIP convolution on every backend against e3nn (shared/BENCHMARKS.md, section 1).

Problem: node features ``C x (0..L)`` with parity (-1)^l times edge spherical harmonics ``1 x (0..L)``,
channel-wise ("uvu"), output ``C x (0..L)``, per-edge weights, N edges. For each L and op it reports forward,
forward+backward and double backward (gradient of a force-like loss) times, the median of ``--repeats`` runs
after ``--warmup`` runs (CUDA events on a GPU), the equivariance error of the op, and the largest difference
from its e3nn reference on the same path set (all paths for ``cg``; the l1+l2+l3-even paths with Gaunt path
weights for ``grid``; for ``cp`` the all-path CG product with its channel weights on every path, so the difference
is the decomposition's error). Writes a CSV and prints a table. ``--coupling uuu`` gives x2 the channels of x1
(channel by channel, e.g. a product of two node features) instead.

    python scripts/bench_tp.py                       # CPU, N=2000, C=32, L=1..6, fp32
    python scripts/bench_tp.py --device cuda --n 20000 --channels 64 --lmax 8
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
from pathlib import Path

import torch
from e3nn import o3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equilib import so3  # noqa: E402
from equilib.ops import make_tensor_product  # noqa: E402
from equilib.utils import atomic_write  # noqa: E402
from scripts._timing import median_ms  # noqa: E402


def s2_irreps(lmax: int, mul: int) -> o3.Irreps:
    return o3.Irreps([(mul, (l, (-1) ** l)) for l in range(lmax + 1)])


class E3nnReference(torch.nn.Module):
    """Plain e3nn product (uvu or uuu) on the paths of ``tp``: unit CG paths for 'cg', Gaunt-weighted ones for
    'grid'."""

    def __init__(self, tp, gaunt: bool):
        super().__init__()
        instructions = []
        for p in tp.paths:
            weight = (so3.gaunt_w3j_factor(p.l1, p.l2, p.l3) * tp.output_scale[p.i_out]) ** 2 if gaunt else 1.0
            instructions.append((p.i_in1, p.i_in2, p.i_out, p.mode, True, weight))
        norm = dict(irrep_normalization="none", path_normalization="none") if gaunt else {}
        self.tp = o3.TensorProduct(
            tp.irreps_in1, tp.irreps_in2, tp.irreps_out, instructions, shared_weights=False, internal_weights=False,
            **norm
        )
        self.weight_numel = self.tp.weight_numel
        self.paths = tp.paths
        self.irreps_in1, self.irreps_in2, self.irreps_out = tp.irreps_in1, tp.irreps_in2, tp.irreps_out

    def forward(self, x1, x2, weight):
        return self.tp(x1, x2, weight)


def equivariance_error(op, lmax, channels, dtype, device, generator) -> float:
    """max |op(D x1, D x2, w) - D op(x1, x2, w)| / max |op| over random rotations and inversions."""
    n = 64
    x1 = torch.randn(n, op.irreps_in1.dim, generator=generator, dtype=torch.float64).to(device, dtype)
    x2 = torch.randn(n, op.irreps_in2.dim, generator=generator, dtype=torch.float64).to(device, dtype)
    w = torch.randn(n, op.weight_numel, generator=generator, dtype=torch.float64).to(device, dtype)
    out = op(x1, x2, w)
    worst = 0.0
    for k in range(3):
        rot = so3.random_rotation(generator=generator) * (-1.0 if k % 2 else 1.0)
        d = [so3.wigner_D(irreps, rot).to(device, dtype) for irreps in (op.irreps_in1, op.irreps_in2, op.irreps_out)]
        rotated = op(x1 @ d[0].T, x2 @ d[1].T, w)
        worst = max(worst, ((rotated - out @ d[2].T).abs().max() / out.abs().max()).item())
    return worst


def workloads(op, n, dtype, device, generator):
    """The three timed workloads of one op: forward, forward+backward, double backward (force-like loss)."""
    x1 = torch.randn(n, op.irreps_in1.dim, generator=generator, dtype=torch.float64).to(device, dtype)
    x2 = torch.randn(n, op.irreps_in2.dim, generator=generator, dtype=torch.float64).to(device, dtype)
    w = torch.randn(n, op.weight_numel, generator=generator, dtype=torch.float64).to(device, dtype)
    x1g, x2g, wg = (t.clone().requires_grad_(True) for t in (x1, x2, w))

    def forward():
        with torch.no_grad():
            op(x1, x2, w)

    def forward_backward():
        op(x1g, x2g, wg).pow(2).sum().backward()

    def double_backward():
        energy = op(x1g, x2g, wg).sum()
        (force,) = torch.autograd.grad(energy, x2g, create_graph=True)
        force.pow(2).sum().backward()

    return forward, forward_backward, double_backward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="edges (batch size)")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--coupling", default="uvu", choices=["uvu", "uuu"],
                        help="uvu: x2 is one channel (edge harmonics); uuu: x2 has the channels of x1")
    parser.add_argument("--chunk-mib", type=float, default=None,
                        help="CPU chunk size of the ops (TensorProduct.CHUNK_BYTES in MiB; 0: one piece; default: "
                        "the ops' own)")
    parser.add_argument("--lmin", type=int, default=1)
    parser.add_argument("--lmax", type=int, default=6)
    parser.add_argument("--ops", default="e3nn-cg,cg,e3nn-gaunt,grid,grid-dense,grid-separable,grid-coupling,gaunt,"
                        "gaunt-fft,gaunt-direct,cp,cp-k14",
                        help="comma list among e3nn-cg, cg, e3nn-gaunt, "
                        "grid[-dense|-separable|-coupling|-blocks|-fused], gaunt[-fft|-direct] (no suffix: the "
                        "backend's auto choice), cp (TDN rank 7 L^2), cp-k<k> (rank k L^2, e.g. cp-k14), cp-per-path "
                        "(rank 7 L^2, per-path weights)")
    parser.add_argument("--reference-lmax", type=int, default=6,
                        help="skip the e3nn-based ops (e3nn-cg, cg, e3nn-gaunt) above this L: they are slow")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default="results/bench_tp.csv")
    parser.add_argument("--markdown", action="store_true", help="also print the results as a markdown table")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    generator = torch.Generator().manual_seed(args.seed)
    ops = args.ops.split(",")
    print(f"# bench_tp: {args.device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}, e3nn {__import__('e3nn').__version__}, "
          f"{args.dtype}, N={args.n}, C={args.channels}, "
          f"{args.coupling}, chunks {'default' if args.chunk_mib is None else f'{args.chunk_mib:g} MiB'}, "
          f"median of {args.repeats} after {args.warmup} warm-ups")
    rows = []
    header = (f"{'L':>2} {'op':<15} {'paths':>5} {'grid':>7} {'fwd ms':>9} {'fwd+bwd ms':>11} {'dbl-bwd ms':>11} "
              f"{'equiv err':>9} {'vs e3nn':>8}")
    print(header)
    for lmax in range(args.lmin, args.lmax + 1):
        irreps_x = s2_irreps(lmax, args.channels)
        irreps_sh = s2_irreps(lmax, 1 if args.coupling == "uvu" else args.channels)
        built = {}
        for name in ops:
            if (name.startswith("e3nn") or name == "cg") and lmax > args.reference_lmax:
                continue
            if name in ("cg", "e3nn-cg"):
                op = make_tensor_product("cg", irreps_x, irreps_sh, irreps_x, dtype=dtype)
                op = E3nnReference(op, gaunt=False) if name == "e3nn-cg" else op
            elif name == "e3nn-gaunt":
                op = E3nnReference(make_tensor_product("grid", irreps_x, irreps_sh, irreps_x, dtype=dtype), gaunt=True)
            elif name.startswith("cp"):  # fitted once, then read from the on-disk cache
                options = {"weight_sharing": "per-path"} if name == "cp-per-path" else {}
                if name.startswith("cp-k"):
                    options = {"rank": int(name[4:]) * lmax**2}
                op = make_tensor_product("cp", irreps_x, irreps_sh, irreps_x, dtype=dtype, **options)
            else:  # grid or gaunt, optionally with a strategy: grid-dense, gaunt-direct, ...
                backend, _, transform = name.partition("-")
                op = make_tensor_product(backend, irreps_x, irreps_sh, irreps_x, transform=transform or "auto",
                                         dtype=dtype)
            if args.chunk_mib is not None:
                op.CHUNK_BYTES = int(args.chunk_mib * 2**20) or 2**62
            built[name] = op.to(device=args.device, dtype=dtype)
        loads = {name: workloads(op, args.n, dtype, args.device, generator) for name, op in built.items()}
        medians = [median_ms({name: w[k] for name, w in loads.items()}, args.warmup, args.repeats, args.device)
                   for k in range(3)]
        del loads
        for name, op in built.items():
            times = [m[name] for m in medians]
            err = equivariance_error(op, lmax, args.channels, dtype, args.device, generator)
            diff = reference_difference(name, op, built, args.device, generator)
            grid = "x".join(map(str, op.grid_shape)) if hasattr(op, "grid_shape") else "-"
            row = dict(L=lmax, op=name, paths=len(op.paths), grid=grid, fwd_ms=times[0], fwd_bwd_ms=times[1],
                       double_bwd_ms=times[2], equivariance_error=err, max_diff_vs_e3nn=diff)
            rows.append(row)
            print(f"{lmax:>2} {name:<15} {row['paths']:>5} {grid:>7} {times[0]:>9.2f} {times[1]:>11.2f} "
                  f"{times[2]:>11.2f} {err:>9.1e} {'' if diff is None else f'{diff:.1e}':>8}", flush=True)
    summarize(rows)
    if args.markdown:
        print(markdown_table(rows))
    os.makedirs(os.path.dirname(args.csv) or ".", exist_ok=True)
    with atomic_write(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"# wrote {args.csv}")
    return rows


def reference_difference(name, op, built, device, generator):
    """Largest |op - e3nn reference| on the same inputs (None where the reference was not built)."""
    if name.startswith("e3nn"):
        return None
    ref = built.get("e3nn-cg" if name == "cg" or name.startswith("cp") else "e3nn-gaunt")
    if ref is None:
        return None
    n = 64
    x1 = torch.randn(n, op.irreps_in1.dim, generator=generator, dtype=torch.float64).to(device, op_dtype(op))
    x2 = torch.randn(n, op.irreps_in2.dim, generator=generator, dtype=torch.float64).to(device, op_dtype(op))
    w = torch.randn(n, op.weight_numel, generator=generator, dtype=torch.float64).to(device, op_dtype(op))
    w_ref = w if name == "cg" else op.cg_weights(w) if name.startswith("cp") else op.path_weights(w)
    with torch.no_grad():
        return (op(x1, x2, w) - ref(x1, x2, w_ref)).abs().max().item()


def op_dtype(op):
    return next(t for t in list(op.buffers()) + list(op.parameters()) if t.is_floating_point()).dtype


def summarize(rows):
    """Speed-ups of each equilib op over e3nn's all-path CG product, forward+backward."""
    base = {r["L"]: r["fwd_bwd_ms"] for r in rows if r["op"] == "e3nn-cg"}
    gaunt = {r["L"]: r["fwd_bwd_ms"] for r in rows if r["op"] == "e3nn-gaunt"}
    lines = []
    for r in rows:
        if r["op"].startswith("e3nn") or r["L"] not in base:
            continue
        extra = (f", {gaunt[r['L']] / r['fwd_bwd_ms']:.1f}x vs e3nn Gaunt subset"
                 if r["L"] in gaunt and r["op"] != "cg" else "")
        lines.append(f"L={r['L']} {r['op']}: {base[r['L']] / r['fwd_bwd_ms']:.1f}x vs e3nn CG{extra} "
                     "(forward+backward)")
    if lines:
        print("# speed-ups")
        print("\n".join(lines))


def markdown_table(rows):
    """One line per L: forward+backward ms of each op, and the speed-up of the grid over e3nn's CG product."""
    ops = list(dict.fromkeys(r["op"] for r in rows))
    by = {(r["L"], r["op"]): r for r in rows}
    lines = ["| L | " + " | ".join(ops) + " | grid speed-up |", "|---" * (len(ops) + 2) + "|"]
    for lmax in sorted({r["L"] for r in rows}):
        cells = [f"{by[lmax, op]['fwd_bwd_ms']:.1f}" if (lmax, op) in by else "-" for op in ops]
        ratio = ""
        if (lmax, "e3nn-cg") in by and (lmax, "grid") in by:
            ratio = f"{by[lmax, 'e3nn-cg']['fwd_bwd_ms'] / by[lmax, 'grid']['fwd_bwd_ms']:.1f}x"
        lines.append(f"| {lmax} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
