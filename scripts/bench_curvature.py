"""What curvature costs on an interatomic potential's energy + force loss, and how equilib's estimators compare.

Three parts, each printed as a markdown table (``--out`` also writes them to a file):

1. **Cost of one product.** On the training loss of the potential in ``--config`` (default
   ``models/potential_grid.yaml``; its energy + force loss, whose gradient already needs a double backward through
   the forces) over ``--batches`` batches of the bundled OC20-style data, in each of ``--dtypes``: the time and peak
   memory of one gradient (``Hessian.gradient``, what training differentiates), one Hessian-vector product
   (``Hessian(...).matvec``, a triple backward), one product with the gradient graphs kept from an earlier product
   (``keep_graph=True``: the backward of ``g . v`` alone; the kept graphs' memory is what 'gradient, graph kept'
   allocates) and one finite-difference product (``method="fd"``, two gradients), the gradient with its graph kept
   (the first half of an autograd product), and the finite-difference product's relative error against the autograd
   one. ``--loss-kinds mae,mse`` runs the config with each ``loss.kind``. The
   model's statistics come from all training frames; its parameters are the ones drawn in float32, cast for
   float64, so that both dtypes are the same function.
2. **lambda_max by Lanczos against power iteration** on the same operator (the config's own loss): the products and
   seconds of ``top_eigenpairs(k=1, tol=--tol)`` and ``power_iteration(tol=--tol)``, their relative errors against a
   reference lambda_max from ``--ref-steps`` Lanczos steps, and how many products each needs until its estimate
   stays within ``--tol`` of the reference (Lanczos: the Ritz values of the leading blocks of the reference run's
   tridiagonal matrix; power iteration: its Rayleigh quotients).
3. **Side by side with PyHessian and curvlinops** (``--compare``; skipped with a message when they are not
   importable): on a small MLP regression (MSE; exact Hessian by ``torch.func.hessian``) the top eigenvalue, trace
   and times of each library against equilib's on the same operator; on the potential's energy-only loss (a
   wrapper module) and its energy + force loss, what each library can run, the agreement of one product with
   equilib's, and the time per product.

Times are medians of ``--repeats`` calls after ``--warmup``, the functions taking turns (``scripts._timing``).
Memory is the peak of the bytes torch's CPU allocator holds during one call above what it held before, from the
``[memory]`` events of ``torch.profiler`` with ``profile_memory=True`` (each allocation and free of a tensor's
storage, in order). It counts tensor storage only: not Python objects, autograd's graph nodes, or scratch memory of
BLAS/oneDNN kernels that do not allocate through torch; frees of tensors made before the call are not seen (their
sizes are unknown to the profiler), so a call that releases older tensors is not credited for it. It is exact for
what it counts and independent of the allocator's reuse of freed pages, unlike the resident set size.

PyHessian and curvlinops are not dependencies of equilib; install them into a benchmark environment only:

    python3 -m venv /tmp/curvbench && /tmp/curvbench/bin/pip install torch==2.13.0
    /tmp/curvbench/bin/pip install -e . pyhessian curvlinops-for-pytorch   # then reinstall torch==2.13.0 if moved

    OMP_NUM_THREADS=1 python scripts/bench_curvature.py --loss-kinds mae,mse
    OMP_NUM_THREADS=1 /tmp/curvbench/bin/python scripts/bench_curvature.py --skip-potential --compare
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib.metadata
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.curvature import (
    CurvatureOperator,
    Hessian,
    hutchinson,
    hutchpp,
    lanczos,
    loss_mode,
    power_iteration,
    task_loss,
    top_eigenpairs,
)
from scripts._timing import median_ms

CONFIG = ROOT / "models/potential_grid.yaml"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Report:
    """Lines printed as they come and kept for ``--out``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def table(self, header: list[str], rows: list[list]) -> None:
        self("| " + " | ".join(header) + " |")
        self("|" + "---|" * len(header))
        for row in rows:
            self("| " + " | ".join(str(cell) for cell in row) + " |")
        self()


class Recorder(CurvatureOperator):
    """An operator that keeps the Rayleigh quotient ``v.Av / v.v`` of every vector it multiplies."""

    def __init__(self, op: CurvatureOperator) -> None:
        super().__init__(op.dim, op.dtype, op.device, op.blocks)
        self.op, self.rayleigh = op, []

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        product = self.op.matvec(v)
        self.rayleigh.append(float(torch.dot(v, product) / torch.dot(v, v)))
        return product


