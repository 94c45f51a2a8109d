"""End-of-training figures: learning curves from the metrics history, energy/force parity plots and relaxation
curves (matplotlib, headless Agg backend). Files are written to a temporary name and renamed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _figure_module():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    return path


def learning_curves(history: list[dict], path: str | os.PathLike) -> Path:
    """Training loss and each validation split's force and energy-per-atom MAE against the step."""
    if not history:
        raise ValueError("history: expected at least one evaluation, got none")
    plt = _figure_module()
    steps = [row["step"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(steps, [row["train_loss"] for row in history], marker="o")
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    splits = sorted({key.split("/")[0] for row in history for key in row if "/" in key})
    for split in splits:
        for ax, metric in ((axes[1], "forces_mae"), (axes[2], "energy_per_atom_mae")):
            ax.plot(steps, [row.get(f"{split}/{metric}", np.nan) for row in history], marker="o", label=split)
    for split in splits:
        zero = history[-1].get(f"{split}/forces_zero_mae")
        if zero is not None:
            axes[1].axhline(zero, linestyle=":", linewidth=0.8, color="gray")
    axes[1].set(title="force MAE (eV/A); dotted: zero-force baseline", xlabel="step", yscale="log")
    axes[2].set(title="energy MAE per atom (eV)", xlabel="step", yscale="log")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path = _save(fig, Path(path))
    plt.close(fig)
    return path


def parity_plots(pairs: dict[str, list], path: str | os.PathLike, title: str = "") -> Path:
    """Predicted against reference energies and force components, from ``MetricAccumulator.pairs``."""
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
    path = _save(fig, Path(path))
    plt.close(fig)
    return path


def relaxation_curves(curves: dict[str, list[float]], path: str | os.PathLike, title: str = "") -> Path:
    """Energy against optimizer step for several relaxations or several energy models along one (e.g. the model's
    energy and the reference's along the model's path, and the reference's own relaxation)."""
    if not curves or not all(len(values) for values in curves.values()):
        raise ValueError("curves: expected at least one non-empty energy curve")
    plt = _figure_module()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, energies in curves.items():
        ax.plot(range(len(energies)), energies, label=label)
    ax.set(xlabel="optimizer step", ylabel="energy (eV, referenced)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = _save(fig, Path(path))
    plt.close(fig)
    return path
