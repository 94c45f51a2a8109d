"""The ``curvature`` callback: the sharpness and trace of the training loss along training, against the learning rate.

Every ``every`` steps (and at the end) it takes the Hessian of the task's training loss over a *curvature batch* --
the same training structures every time, drawn once from ``seed``, never augmented -- at the current weights, and
logs, as ``curvature/<key>`` in ``metrics.csv`` and TensorBoard:

- ``lambda_max`` (and ``lambda_2`` ... up to ``top_k``) by Lanczos, with ``lambda_max_residual``, its relative
  residual estimate;
- ``trace`` and ``trace_stderr`` by Hutch++ (``trace_probes`` products; 0 skips it);
- ``lr`` (the optimizer's current one), ``gd_ratio = lr * lambda_max`` and ``sgd_ratio = lr * trace``, each to
  compare with 2 (:func:`~equilib.curvature.stability`; the limits are GD's and SGD's near minima);
- with Adam/AdamW, ``adam_sharpness``, the largest eigenvalue of ``P^-1 H`` with Adam's ``P = sqrt(v_hat) + eps``,
  and ``adam_ratio = lr * adam_sharpness``, to compare with ``(2 + 2 beta_1) / (1 - beta_1)`` (38 for 0.9);
- ``matvecs``, the Hessian-vector products it took.

Probes and Lanczos starts come from generators seeded with ``seed``, the same every time. The callback leaves
training untouched: it restores the global random states (torch's, CUDA's, NumPy's, Python's) and every module's
mode, and never writes gradients, so a run with it is bit-identical to one without it apart from the logged columns.
With ``dtype: float64`` (the default) the Hessian is taken of a float64 copy of the model, made at each call and freed
after it (one extra copy of the parameters; the Lanczos basis holds up to ``max_steps + 1`` vectors of the
parameters' size); ``dtype: model`` uses the training model in its own dtype, without a copy.

At the end of training rank 0 writes ``<out_dir>/curvature/``: ``report.md``, ``readings.csv`` and
``stability.png`` (``lr * lambda_max`` and ``lr * trace`` along training against 2), and ``density_<step>.png`` /
``.csv`` (stochastic Lanczos quadrature; with ``density: true`` at every call, otherwise at the end only). The end
is the trainer's last step (``trainer.finishing``), whether the run reached ``max_steps``, ran out of epochs or of
``max_minutes``.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..curvature import (
    CurvatureOperator,
    Eigenpairs,
    Estimate,
    Hessian,
    Stability,
    adam_preconditioner,
    hutchpp,
    preconditioned_sharpness,
    spectral_density,
    stability,
    task_loss,
    top_eigenpairs,
)
from ..curvature._report import Report, plot_stability, write_density
from ._registry import CALLBACKS
from ._task import Callback

DTYPES = ("float64", "float32", "model")
ADAM_LIMIT = "(2 + 2 beta_1) / (1 - beta_1)"


def curvature_indices(n: int, batches: int, batch_size: int, seed: int) -> list[list[int]]:
    """The frames of the curvature batches: the first ``batches * batch_size`` of a permutation drawn from ``seed``.

    Args:
        n: The number of frames.
        batches: How many batches.
        batch_size: Frames per batch.
        seed: Seed of the permutation.

    Returns:
        Up to ``batches`` lists of frame indices (fewer when ``n`` is smaller).

    Raises:
        ValueError: If ``n`` is not positive.

    Examples:
        >>> curvature_indices(10, batches=2, batch_size=3, seed=0)
        [[4, 1, 7], [5, 3, 9]]
    """
    if n < 1:
        raise ValueError(f"n: expected at least one frame to draw the curvature batches from, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: batches * batch_size].tolist()
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of a model's floating parameters.

    Args:
        model: The model.

    Returns:
        The first floating parameter's dtype.

    Raises:
        ValueError: If the model has no floating parameter.
    """
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    raise ValueError(f"model: expected floating parameters, {type(model).__name__} has none")


def cast_batch(batch, dtype: torch.dtype):
    """A copy of ``batch`` with its floating tensors in ``dtype`` (integer tensors, such as indices, unchanged).

    Args:
        batch: A batch of the tasks: a dataclass of tensors, or a PyTorch Geometric ``Batch`` (anything with
            ``clone`` and ``apply``).
        dtype: The floating dtype.

    Returns:
        The new batch.

    Raises:
        TypeError: For another kind of batch.
    """
    def cast(tensor):
        return tensor.to(dtype) if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() else tensor

    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(batch, **{f.name: cast(getattr(batch, f.name)) for f in dataclasses.fields(batch)
                                             if f.init})
    if callable(getattr(batch, "apply", None)) and callable(getattr(batch, "clone", None)):
        return batch.clone().apply(cast)
    raise TypeError(f"batch: expected a dataclass of tensors or a torch_geometric Batch, got {type(batch).__name__}")


