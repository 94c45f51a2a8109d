"""Segment-reduction benchmark: ``equilib.utils.scatter`` against ``torch_geometric.utils.scatter``.

``equilib.utils.scatter`` is PyG's scatter behind equilib's input checks (it had its own reductions until this
benchmark found them no faster: scripts/results/bench_scatter_cpu_2026-11-30.log); the table shows what the checks
cost. Both reduce the rows of ``src`` (edges, features) into ``nodes`` segments given by ``index``, with ``dim_size``
given, as the potential sums per-atom energies and messages. For each reduction (sum, mean, max), dtype, size and
mode (forward; forward+backward with a fixed random output gradient) it prints the median milliseconds of
``--repeats`` runs after ``--warmup`` runs of each implementation (taking turns, so that drift hits both alike;
CUDA events on a GPU), their ratio, and whether the two give the same values bit for bit (forward, and the input
gradient). Then a table of what each does with invalid input. Index rows are sorted by segment, as a neighbour
list groups edges by centre atom (``--shuffle``: random order). Time only on an otherwise idle machine.

    python scripts/bench_scatter.py                      # CPU, the sizes below
    python scripts/bench_scatter.py --quick              # a tiny size, a few runs: checks that the script works
    python scripts/bench_scatter.py --device cuda --sizes 200000,128,10000
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
import torch_geometric
import torch_geometric.typing
from torch_geometric.utils import scatter as pyg_scatter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equilib.utils import scatter as own_scatter  # noqa: E402
from scripts._timing import median_ms  # noqa: E402

# (edges, features, nodes): message sums of small and large batches of the potential, per-atom energies
SIZES = [(20_000, 32, 1_000), (20_000, 256, 1_000), (100_000, 64, 5_000), (200_000, 32, 10_000),
         (200_000, 128, 10_000), (200_000, 256, 10_000)]
QUICK = [(200, 8, 30)]
IMPLEMENTATIONS = {"own": own_scatter, "pyg": pyg_scatter}


def make_case(edges: int, features: int, nodes: int, dtype: torch.dtype, device: str, shuffle: bool, seed: int):
    """Random ``src``, an index into ``nodes`` segments (some empty when edges are few), an output gradient."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, nodes, (edges,), generator=generator)
    index = index if shuffle else index.sort().values
    src = torch.randn(edges, features, generator=generator, dtype=torch.float64).to(device, dtype)
    grad = torch.randn(nodes, features, generator=generator, dtype=torch.float64).to(device, dtype)
    return src, index.to(device), grad


def forward_backward(fn, src, index, nodes, reduce, grad):
    """The reduction and the gradient of ``<grad, out>`` with respect to ``src``."""
    leaf = src.detach().requires_grad_()
    out = fn(leaf, index, dim=0, dim_size=nodes, reduce=reduce)
    return out, torch.autograd.grad(out, leaf, grad)[0]


def compare(src, index, nodes, reduce, grad) -> tuple[bool, float]:
    """Whether both give the same forward values and input gradient bit for bit, and their largest difference."""
    own = [t.detach() for t in forward_backward(own_scatter, src, index, nodes, reduce, grad)]
    pyg = [t.detach() for t in forward_backward(pyg_scatter, src, index, nodes, reduce, grad)]
    same = all(torch.equal(a, b) for a, b in zip(own, pyg))
    diff = max(float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(own, pyg))
    return same, diff


def runner(fn, mode: str, src, index, nodes: int, reduce: str, grad):
    """A call of ``fn`` to time: the reduction alone, or with the gradient of ``<grad, out>`` (``fwd+bwd``)."""
    if mode == "forward":
        return lambda: fn(src, index, dim=0, dim_size=nodes, reduce=reduce)
    leaf = src.detach().requires_grad_()
    return lambda: torch.autograd.grad(fn(leaf, index, dim=0, dim_size=nodes, reduce=reduce), leaf, grad)


