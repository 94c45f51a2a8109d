"""Curvature reports: one directory with ``report.md`` (text, tables and figures), a CSV file per table and PNG
figures, all written atomically.

:class:`Report` collects the parts and writes them; :func:`plot_stability` draws step size times curvature along
training against the stability limits (``eta lambda_max`` and ``eta tr(H)`` against 2, see
:func:`~equilib.curvature.stability`); :func:`write_density` writes a spectral density's figure and its raw nodes and
weights. The ``curvature`` training callback and the ``equilib curvature`` command both write their results this way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..utils import atomic_savefig, atomic_write, atomic_write_csv
from ._density import SpectralDensity, plot_density

REPORT = "report.md"


def _cell(value) -> str:
    """A table cell: floats to 6 significant digits, None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Report:
    """A report directory: ``report.md`` with paragraphs, tables (each also written as ``<name>.csv``) and figures.

    Args:
        directory: Where the files go (created with its parents).
        title: The report's first heading.

    Attributes:
        directory: The directory, a ``pathlib.Path``.
        files: The paths written so far (tables' CSV files and the figures added).

    Examples:
        >>> import tempfile
        >>> report = Report(tempfile.mkdtemp(), "Curvature")
        >>> _ = report.table("trace", [{"estimator": "hutch++", "value": 12.25, "stderr": 0.5}], "Trace")
        >>> print(report.write().read_text())
        # Curvature
        <BLANKLINE>
        ## Trace
        <BLANKLINE>
        | estimator | value | stderr |
        |---|---|---|
        | hutch++ | 12.25 | 0.5 |
        <BLANKLINE>
        All rows: [trace.csv](trace.csv)
        <BLANKLINE>
    """

    def __init__(self, directory: str | os.PathLike, title: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []
        self._lines = [f"# {title}", ""]

    def paragraph(self, text: str) -> None:
        """Add a paragraph of markdown text.

        Args:
            text: The text.
        """
        self._lines += [text, ""]

    def table(self, name: str, rows: Sequence[dict], heading: str, columns: Sequence[str] | None = None,
              shown: int | None = None, note: str | None = None) -> Path:
        """Write ``rows`` to ``<name>.csv`` and add them as a markdown table under a heading.

        Args:
            name: The CSV file's stem (letters, digits, ``_`` and ``-``).
            rows: One mapping per row.
            heading: The section heading above the table.
            columns: The columns in order; None: every key of the rows, in order of first appearance.
            shown: Show only the first ``shown`` rows in the markdown (the CSV has all); None: all.
            note: A paragraph under the heading, before the table.

        Returns:
            The CSV file's path.

        Raises:
            ValueError: If ``name`` has other characters, or ``rows`` is empty.
        """
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"name: expected letters, digits, '_' and '-', got {name!r}")
        if not rows:
            raise ValueError(f"rows: expected at least one row for table {name!r}, got none")
        columns = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
        path = atomic_write_csv(rows, self.directory / f"{name}.csv", columns)
        self.files.append(path)
        self._lines += [f"## {heading}", ""]
        if note:
            self._lines += [note, ""]
        self._lines.append("| " + " | ".join(columns) + " |")
        self._lines.append("|" + "---|" * len(columns))
        for row in rows[:shown]:
            self._lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
        more = f" ({len(rows) - shown} more)" if shown is not None and len(rows) > shown else ""
        self._lines += ["", f"All rows{more}: [{path.name}]({path.name})", ""]
        return path

    def figure(self, path: str | os.PathLike, heading: str, note: str | None = None) -> None:
        """Add a figure already written in the report's directory.

        Args:
            path: The image file (its name is linked relative to the report).
            heading: The section heading above it.
            note: A paragraph under the image.
        """
        path = Path(path)
        self.files.append(path)
        self._lines += [f"## {heading}", "", f"![{heading}]({path.name})", ""]
        if note:
            self._lines += [note, ""]

    def write(self) -> Path:
        """Write ``report.md`` (atomically).

        Returns:
            Its path.
        """
        path = self.directory / REPORT
        with atomic_write(path, "w") as f:
            f.write("\n".join(self._lines))
        return path


def plot_stability(steps: Sequence[int], ratios: dict[str, Sequence[float | None]], path: str | os.PathLike,
                   limits: dict[str, float] | None = None) -> Path:
    """Draw step size times curvature against the training step, with the stability limits as horizontal lines.

    The y axis is logarithmic when every value is positive (an indefinite Hessian early in training can have a
    negative trace; then it is symmetric-logarithmic, linear within the smallest nonzero magnitude). Missing (None or
    NaN) values are left out.

    Args:
        steps: The training steps.
        ratios: ``{label: values}``, one value per step (e.g. ``"eta lambda_max"`` and ``"eta tr(H)"``).
        path: The PNG file to write (atomically); its directory must exist.
        limits: ``{label: value}`` of the horizontal lines; None: ``{"limit 2": 2.0}`` (GD's ``eta lambda_max`` and
            SGD's ``eta tr(H)``).

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: If a series' length differs from ``steps``, or no series has a finite value.
    """
    limits = {"limit 2": 2.0} if limits is None else limits
    series = {}
    for label, values in ratios.items():
        if len(values) != len(steps):
            raise ValueError(f"ratios: {label!r} has {len(values)} values for {len(steps)} steps")
        points = [(s, float(v)) for s, v in zip(steps, values) if v is not None and math.isfinite(float(v))]
        if points:
            series[label] = points
    if not series:
        raise ValueError("ratios: expected at least one finite value, got none")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.6))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for label, points in series.items():
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=label)
    for k, (label, value) in enumerate(limits.items()):
        ax.axhline(value, color="black", linestyle=("--", ":", "-.")[k % 3], linewidth=1.0, label=label)
    values = [v for points in series.values() for _, v in points]
    if all(v > 0 for v in values):
        ax.set_yscale("log")
    else:  # linear within the smallest nonzero magnitude, logarithmic beyond
        ax.set_yscale("symlog", linthresh=min((abs(v) for v in values if v != 0), default=1.0))
    ax.set(xlabel="step", ylabel="step size x curvature")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return atomic_savefig(figure, path)


def write_density(result: SpectralDensity, directory: str | os.PathLike, stem: str = "density") -> list[Path]:
    """Write a spectral density's figure (``<stem>.png``, :func:`~equilib.curvature.plot_density`) and its raw
    Gauss quadrature nodes and weights (``<stem>.csv``: probe, node, weight), both atomically.

    Args:
        result: A :func:`~equilib.curvature.spectral_density` result.
        directory: An existing directory.
        stem: The files' stem.

    Returns:
        ``[png, csv]`` paths.

    Raises:
        TypeError: If ``result`` is not a :class:`~equilib.curvature.SpectralDensity`.
    """
    if not isinstance(result, SpectralDensity):
        raise TypeError(f"result: expected a SpectralDensity, got {type(result).__name__}")
    directory = Path(directory)
    figure = plot_density(result, directory / f"{stem}.png")
    rows = [{"probe": p, "node": float(x), "weight": float(w)}
            for p, (nodes, weights) in enumerate(zip(result.nodes, result.weights))
            for x, w in zip(nodes.tolist(), weights.tolist())]
    return [figure, atomic_write_csv(rows, directory / f"{stem}.csv", ("probe", "node", "weight"))]