def in_dtype(model: torch.nn.Module, batches: list, dtype: torch.dtype) -> tuple[torch.nn.Module, list]:
    """The model and batches to take a Hessian in ``dtype``: themselves when the model computes in it already, else a
    copy of the model converted to ``dtype`` and the batches' floating tensors cast (:func:`cast_batch`).

    Args:
        model: The model (never changed).
        batches: Its batches.
        dtype: The floating dtype.

    Returns:
        ``(model, batches)``.
    """
    if dtype == model_dtype(model):
        return model, batches
    return copy.deepcopy(model).to(dtype), [cast_batch(batch, dtype) for batch in batches]


def resolve_dtype(name: str, model: torch.nn.Module) -> torch.dtype:
    """The dtype a curvature option names (``"float64"``, ``"float32"``, or ``"model"``: the model's own).

    Args:
        name: One of ``"float64"``, ``"float32"``, ``"model"``.
        model: The model.

    Returns:
        The torch dtype.

    Raises:
        ValueError: If ``name`` is not one of them.
    """
    if name not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {name!r}")
    return model_dtype(model) if name == "model" else getattr(torch, name)


class Reading(NamedTuple):
    """What :func:`measure` found.

    Attributes:
        eigenpairs: The top eigenpairs of the Hessian (Lanczos).
        trace: The Hutch++ trace estimate, or None when skipped.
        stability: The ratios against the learning rate.
        adam: The top eigenpairs of ``P^-1/2 H P^-1/2`` (Adam's preconditioned sharpness), or None.
    """

    eigenpairs: Eigenpairs
    trace: Estimate | None
    stability: Stability
    adam: Eigenpairs | None


def measure(op: CurvatureOperator, lr: float, top_k: int = 1, tol: float = 1e-3, max_steps: int = 100,
            trace_probes: int = 30, preconditioner: torch.Tensor | None = None, seed: int = 0) -> Reading:
    """The top eigenvalues, the trace and the stability ratios of a Hessian at learning rate ``lr``.

    Each estimator draws from its own generator seeded from ``seed`` (the same vectors on every call).

    Args:
        op: The Hessian (any :class:`~equilib.curvature.CurvatureOperator`).
        lr: The learning rate.
        top_k: Eigenvalues by Lanczos (:func:`~equilib.curvature.top_eigenpairs`).
        tol: Their relative residual tolerance.
        max_steps: Most Lanczos steps (each run).
        trace_probes: Hutch++ products (a multiple of 3); 0 skips the trace.
        preconditioner: Adam's ``(dim,)`` diagonal ``P`` (:func:`~equilib.curvature.adam_preconditioner`), or None.
        seed: Seed of the Lanczos starts and the Hutch++ probes.

    Returns:
        The :class:`Reading`.
    """
    eigenpairs = top_eigenpairs(op, k=top_k, tol=tol, max_steps=max_steps,
                                generator=torch.Generator().manual_seed(seed))
    trace = None if trace_probes == 0 else hutchpp(op, trace_probes, generator=torch.Generator().manual_seed(seed + 1))
    reading = stability(lr, float(eigenpairs.eigenvalues[0]), trace=None if trace is None else trace.value)
    adam = None if preconditioner is None else preconditioned_sharpness(
        op, preconditioner, tol=tol, max_steps=max_steps, generator=torch.Generator().manual_seed(seed + 2))
    return Reading(eigenpairs, trace, reading, adam)


class Counted(CurvatureOperator):
    """An operator that counts the products it passes on (and reports each batch of them to ``hook``).

    Args:
        op: The operator.
        hook: Called with the number of products of each ``matvec``/``matmat`` (e.g. a progress bar's ``update``);
            None: only counted.

    Attributes:
        op: The wrapped operator.
        matvecs: Products so far.
    """

    def __init__(self, op: CurvatureOperator, hook=None) -> None:
        super().__init__(op.dim, op.dtype, op.device, op.blocks)
        self.op, self.hook, self.matvecs = op, hook, 0

    def _count(self, n: int) -> None:
        self.matvecs += n
        if self.hook is not None:
            self.hook(n)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        out = self.op.matvec(v)
        self._count(1)
        return out

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        out = self.op.matmat(vectors)
        self._count(vectors.shape[1])
        return out