def timings(args) -> None:
    sizes = QUICK if args.quick else args.sizes or SIZES
    header = (f"{'reduce':>6} {'dtype':>7} {'edges':>7} {'feat':>4} {'nodes':>6} {'mode':>8} {'own ms':>9} "
              f"{'pyg ms':>9} {'pyg/own':>7} {'same':>5} {'max diff':>9}")
    print(header)
    print("-" * len(header))
    for reduce in ("sum", "mean", "max"):
        for dtype in (torch.float32, torch.float64):
            for edges, features, nodes in sizes:
                src, index, grad = make_case(edges, features, nodes, dtype, args.device, args.shuffle, args.seed)
                same, diff = compare(src, index, nodes, reduce, grad)
                for mode in ("forward", "fwd+bwd"):
                    fns = {name: runner(fn, mode, src, index, nodes, reduce, grad)
                           for name, fn in IMPLEMENTATIONS.items()}
                    ms = median_ms(fns, args.warmup, args.repeats, args.device)
                    print(f"{reduce:>6} {str(dtype)[6:]:>7} {edges:>7} {features:>4} {nodes:>6} {mode:>8} "
                          f"{ms['own']:>9.3f} {ms['pyg']:>9.3f} {ms['pyg'] / ms['own']:>7.2f} {str(same):>5} "
                          f"{diff:>9.1e}")


def validation() -> None:
    """What each implementation does with invalid input: the exception type and the start of its message."""
    src = torch.ones(4, 3)
    cases = {
        "src not a tensor": lambda fn: fn([1.0, 2.0], torch.tensor([0, 1])),
        "index 2-D": lambda fn: fn(src, torch.zeros(4, 1, dtype=torch.long)),
        "index float": lambda fn: fn(src, torch.tensor([0.0, 1, 2, 3])),
        "index negative": lambda fn: fn(src, torch.tensor([0, -1, 2, 3]), dim_size=4),
        "index too short": lambda fn: fn(src, torch.tensor([0, 1, 2])),
        "dim_size too small": lambda fn: fn(src, torch.tensor([0, 1, 2, 3]), dim_size=2),
        "dim_size too small, mean": lambda fn: fn(src, torch.tensor([0, 1, 2, 3]), dim_size=2, reduce="mean"),
        "dim out of range": lambda fn: fn(src, torch.tensor([0, 1, 2, 3]), dim=2),
        "reduce 'min'": lambda fn: fn(src, torch.tensor([0, 1, 2, 3]), reduce="min"),
        "reduce 'bogus'": lambda fn: fn(src, torch.tensor([0, 1, 2, 3]), reduce="bogus"),
    }
    print(f"\n{'invalid input':<26} {'own':<62} pyg")
    for name, case in cases.items():
        outcomes = []
        for fn in IMPLEMENTATIONS.values():
            try:
                out = case(fn)
                outcomes.append(f"returns shape {tuple(out.shape)}")
            except Exception as err:  # noqa: BLE001 - reporting whatever each one raises
                outcomes.append(f"{type(err).__name__}: {str(err).splitlines()[0]}"[:60])
        print(f"{name:<26} {outcomes[0]:<62} {outcomes[1]}")


def parse_size(text: str) -> tuple[int, int, int]:
    try:
        edges, features, nodes = (int(float(v)) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected EDGES,FEATURES,NODES such as 2e5,128,1e4, got {text!r}") from None
    return edges, features, nodes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_size, nargs="+", help="EDGES,FEATURES,NODES ... (default: SIZES)")
    parser.add_argument("--quick", action="store_true", help="one tiny size and 2 runs: checks the script works")
    parser.add_argument("--shuffle", action="store_true", help="index in random order instead of sorted")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"# bench_scatter: {args.device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, torch_geometric {torch_geometric.__version__}; torch-scatter in "
          f"pyg: {torch_geometric.typing.WITH_TORCH_SCATTER}; index "
          f"{'shuffled' if args.shuffle else 'sorted'}; median of {args.repeats} after {args.warmup}"
          + ("  [--quick: not a measurement]" if args.quick else ""))
    timings(args)
    validation()


if __name__ == "__main__":
    main()
