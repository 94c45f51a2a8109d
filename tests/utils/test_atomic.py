"""Atomic writes: the content lands under the target name; a failure leaves the old file and no temporary file."""

import pytest
import torch

from equilib.utils import atomic_path, atomic_save, atomic_savefig, atomic_write, atomic_write_csv


def test_content_lands_and_no_temporary_remains(tmp_path):
    target = tmp_path / "metrics.csv"
    with atomic_write(target, "w", newline="") as f:
        f.write("a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"
    with atomic_write(target, fsync=True) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"), atomic_write(target) as f:
        f.write(b"partial")
        raise RuntimeError("midway")
    with pytest.raises(RuntimeError, match="midway"), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("midway")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_temporary_name_keeps_the_suffix_and_directory(tmp_path):
    target = tmp_path / "curves.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target and not tmp.exists()
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and not tmp.exists()


def test_atomic_save_round_trips_and_mode_is_checked(tmp_path):
    atomic_save({"x": torch.arange(3)}, tmp_path / "blob.pt")
    assert torch.equal(torch.load(tmp_path / "blob.pt", weights_only=True)["x"], torch.arange(3))
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "x", "rb"):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["blob.pt"]


def test_csv_rows_with_missing_values_and_chosen_columns(tmp_path):
    import csv

    rows = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25, "valid": 0.75}]
    path = atomic_write_csv(rows, tmp_path / "all.csv")
    assert list(csv.reader(open(path))) == [["step", "loss", "valid"], ["1", "0.5", ""], ["2", "0.25", "0.75"]]
    chosen = atomic_write_csv(rows, tmp_path / "chosen.csv", columns=["valid", "step"])
    assert list(csv.reader(open(chosen))) == [["valid", "step"], ["", "1"], ["0.75", "2"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.csv", "chosen.csv"]  # no temporary left


def test_figure_is_written_with_its_suffix_format(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    figure.add_subplot().plot([0, 1], [1, 0])
    path = atomic_savefig(figure, tmp_path / "line.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["line.png"]
