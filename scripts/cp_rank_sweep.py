"""Accuracy of the cp (TDN) backend against its rank: fit error, error against cg, equivariance error.

The MLIP convolution of bench_tp (``C x (0..L)`` with parity (-1)^l times ``1 x (0..L)``, all O(3) paths), at ranks
``k L^2`` (TDN's default is k = 7) and at the exact rank (one component per non-zero fiber). For each: the relative
Frobenius error of the CP fit, the relative error of the op against the ``cg`` backend on random inputs (float64,
the cp channel weights on every cg path), the equivariance error under random rotations and under the inversion,
and the time to fit (0 when read from the cache: pass ``--cache-dir`` with an empty folder to time every fit).

    python scripts/cp_rank_sweep.py                          # L = 1..4, k = 3, 5, 7, 10, 14, 20
    python scripts/cp_rank_sweep.py --lmax 6 --factors 7,14 --markdown results/cp_rank_sweep.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equilib import so3  # noqa: E402
from equilib.ops import make_tensor_product  # noqa: E402
from scripts.bench_tp import s2_irreps  # noqa: E402


def errors(tp, cg, generator, n=64):
    """(relative error vs cg, equivariance error under rotations, under the inversion), Frobenius, float64."""
    x1 = torch.randn(n, tp.irreps_in1.dim, generator=generator, dtype=torch.float64)
    x2 = torch.randn(n, tp.irreps_in2.dim, generator=generator, dtype=torch.float64)
    w = torch.randn(n, tp.weight_numel, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        out, ref = tp(x1, x2, w), cg(x1, x2, tp.cg_weights(w))

        def equivariance(g):
            d1, d2, d3 = (so3.wigner_D(irreps, g) for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
            return float((tp(x1 @ d1.T, x2 @ d2.T, w) - out @ d3.T).norm() / out.norm())

        rotation = max(equivariance(so3.random_rotation(generator=generator)) for _ in range(3))
        inversion = equivariance(-torch.eye(3, dtype=torch.float64))
    return float((out - ref).norm() / ref.norm()), rotation, inversion


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmin", type=int, default=1)
    parser.add_argument("--lmax", type=int, default=4)
    parser.add_argument("--factors", default="3,5,7,10,14,20", help="ranks k L^2, comma list")
    parser.add_argument("--channels", type=int, default=4, help="channels (the errors do not depend on them)")
    parser.add_argument("--weight-sharing", default="shared", choices=["shared", "per-path"])
    parser.add_argument("--parity", default="approximate", choices=["approximate", "exact"])
    parser.add_argument("--cache-dir", default=None, help="where fitted factors live (default $EQUILIB_CACHE/cp)")
    parser.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    generator = torch.Generator().manual_seed(0)
    header = ("| L | rank | k = rank / L^2 | fit error | error vs cg | rotation equiv. error | inversion equiv. error "
              "| fit s |")
    lines = [f"cp backend, weight_sharing={args.weight_sharing!r}, parity={args.parity!r}; float64, all O(3) paths",
             "", header, "|---" * 8 + "|"]
    print("\n".join(lines), flush=True)
    for lmax in range(args.lmin, args.lmax + 1):
        irreps, sh = s2_irreps(lmax, args.channels), s2_irreps(lmax, 1)
        cg = make_tensor_product("cg", irreps, sh, irreps, dtype=torch.float64)
        exact_done = False
        for rank in [int(k) * lmax**2 for k in args.factors.split(",")] + [10**9]:
            if exact_done:
                break
            start = time.perf_counter()
            tp = make_tensor_product("cp", irreps, sh, irreps, rank=rank, weight_sharing=args.weight_sharing,
                                     parity=args.parity, cache_dir=args.cache_dir, dtype=torch.float64)
            seconds = time.perf_counter() - start
            exact_done = tp.exact
            vs_cg, rotation, inversion = errors(tp, cg, generator)
            k = "exact" if tp.exact else f"{tp.rank / lmax**2:g}"
            line = (f"| {lmax} | {tp.rank} | {k} | {tp.fit_error:.1e} | {vs_cg:.1e} | {rotation:.1e} | {inversion:.1e} "
                    f"| {seconds:.1f} |")
            lines.append(line)
            print(line, flush=True)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
