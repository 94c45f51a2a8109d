"""End-of-training figures: learning curves from the metrics history, energy/force parity plots and relaxation
curves (matplotlib, headless Agg backend). Files are written to a temporary name and renamed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..utils import atomic_savefig


def _figure_module():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: list[dict], path: str | os.PathLike,
                    metrics: tuple[str, ...] = ("forces_mae", "energy_per_atom_mae")) -> Path:
    """Draw the training loss and each validation split's ``metrics`` against the step.

    Rows without a value are skipped; a ``forces_mae`` panel also shows each split's zero-force baseline.

    Args:
        history: Rows of the trainer's history (``step``, ``train_loss``, ``<split>/<metric>``).
        path: The PNG file to write (atomically).
        metrics: Validation metrics, one panel each.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: If no row has a ``train_loss``.
    """
    rows = [row for row in history if "train_loss" in row]
    if not rows:
        raise ValueError("history: expected at least one evaluation, got none")
    plt = _figure_module()
    steps = [row["step"] for row in rows]
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(4.4 * (1 + len(metrics)), 3.6), squeeze=False)
    axes = axes[0]
    axes[0].plot(steps, [row["train_loss"] for row in rows], marker="o")
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    splits = sorted({key.split("/")[0] for row in rows for key in row if "/" in key and key.split("/")[1] in metrics})
    for ax, metric in zip(axes[1:], metrics):
        for split in splits:
            ax.plot(steps, [row.get(f"{split}/{metric}", np.nan) for row in rows], marker="o", label=split)
            zero = rows[-1].get(f"{split}/forces_zero_mae") if metric == "forces_mae" else None
            if zero is not None:
                ax.axhline(zero, linestyle=":", linewidth=0.8, color="gray")
        title = TITLES.get(metric, metric)
        ax.set(title=title, xlabel="step", yscale="log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = atomic_savefig(fig, path)
    plt.close(fig)
    return path


TITLES = {"forces_mae": "force MAE (eV/A); dotted: zero-force baseline",
          "energy_per_atom_mae": "energy MAE per atom (eV)", "mse": "mean squared error"}


def parity_plots(pairs: dict[str, list], path: str | os.PathLike, title: str = "") -> Path:
    """Draw predicted against reference energies and force components.

    Args:
        pairs: ``MetricAccumulator.pairs``: ``{"energy": [(reference, prediction), ...], "forces": [...]}``.
        path: The PNG file to write (atomically).
        title: Prefix of the panel titles (e.g. the split).

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: If ``pairs`` has no energies or no forces.
    """
    plt = _figure_module()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, key, unit in ((axes[0], "energy", "eV"), (axes[1], "forces", "eV/A")):
        if not pairs.get(key):
            raise ValueError(f"pairs: expected {key} values, got none")
        true = np.concatenate([t.numpy().ravel() for t, _ in pairs[key]])
        pred = np.concatenate([p.numpy().ravel() for _, p in pairs[key]])
        ax.scatter(true, pred, s=3, alpha=0.4)
        low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
        ax.plot([low, high], [low, high], color="black", linewidth=0.8)
        ax.set(xlabel=f"reference {key} ({unit})", ylabel=f"predicted {key} ({unit})",
               title=f"{title} {key}: MAE {np.abs(true - pred).mean():.4g} {unit}")
    fig.tight_layout()
    path = atomic_savefig(fig, path)
    plt.close(fig)
    return path


def relaxation_curves(curves: dict[str, list[float]], path: str | os.PathLike, title: str = "") -> Path:
    """Draw energy against optimizer step for several relaxations, or several energy models along one.

    Args:
        curves: ``{label: energies}`` in eV (e.g. the model's energy and the reference's along the model's path).
        path: The PNG file to write (atomically).
        title: The figure's title.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: If ``curves`` is empty or a curve has no values.
    """
    if not curves or not all(len(values) for values in curves.values()):
        raise ValueError("curves: expected at least one non-empty energy curve")
    plt = _figure_module()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, energies in curves.items():
        ax.plot(range(len(energies)), energies, label=label)
    ax.set(xlabel="optimizer step", ylabel="energy (eV, referenced)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = atomic_savefig(fig, path)
    plt.close(fig)
    return path