def adam_diagonal(optimizer, model: torch.nn.Module, names: list[str]) -> torch.Tensor | None:
    """Adam's preconditioner ``P`` for the named parameters of ``model``, or None for another optimizer.

    Args:
        optimizer: The training optimizer.
        model: The model it trains (its parameters are the optimizer's).
        names: The parameters' names, in the operator's order.

    Returns:
        The ``(dim,)`` diagonal (see :func:`~equilib.curvature.adam_preconditioner`), or None.
    """
    if not isinstance(optimizer, torch.optim.Adam):
        return None
    parameters = dict(model.named_parameters())
    return adam_preconditioner(optimizer, [parameters[name] for name in names])


def reading_metrics(reading: Reading) -> dict[str, float]:
    """A :class:`Reading` as the flat metrics the callback logs.

    Args:
        reading: What :func:`measure` returned.

    Returns:
        ``{key: float}`` (see the module's notes for the keys).
    """
    values = reading.eigenpairs.eigenvalues.tolist()
    top = values[0]
    out = {"lr": reading.stability.lr, "lambda_max": top,
           "lambda_max_residual": float(reading.eigenpairs.residuals[0]) / max(abs(top), 1e-300),
           **{f"lambda_{k}": v for k, v in enumerate(values[1:], start=2)}, "gd_ratio": reading.stability.gd_ratio}
    if reading.trace is not None:
        out.update(trace=reading.trace.value, trace_stderr=reading.trace.stderr, sgd_ratio=reading.stability.sgd_ratio)
    if reading.adam is not None:
        sharpness = float(reading.adam.eigenvalues[0])
        out.update(adam_sharpness=sharpness, adam_ratio=reading.stability.lr * sharpness)
    return out