def peak_mib(fn) -> float:
    """Peak MiB that torch's CPU allocator holds during one call of ``fn`` above what it held before (see the module
    docstring for what this counts)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())  # stable: allocations and frees at one timestamp keep their order
    held = peak = 0
    for event in events:
        held += event.nbytes()
        peak = max(peak, held)
    return peak / 2**20


def stays_within(history: list[float], reference: float, tol: float) -> int | None:
    """The number of products after which every later estimate is within ``tol`` of ``reference`` (relative); None
    if the last one is not."""
    outside = [k for k, value in enumerate(history) if abs(value - reference) > tol * abs(reference)]
    if not history or (outside and outside[-1] == len(history) - 1):
        return None
    return outside[-1] + 2 if outside else 1


_INITIAL: dict = {}  # the parameters drawn in float32, per config and overrides


def potential(args, dtype: str, kind: str | None, out_dir: str):
    """A trainer of ``--config`` in ``dtype`` (its ``loss.kind`` replaced by ``kind`` unless None) and ``--batches``
    batches of ``--batch-size`` training structures (the first ones). Its statistics (energy offsets, neighbour
    counts) come from all training frames, as in training; its parameters are those the trainer draws in float32,
    cast (torch draws other numbers in float64, so the two dtypes would otherwise be different models)."""
    from equilib.train import Trainer, load_config

    def build(dtype):
        overrides = [f"model.dtype={dtype}", "data.val={}", "logging.progress=false", f"trainer.out_dir={out_dir}"]
        overrides += [f"loss.kind={kind}"] if kind is not None else []
        return Trainer(load_config(args.config, overrides + list(args.override)))

    trainer = build(dtype)
    key = (str(args.config), tuple(args.override))
    if key not in _INITIAL:
        first = trainer if dtype == "float32" else build("float32")
        _INITIAL[key] = [p.detach().clone() for p in first.model.parameters()]
    with torch.no_grad():
        for parameter, initial in zip(trainer.model.parameters(), _INITIAL[key], strict=True):
            parameter.copy_(initial)
    size = args.batch_size
    batches = [trainer.batch(range(k * size, (k + 1) * size)) for k in range(args.batches)]
    return trainer, batches


def describe(trainer, batches) -> str:
    atoms = sum(int(b.num_nodes) for b in batches)
    edges = sum(int(b.edge_index.shape[1]) for b in batches) if hasattr(batches[0], "edge_index") else 0
    params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    loss = trainer.config.loss
    return (f"{params} parameters, {len(batches)} batch(es) of {batches[0].num_graphs} structures ({atoms} atoms, "
            f"{edges} edges), loss {loss.kind}: energy x {loss.energy_weight} + forces x {loss.forces_weight}")


def graph_gradient(hessian: Hessian):
    """The first half of an autograd product: each batch's gradient with its graph kept (``create_graph=True``)."""
    def run():
        with loss_mode(hessian.model), torch.enable_grad():
            for term in hessian.loss.terms():
                hessian.space.gradient(term(hessian.model), create_graph=True)

    return run


