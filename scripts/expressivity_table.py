"""Expressivity of every backend on the MLIP convolution (features and harmonics with parity (-1)^l, degrees
0..L): reached dimension / full CG dimension, per L, as a markdown table (equilib.ops.expressivity).

    python scripts/expressivity_table.py --lmax 6
    python scripts/expressivity_table.py --lmax 4 --backends cp      # cp at TDN's fitted rank 7 L^2 (fits take a while)

``cp-exact`` is the cp backend at a rank where its decomposition is exact; plain ``cp`` is fitted (approximately
equivariant), measured with ``expressivity``'s default tolerance for approximate ops (10 x its fit error).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from e3nn import o3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equilib.ops import available_backends, coupling_paths, expressivity, make_tensor_product  # noqa: E402


def problem(lmax: int, channels: int = 2):
    """Inputs with parity (-1)^l; outputs: every irrep a CG product reaches, or only those an op can reach."""
    natural = o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])
    sh = o3.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])
    candidates = o3.Irreps([(channels, (l, p)) for l in range(lmax + 1) for p in (1, -1)])
    return natural, sh, candidates


VARIANTS = {"cp-exact": ("cp", {"rank": 10**9})}


def build(name: str, lmax: int):
    """The op with every output it can reach (a Gaunt product cannot reach the pseudo-tensor outputs)."""
    backend, options = VARIANTS.get(name, (name, {}))
    natural, sh, candidates = problem(lmax)
    for outputs in (candidates, natural):
        reached = sorted({p.i_out for p in coupling_paths(natural, sh, outputs)})
        try:
            return make_tensor_product(backend, natural, sh, o3.Irreps([outputs[i] for i in reached]),
                                       dtype=torch.float64, **options)
        except ValueError:
            continue
    raise ValueError(f"{backend}: no output set it can build")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmax", type=int, default=6)
    parser.add_argument("--backends", default="cg,gaunt,grid,cp-exact",
                        help=f"comma list among {available_backends() + list(VARIANTS)}")
    args = parser.parse_args(argv)
    backends = args.backends.split(",")
    print("| L | full CG dimension | " + " | ".join(backends) + " |")
    print("|---" * (len(backends) + 2) + "|")
    for lmax in range(1, args.lmax + 1):
        cells, full, start = [], None, time.perf_counter()
        for backend in backends:
            result = expressivity(build(backend, lmax))
            full = result.full_dimension
            cells.append(f"{result.dimension} ({len(result.missing)} missing)")
        print(f"| {lmax} | {full} | " + " | ".join(cells) + f" |  <!-- {time.perf_counter() - start:.0f} s -->",
              flush=True)


if __name__ == "__main__":
    main()