@CALLBACKS.register("curvature")
class CurvatureCallback(Callback):
    """The training loss's sharpness, trace and stability ratios on a fixed curvature batch, logged as
    ``curvature/<key>``; a report in ``<out_dir>/curvature/`` at the end (see the module's notes).

    Args:
        options: The :class:`Options`.
        task: The run's task (its training loss is differentiated).
    """

    @dataclass
    class Options:
        """Options of the ``curvature`` callback.

        Attributes:
            every: Steps between readings (and at the end of training).
            batches: Training batches (of ``data.batch_size`` frames) in the curvature batch.
            top_k: Largest Hessian eigenvalues computed (logged as ``lambda_max``, ``lambda_2``, ...).
            tol: Relative residual tolerance of the eigenvalues.
            max_steps: Most Lanczos steps per eigenvalue run (the basis holds that many parameter-sized vectors).
            trace_probes: Hutch++ products for the trace, a multiple of 3; 0: no trace.
            density: Stochastic Lanczos quadrature at every reading (true) or only at the end (false).
            density_steps: Lanczos steps per SLQ probe.
            density_probes: SLQ probes.
            params: Regular expression of the parameter names (``re.match``) the Hessian is taken over; None: all.
            dtype: ``"float64"`` (a float64 copy of the model), ``"float32"`` or ``"model"`` (the model itself).
            keep_graph: Keep the curvature batch's gradient graph between the products of a reading
                (:class:`~equilib.curvature.Hessian`'s ``keep_graph``: faster products, the graph's memory held).
            seed: Seed of the curvature batch, the Lanczos starts and the probes.

        Raises:
            ValueError: If a count is not a positive int, ``trace_probes`` is not a non-negative multiple of 3,
                ``tol`` is not positive, ``max_steps`` is below ``top_k``, ``dtype`` is unknown or ``density`` or
                ``keep_graph`` is not a bool.
        """

        every: int = 500
        batches: int = 1
        top_k: int = 1
        tol: float = 1e-3
        max_steps: int = 100
        trace_probes: int = 30
        density: bool = False
        density_steps: int = 40
        density_probes: int = 2
        params: str | None = None
        dtype: str = "float64"
        keep_graph: bool = True
        seed: int = 0

        def __post_init__(self) -> None:
            where = "callbacks: curvature"
            for name in ("every", "batches", "top_k", "max_steps", "density_steps", "density_probes"):
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ValueError(f"{where}: {name}: expected a positive int, got {value!r}")
            probes = self.trace_probes
            if not isinstance(probes, int) or isinstance(probes, bool) or probes < 0 or probes % 3:
                raise ValueError(f"{where}: trace_probes: expected 0 or a positive multiple of 3, got {probes!r}")
            if not isinstance(self.tol, (int, float)) or not self.tol > 0:
                raise ValueError(f"{where}: tol: expected a positive number, got {self.tol!r}")
            if self.max_steps < self.top_k:
                raise ValueError(f"{where}: max_steps: expected at least top_k={self.top_k}, got {self.max_steps}")
            if self.dtype not in DTYPES:
                raise ValueError(f"{where}: dtype: expected one of {DTYPES}, got {self.dtype!r}")
            for name in ("density", "keep_graph"):
                if not isinstance(getattr(self, name), bool):
                    raise ValueError(f"{where}: {name}: expected true or false, got {getattr(self, name)!r}")

    def __init__(self, options, task) -> None:
        super().__init__(options, task)
        self.name = "curvature"
        self._batches: list | None = None  # the curvature batch, built on the first call
        self._checked = False

    def __call__(self, trainer) -> dict[str, float]:
        devices = [trainer.device] if trainer.device.type == "cuda" else []
        python, numpy_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                return self._read(trainer)
        finally:
            random.setstate(python)
            np.random.set_state(numpy_state)

    def curvature_batches(self, trainer) -> list:
        """This rank's share of the curvature batch (built on the first call, then the same every time).

        Args:
            trainer: The :class:`~equilib.train.Trainer`.

        Returns:
            The batches, on the trainer's device (not augmented).
        """
        if self._batches is None:
            indices = curvature_indices(len(trainer.train), self.options.batches, trainer.config.data.batch_size,
                                        self.options.seed)
            self._batches = [trainer.batch(part[trainer.rank::trainer.world]).to(trainer.device) for part in indices]
        return self._batches

    def _read(self, trainer) -> dict[str, float]:
        o = self.options
        model = trainer.model
        dtype = resolve_dtype(o.dtype, model)
        model, batches = in_dtype(model, self.curvature_batches(trainer), dtype)
        hessian = Hessian(model, task_loss(self.task), batches, params=o.params, keep_graph=o.keep_graph)
        if not self._checked:
            try:
                hessian.check_deterministic()
            except RuntimeError as err:
                raise RuntimeError(f"callbacks: curvature: {err}") from None
            self._checked = True
        op = Counted(hessian)
        lr = trainer.optimizer.param_groups[0]["lr"]
        reading = measure(op, lr, o.top_k, o.tol, o.max_steps, o.trace_probes,
                          adam_diagonal(trainer.optimizer, trainer.model, hessian.space.names), o.seed)
        final = trainer.finishing
        density = None
        if o.density or final:
            density = spectral_density(op, o.density_steps, o.density_probes,
                                       generator=torch.Generator().manual_seed(o.seed + 3))
        values = {**reading_metrics(reading), "matvecs": op.matvecs}
        if trainer.rank == 0:
            directory = trainer.out / self.name
            if density is not None:
                directory.mkdir(parents=True, exist_ok=True)
                write_density(density, directory, f"density_{trainer.step}")
            if final:
                self._report(trainer, values, hessian.dim, sum(trainer.task.batch_size(b) for b in batches))
        return values

    def _report(self, trainer, values: dict, dim: int, structures: int) -> None:
        prefix = f"{self.name}/"
        rows = {row["step"]: {k.removeprefix(prefix): v for k, v in row.items() if k.startswith(prefix)}
                for row in trainer.history if f"{prefix}lambda_max" in row}
        rows[trainer.step] = values
        readings = [{"step": step, **rows[step]} for step in sorted(rows)]
        o = self.options
        report = Report(trainer.out / self.name, "Curvature along training")
        report.paragraph(f"Hessian of the training loss over {o.batches} fixed training batch(es) ({structures} "
                         f"examples on rank 0, no augmentation), {dim} parameters"
                         f"{f' matching {o.params!r}' if o.params else ''}, in "
                         f"{str(resolve_dtype(o.dtype, trainer.model)).removeprefix('torch.')}"
                         f"; Lanczos to a relative residual of {o.tol:g}, Hutch++ with {o.trace_probes} products. "
                         "The ratios compare with 2 for GD (lr * lambda_max) and SGD near a minimum (lr * trace); "
                         f"with Adam, lr * adam_sharpness compares with {ADAM_LIMIT}.")
        report.table("readings", readings, "Readings")
        ratios = {"lr * lambda_max": [r.get("gd_ratio") for r in readings],
                  "lr * trace": [r.get("sgd_ratio") for r in readings]}
        report.figure(plot_stability([r["step"] for r in readings], ratios, report.directory / "stability.png"),
                      "Stability")
        report.figure(report.directory / f"density_{trainer.step}.png", f"Spectral density at step {trainer.step}",
                      f"Raw nodes and weights: [density_{trainer.step}.csv](density_{trainer.step}.csv)")
        report.write()