def cost_row(args, kind: str | None, dtype: str, out_dir: str) -> tuple[list, str]:
    """Part 1 for one loss kind and dtype: the table row and the problem's description."""
    trainer, batches = potential(args, dtype, kind, out_dir)
    loss = task_loss(trainer.task)
    hessian = Hessian(trainer.model, loss, batches)
    kept = Hessian(trainer.model, loss, batches, keep_graph=True)
    # differences move the parameters (and back), which would make the kept graphs stale: they get a copy
    fd = Hessian(copy.deepcopy(trainer.model), loss, batches, method="fd")
    v = torch.randn(hessian.dim, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    v = v.to(hessian.dtype)
    exact, approx = hessian.matvec(v), fd.matvec(v)
    fd_error = float((approx - exact).norm() / exact.norm())
    if not torch.allclose(kept.matvec(v), exact, rtol=1e-4, atol=0):  # the kept graphs, built here, give H v
        raise RuntimeError("keep_graph=True gave another product than the plain autograd one")
    fns = {"gradient": hessian.gradient, "graph": graph_gradient(hessian), "hvp": lambda: hessian.matvec(v),
           "kept": lambda: kept.matvec(v), "fd": lambda: fd.matvec(v)}
    ms = median_ms(fns, args.warmup, args.repeats)
    mib = {name: peak_mib(fn) for name, fn in fns.items()}
    g, gm = ms["gradient"], mib["gradient"]
    ratio = lambda name: f"{ms[name]:.0f} ({ms[name] / g:.2f}x)"  # noqa: E731
    row = [trainer.config.loss.kind, dtype, f"{g:.0f}", ratio("graph"), ratio("hvp"), ratio("kept"), ratio("fd"),
           f"{gm:.1f}", f"{mib['graph']:.1f} ({mib['graph'] / gm:.2f}x)", f"{mib['hvp']:.1f} ({mib['hvp'] / gm:.2f}x)",
           f"{mib['kept']:.1f} ({mib['kept'] / gm:.2f}x)", f"{mib['fd']:.1f} ({mib['fd'] / gm:.2f}x)",
           f"{fd_error:.1e}"]
    return row, describe(trainer, batches)


def part_cost(args, report: Report, out_dir: str) -> None:
    report("## 1. One gradient against one Hessian-vector product (energy + force loss)\n")
    rows, described = [], ""
    for kind in args.loss_kinds or [None]:
        for dtype in args.dtypes:
            row, text = cost_row(args, kind, dtype, out_dir)
            rows.append(row)
            described = described or text.split(", loss ")[0]
    report(f"{described}; fd step {torch.finfo(torch.float32).eps ** (1 / 3):.1e} (float32) / "
           f"{torch.finfo(torch.float64).eps ** (1 / 3):.1e} (float64) x max(1, |theta|) along the unit vector; "
           f"median of {args.repeats} calls after {args.warmup}, taking turns; memory: peak above the start during "
           f"one call (torch.profiler).\n")
    report("'gradient, graph kept' is the first half of an autograd HVP: each batch's gradient with "
           "`create_graph=True` (the rest is the backward of g.v through that graph). 'kept-graph HVP' is a product "
           "of `Hessian(keep_graph=True)` after its first one: that backward alone, the graphs (the 'gradient, graph "
           "kept' memory) held between products.\n")
    report.table(["loss", "dtype", "gradient ms", "gradient, graph kept ms", "HVP ms (/ grad)",
                  "kept-graph HVP ms (/ grad)", "FD-HVP ms (/ grad)", "gradient MiB", "gradient, graph kept MiB",
                  "HVP MiB (/ grad)", "kept-graph HVP MiB (/ grad)", "FD-HVP MiB (/ grad)", "FD rel. error"], rows)


def eigen_rows(args, dtype: str, out_dir: str) -> tuple[list, list, str]:
    """Part 2 for one dtype: table rows, notes and the problem's description."""
    trainer, batches = potential(args, dtype, None, out_dir)
    hessian = Hessian(trainer.model, task_loss(trainer.task), batches)
    t0 = time.perf_counter()
    run = lanczos(hessian, steps=args.ref_steps, generator=torch.Generator().manual_seed(args.seed))
    ref_seconds = time.perf_counter() - t0
    tri = run.tridiagonal()
    ritz = [float(torch.linalg.eigvalsh(tri[:j, :j])[-1]) for j in range(1, run.matvecs + 1)]
    values, vectors = torch.linalg.eigh(tri)
    reference = float(values[-1])
    residual = run.residual * float(vectors[-1, -1].abs())
    notes = [f"{dtype}: reference lambda_max {reference:.6g} from {run.matvecs} Lanczos steps ({ref_seconds:.0f} s; "
             f"Lanczos residual estimate {residual / abs(reference):.1e} relative); smallest Ritz value "
             f"{float(values[0]):.4g}; that run's largest Ritz value stays within {args.tol:g} of the reference after "
             f"{stays_within(ritz, reference, args.tol)} products"]
    rows = []
    for seed in range(args.seed + 1, args.seed + 1 + args.seeds):
        t0 = time.perf_counter()
        pairs = top_eigenpairs(hessian, k=1, tol=args.tol, max_steps=args.ref_steps,
                               generator=torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - t0
        value = float(pairs.eigenvalues[0])
        rows.append([dtype, seed, f"Lanczos (`top_eigenpairs`, tol {args.tol:g})", pairs.matvecs, f"{seconds:.1f}",
                     f"{value:.6g}", f"{abs(value - reference) / abs(reference):.1e}", bool(pairs.converged[0])])
        kept = Hessian(trainer.model, task_loss(trainer.task), batches, keep_graph=True)
        t0 = time.perf_counter()
        pairs = top_eigenpairs(kept, k=1, tol=args.tol, max_steps=args.ref_steps,
                               generator=torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - t0
        value = float(pairs.eigenvalues[0])
        rows.append([dtype, seed, "the same, `Hessian(keep_graph=True)`", pairs.matvecs, f"{seconds:.1f}",
                     f"{value:.6g}", f"{abs(value - reference) / abs(reference):.1e}", bool(pairs.converged[0])])
        del kept, pairs
        recorder = Recorder(hessian)
        t0 = time.perf_counter()
        pairs = power_iteration(recorder, k=1, tol=args.tol, max_iters=args.power_iters,
                                generator=torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - t0
        value, used, history = float(pairs.eigenvalues[0]), pairs.matvecs, list(recorder.rayleigh)
        if stays_within(history, reference, args.tol) is None and used < args.power_iters:
            # go on with the same iteration (warm start at its last vector) to see when it gets within tol
            power_iteration(recorder, k=1, tol=1e-12, max_iters=args.power_iters - used,
                            start=pairs.eigenvectors[:, 0])
            extra = recorder.rayleigh[len(history):]
            history += extra[1:] if bool(pairs.converged[0]) else extra  # a converged stop repeats its last vector
        needed = stays_within(history, reference, args.tol)
        rows.append([dtype, seed, f"power iteration (`power_iteration`, tol {args.tol:g})", used, f"{seconds:.1f}",
                     f"{value:.6g}", f"{abs(value - reference) / abs(reference):.1e}", bool(pairs.converged[0])])
        notes.append(f"{dtype}, seed {seed}: power iteration stays within {args.tol:g} of the reference after "
                     f"{needed if needed else f'more than {len(history)}'} products")
    return rows, notes, describe(trainer, batches)


def part_eigen(args, report: Report, out_dir: str) -> None:
    report(f"## 2. lambda_max to {args.tol:g} (relative): Lanczos against power iteration\n")
    rows, notes, described = [], [], ""
    for dtype in args.dtypes:
        more_rows, more_notes, described = eigen_rows(args, dtype, out_dir)
        rows += more_rows
        notes += more_notes
    report(f"{described}; the config's loss; one product costs what part 1 says.\n")
    report.table(["dtype", "seed", "method", "HVPs", "seconds", "lambda_max", "rel. error", "converged"], rows)
    for note in notes:
        report(f"- {note}")
    report()


# Part 3: the comparison.


class Mlp(torch.nn.Module):
    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)


def mlp_problem(args, dtype: torch.dtype):
    """A tanh MLP trained for 200 Adam steps on a smooth regression, in ``dtype``, and its data."""
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.mlp_samples, 8, generator=generator, dtype=torch.float64)
    noise = torch.randn(args.mlp_samples, 1, generator=generator, dtype=torch.float64)
    y = torch.sin(x.sum(dim=1, keepdim=True)) + 0.1 * noise
    torch.manual_seed(args.seed)
    model = Mlp(8, args.mlp_hidden).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return model.to(dtype), x.to(dtype), y.to(dtype)


def exact_hessian(model: Mlp, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The dense float64 Hessian of the MSE loss over the flat parameters, by ``torch.func.hessian``."""
    from torch.func import functional_call

    double = Mlp(x.shape[1], model.net[0].out_features).double()
    double.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    named = list(double.named_parameters())
    flat = torch.cat([p.detach().flatten() for _, p in named])

    def loss(theta):
        pieces = torch.split(theta, [p.numel() for _, p in named])
        params = {n: piece.reshape(p.shape) for (n, p), piece in zip(named, pieces)}
        return torch.nn.functional.mse_loss(functional_call(double, params, (x.double(),)), y.double())

    return torch.func.hessian(loss)(flat)


def libraries() -> tuple[object, object, list[str]]:
    """PyHessian's ``hessian`` class and the ``curvlinops`` module (None for each that does not import), and what
    failed."""
    missing = []
    try:
        from pyhessian import hessian as pyhessian
    except Exception as error:  # noqa: BLE001 - any import failure means: not available
        pyhessian = None
        missing.append(f"pyhessian ({type(error).__name__}: {error})")
    try:
        import curvlinops
    except Exception as error:  # noqa: BLE001
        curvlinops = None
        missing.append(f"curvlinops ({type(error).__name__}: {error})")
    return pyhessian, curvlinops, missing


def count_pyhessian_products() -> dict:
    """Count PyHessian's Hessian-vector products (its module-level ``hessian_vector_product``) in ``["n"]``."""
    module = sys.modules["pyhessian.hessian"]  # the package's name `hessian` is the class, not the module
    original = getattr(module, "_bench_original", module.hessian_vector_product)
    module._bench_original = original
    counter = {"n": 0}

    def counted(*a, **k):
        counter["n"] += 1
        return original(*a, **k)

    module.hessian_vector_product = counted
    return counter


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """PyHessian draws its start vectors with ``torch.randn(p.size())`` in the default dtype: set it to the model's,
    so that they are drawn as for the other libraries (float32 vectors also run on a float64 model)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def pyhessian_product(ph, v: torch.Tensor) -> torch.Tensor:
    """PyHessian's product with a flat vector, on the gradient graph it keeps."""
    from pyhessian.utils import hessian_vector_product

    pieces = [t.reshape(p.shape) for t, p in zip(torch.split(v, [p.numel() for p in ph.params]), ph.params)]
    return torch.cat([t.flatten() for t in hessian_vector_product(ph.gradsH, ph.params, pieces)])


def scipy_top(operator, tol: float, seed: int) -> tuple[float, int]:
    """SciPy's ``eigsh`` (ARPACK's implicitly restarted Lanczos) for the largest eigenvalue, and its products."""
    import numpy as np
    import scipy.sparse.linalg as sla

    count = {"n": 0}

    def matvec(x):
        count["n"] += 1
        return operator.matvec(x)

    wrapped = sla.LinearOperator(operator.shape, matvec=matvec, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(operator.shape[0])
    value = sla.eigsh(wrapped, k=1, which="LA", tol=tol, v0=start, return_eigenvectors=False)[0]
    return float(value), count["n"]


def timed(fn):
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def mlp_rows(args, name: str, pyhessian, curvlinops) -> tuple[list, list, list, list]:
    """Part 3a for one dtype: rows of the eigenvalue, trace and product tables, and notes."""
    dtype = DTYPES[name]
    model, x, y = mlp_problem(args, dtype)
    dense = exact_hessian(model, x, y)
    top, trace = float(torch.linalg.eigvalsh(dense)[-1]), float(dense.trace())
    mse = torch.nn.functional.mse_loss
    hessian = Hessian(model, lambda m, b: mse(m(b[0]), b[1]), (x, y))
    notes = []
    v64 = torch.randn(hessian.dim, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    exact_hv, v = dense @ v64, v64.to(dtype)

    def seeded(r):
        return torch.Generator().manual_seed(r)

    def eig_row(label, value, matvecs, seconds):
        return [name, label, f"{value:.6g}", f"{abs(value - top) / abs(top):.1e}", matvecs, f"{1e3 * seconds:.0f}"]

    pairs, s = timed(lambda: top_eigenpairs(hessian, k=1, tol=args.tol, generator=seeded(args.seed)))
    rows_eig = [eig_row("equilib `top_eigenpairs` (Lanczos)", float(pairs.eigenvalues[0]), pairs.matvecs, s)]
    kept = Hessian(model, lambda m, b: mse(m(b[0]), b[1]), (x, y), keep_graph=True)
    pairs, s = timed(lambda: top_eigenpairs(kept, k=1, tol=args.tol, generator=seeded(args.seed)))
    rows_eig.append(eig_row("the same, `Hessian(keep_graph=True)` (graph built in the call)",
                            float(pairs.eigenvalues[0]), pairs.matvecs, s))
    pairs, s = timed(lambda: power_iteration(hessian, k=1, tol=args.tol, max_iters=args.power_iters,
                                             generator=seeded(args.seed)))
    rows_eig.append(eig_row("equilib `power_iteration`", float(pairs.eigenvalues[0]), pairs.matvecs, s))
    (value, n), s = timed(lambda: scipy_top(hessian.to_scipy(), args.tol, args.seed))
    rows_eig.append(eig_row("equilib `to_scipy()` + SciPy `eigsh`", value, n, s))
    traces = {"equilib `hutchinson`": lambda r: hutchinson(hessian, args.trace_matvecs, generator=seeded(r)),
              "equilib `hutchpp`": lambda r: hutchpp(hessian, args.trace_matvecs, generator=seeded(r))}
    hvps = {"equilib `Hessian.matvec`": lambda: hessian.matvec(v),
            "equilib `Hessian(keep_graph=True).matvec` (graph kept)": lambda: kept.matvec(v)}
    if pyhessian is not None:
        counter = count_pyhessian_products()
        with default_dtype(dtype), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Using backward\\(\\) with create_graph", UserWarning)
            ph, s_setup = timed(lambda: pyhessian(model, mse, data=(x, y), cuda=False))
            torch.manual_seed(args.seed)
            counter["n"] = 0
            (values, _), s = timed(lambda: ph.eigenvalues(maxIter=args.power_iters, tol=args.tol, top_n=1))
        rows_eig.append(eig_row(f"PyHessian `eigenvalues` (power iteration; set-up {1e3 * s_setup:.0f} ms)",
                                values[0], counter["n"], s))

        def ph_trace(r):
            torch.manual_seed(r)
            with default_dtype(dtype):
                samples = ph.trace(maxIter=args.trace_matvecs, tol=args.tol)
            return float(sum(samples) / len(samples)), len(samples)

        traces["PyHessian `trace` (Hutchinson; stops when the mean changes by less than tol)"] = ph_trace
        try:
            ph.density(iter=10, n_v=1)
            notes.append(f"{name}: PyHessian `density` ran")
        except Exception as error:  # noqa: BLE001 - report what the library could not do
            notes.append(f"{name}: PyHessian `density` failed: {first_line(error)}")
        hvps["PyHessian `hessian_vector_product` (on its kept gradient graph)"] = lambda: pyhessian_product(ph, v)
    if curvlinops is not None:
        ch, s_setup = timed(lambda: curvlinops.HessianLinearOperator(model, torch.nn.MSELoss(),
                                                                      list(model.parameters()), [(x, y)]))
        (value, n), s = timed(lambda: scipy_top(ch.to_scipy(), args.tol, args.seed))
        rows_eig.append(eig_row(f"curvlinops + SciPy `eigsh` (set-up with its determinism check {1e3 * s_setup:.0f} "
                                f"ms)", value, n, s))

        def cl_trace(r, estimator):
            torch.manual_seed(r)
            return float(estimator(ch, args.trace_matvecs)), args.trace_matvecs

        traces["curvlinops `hutchinson_trace`"] = lambda r: cl_trace(r, curvlinops.hutchinson_trace)
        if args.trace_matvecs % 3 == 0:
            traces["curvlinops `hutchpp_trace`"] = lambda r: cl_trace(r, curvlinops.hutchpp_trace)
        hvps["curvlinops `H @ v` (torch.func)"] = lambda: ch @ v
    rows_trace = []
    for label, estimate in traces.items():
        outcomes = [timed(lambda r=r, estimate=estimate: estimate(args.seed + r)) for r in range(args.trace_repeats)]
        values = [(out.value, out.matvecs) if hasattr(out, "matvecs") else out for out, _ in outcomes]
        errors = [abs(value - trace) / abs(trace) for value, _ in values]
        used = sorted({n for _, n in values})
        seconds = sorted(s for _, s in outcomes)
        rows_trace.append([name, label, f"{sum(errors) / len(errors):.3f}", f"{max(errors):.3f}",
                           "-".join(str(n) for n in (used[0], used[-1]) if n is not None) if len(used) > 1 else used[0],
                           f"{1e3 * seconds[len(seconds) // 2]:.0f}"])
    ms = median_ms(hvps, args.warmup, max(args.repeats, 10))
    rows_hvp = [[name, label, f"{float((fn().double() - exact_hv).norm() / exact_hv.norm()):.1e}",
                 f"{ms[label]:.2f}"] for label, fn in hvps.items()]
    return rows_eig, rows_trace, rows_hvp, notes


def compare_mlp(args, report: Report, pyhessian, curvlinops) -> None:
    rows_eig, rows_trace, rows_hvp, notes = [], [], [], []
    for name in args.dtypes:
        eig, trace, hvp, more = mlp_rows(args, name, pyhessian, curvlinops)
        rows_eig, rows_trace, rows_hvp, notes = rows_eig + eig, rows_trace + trace, rows_hvp + hvp, notes + more
    report(f"### 3a. A small MLP regression (8-{args.mlp_hidden}-{args.mlp_hidden}-1 tanh, {args.mlp_samples} "
           f"samples, MSE, 200 Adam steps; exact Hessian by `torch.func.hessian` in float64)\n")
    report(f"Top eigenvalue, tol {args.tol:g} for every method (a relative residual for Lanczos, a relative change "
           f"between iterations for power iteration, ARPACK's tolerance for `eigsh`); ms of the call:\n")
    report.table(["dtype", "method", "lambda_max", "rel. error", "HVPs", "ms"], rows_eig)
    report(f"Trace with {args.trace_matvecs} products (PyHessian: at most), {args.trace_repeats} seeds: mean and "
           f"largest relative error against the exact trace, median ms of a call:\n")
    report.table(["dtype", "estimator", "mean rel. error", "max rel. error", "HVPs", "ms"], rows_trace)
    report("One product with the same vector: relative difference from the exact `H v`, median ms (taking turns):\n")
    report.table(["dtype", "library", "rel. difference", "ms"], rows_hvp)
    for note in notes:
        report(f"- {note}")
    if notes:
        report()


class EnergyOnly(torch.nn.Module):
    """The potential's energies (no forces), for libraries that take ``model(inputs) -> outputs``."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model(batch, compute_forces=False)["energy"]


class Prediction(torch.nn.Module):
    """The task's prediction (energies and forces), kept in training mode, where equilib's potentials keep the graph
    of their forces: PyHessian calls ``eval()`` on the model it gets, which this ignores."""

    def __init__(self, model, task) -> None:
        super().__init__()
        self.model, self.task = model, task

    def train(self, mode: bool = True):
        return super().train(True)

    def forward(self, batch):
        return self.task.predict(self.model, batch)


class ForcesOnly(Prediction):
    """The forces alone, for curvlinops, whose losses are ``nn.Module`` criteria of one output tensor."""

    def forward(self, batch):
        return super().forward(batch)["forces"]


def first_line(error: BaseException) -> str:
    text = (f"{type(error).__name__}: {error}".strip().splitlines() or [type(error).__name__])[0]
    return (text[:200] + "...") if len(text) > 200 else text


def potential_case(args, label: str, model, batch, loss, module, criterion, target, forces: bool,
                   pyhessian, curvlinops) -> list:
    """Part 3b for one loss: a row per library."""
    hessian = Hessian(model, loss, batch)
    v = torch.randn(hessian.dim, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    reference = hessian.matvec(v)
    top = top_eigenpairs(hessian, k=1, tol=args.tol, generator=torch.Generator().manual_seed(args.seed))
    big = top_eigenpairs(hessian, k=1, which="magnitude", tol=args.tol,
                         generator=torch.Generator().manual_seed(args.seed))
    kept = Hessian(model, loss, batch, keep_graph=True)
    kept.matvec(v)
    hvps = {"equilib": lambda: hessian.matvec(v), "equilib, `keep_graph=True`": lambda: kept.matvec(v)}
    results = {"equilib": f"reference; Lanczos: lambda_max {float(top.eigenvalues[0]):.6g} in {top.matvecs} HVPs, "
                          f"largest magnitude {float(big.eigenvalues[0]):.6g} in {big.matvecs}"}
    if pyhessian is not None:
        try:
            counter = count_pyhessian_products()
            with default_dtype(torch.float64), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Using backward\\(\\) with create_graph", UserWarning)
                ph = pyhessian(module, criterion, data=(batch, target(batch)), cuda=False)
                product = pyhessian_product(ph, v)
                torch.manual_seed(args.seed)
                counter["n"] = 0
                values, _ = ph.eigenvalues(maxIter=args.power_iters, tol=args.tol, top_n=1)
            diff = float((product - reference).norm() / reference.norm())
            results["PyHessian"] = f"{diff:.1e}; lambda_max {values[0]:.6g} in {counter['n']} HVPs (power iteration)"
            hvps["PyHessian"] = lambda: pyhessian_product(ph, v)
        except Exception as error:  # noqa: BLE001 - report what the library could not do
            results["PyHessian"] = f"failed: {first_line(error)}"
        finally:
            model.zero_grad(set_to_none=True)
    if curvlinops is not None:
        params = list(model.parameters())
        if forces:  # curvlinops takes an nn.Module criterion of (outputs, targets): try the MSE of the forces
            module, criterion = ForcesOnly(model, module.task), torch.nn.MSELoss()
            target = lambda b: b.forces.to(torch.float64)  # noqa: E731
            with torch.enable_grad():  # the forces do not depend on every parameter (energy offsets)
                grads = torch.autograd.grad(criterion(module(batch), target(batch)), params, allow_unused=True)
            params = [p for p, g in zip(params, grads) if g is not None]
        try:
            ch = curvlinops.HessianLinearOperator(module, criterion, params, [(batch, target(batch))],
                                                  batch_size_fn=lambda b: b.num_graphs)
            product = ch @ v
            diff = float((product - reference).norm() / reference.norm())
            results["curvlinops"] = ("ran the MSE of the forces alone (another loss)" if forces else f"{diff:.1e}")
            hvps["curvlinops"] = lambda: ch @ v
        except Exception as error:  # noqa: BLE001
            results["curvlinops"] = f"failed: {first_line(error)}"
    results["equilib, `keep_graph=True`"] = f"{float((kept.matvec(v) - reference).norm() / reference.norm()):.1e}"
    ms = median_ms(hvps, 1, args.repeats)
    return [[label, name, text, f"{ms[name]:.0f}" if name in ms else "-"] for name, text in results.items()]


def compare_potential(args, report: Report, pyhessian, curvlinops, out_dir: str) -> None:
    """Part 3b: the potential's energy-only and energy + force losses (float64, one batch)."""
    one = argparse.Namespace(**{**vars(args), "batches": 1, "batch_size": args.compare_structures})
    trainer, (batch,) = potential(one, "float64", None, out_dir)
    model, task = trainer.model, trainer.task
    mse = torch.nn.MSELoss()
    energy_only = EnergyOnly(model)
    rows = potential_case(args, "energy only (MSE of energies)", model, batch,
                          lambda m, b: mse(energy_only(b), b.energy.to(torch.float64)), energy_only, mse,
                          lambda b: b.energy.to(torch.float64), False, pyhessian, curvlinops)
    rows += potential_case(args, f"energy + forces (the config's {trainer.config.loss.kind} loss)", model, batch,
                           task_loss(task), Prediction(model, task), lambda out, b: task.loss(out, b)[0],
                           lambda b: b, True, pyhessian, curvlinops)
    report(f"### 3b. The potential (float64, one batch of {args.compare_structures} structures, "
           f"{sum(p.numel() for p in model.parameters())} parameters)\n")
    report("Relative difference of one product from equilib's, lambda_max to the same tolerance, median ms per product "
           "(taking turns):\n")
    report.table(["loss", "library", "product vs equilib; result", "ms per HVP"], rows)


def part_compare(args, report: Report, out_dir: str) -> None:
    report("## 3. Side by side with PyHessian and curvlinops\n")
    pyhessian, curvlinops, missing = libraries()
    if missing:
        report(f"Not importable here (install them into a benchmark environment, see the module docstring): "
               f"{'; '.join(missing)}.\n")
    if pyhessian is None and curvlinops is None:
        report("Comparison skipped.\n")
        return
    versions = []
    for distribution in ("pyhessian", "curvlinops-for-pytorch"):
        try:
            versions.append(f"{distribution} {importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    report(f"Versions: {', '.join(versions)}.\n")
    compare_mlp(args, report, pyhessian, curvlinops)
    compare_potential(args, report, pyhessian, curvlinops, out_dir)


def header(args) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import e3nn

    config = Path(args.config).resolve()
    config = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    command = " ".join(["python", "scripts/bench_curvature.py", *args.argv])
    return (f"# Curvature benchmark, {datetime.date.today()}\n\n{os.cpu_count()}-core {platform.machine()} ({cpu}), "
            f"{torch.get_num_threads()} torch thread(s), load average at the start {load}; python "
            f"{platform.python_version()}, torch {torch.__version__}, e3nn {e3nn.__version__}; config {config}; "
            f"dtypes {', '.join(args.dtypes)}\n\n`{command}`\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONFIG), help="a potential's training config")
    parser.add_argument("--override", action="append", default=[], help="section.key=value (repeatable)")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--loss-kinds", default="", help="e.g. mae,mse: loss.kind values for part 1 (default: the "
                                                         "config's)")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="structures per batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tol", type=float, default=1e-3, help="relative tolerance of lambda_max")
    parser.add_argument("--ref-steps", type=int, default=60, help="Lanczos steps of the reference lambda_max")
    parser.add_argument("--power-iters", type=int, default=100, help="most power iterations")
    parser.add_argument("--seeds", type=int, default=1, help="start vectors per estimator in part 2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-potential", action="store_true", help="skip parts 1 and 2")
    parser.add_argument("--skip-eigen", action="store_true", help="skip part 2")
    parser.add_argument("--compare", action="store_true", help="part 3: PyHessian and curvlinops, where importable")
    parser.add_argument("--mlp-hidden", type=int, default=32)
    parser.add_argument("--mlp-samples", type=int, default=512)
    parser.add_argument("--trace-matvecs", type=int, default=99)
    parser.add_argument("--trace-repeats", type=int, default=5)
    parser.add_argument("--compare-structures", type=int, default=8)
    parser.add_argument("--out", default=None, help="also write the tables to this markdown file")
    parser.add_argument("--append", action="store_true", help="append to --out instead of replacing it")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    args.loss_kinds = [k for k in args.loss_kinds.split(",") if k]
    if unknown := [d for d in args.dtypes if d not in DTYPES]:
        parser.error(f"--dtypes: expected float32 and/or float64, got {unknown}")
    report = Report()
    report(header(args))
    with tempfile.TemporaryDirectory(prefix="bench_curvature_") as out_dir:
        if not args.skip_potential:
            part_cost(args, report, out_dir)
            if not args.skip_eigen:
                part_eigen(args, report, out_dir)
        if args.compare:
            part_compare(args, report, out_dir)
    report(f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.out:
        path = Path(args.out)
        text = "\n".join(report.lines) + "\n"
        with path.open("a" if args.append else "w") as f:
            f.write(("\n" if args.append and path.exists() else "") + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
