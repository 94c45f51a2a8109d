"""NBodyDataset against the file it reads, and its errors."""

import numpy as np
import pytest
import torch

from equilib.data import NBodyDataset

PATH = "datasets/nbody/data/charged5_small.npz"


def test_examples_are_the_files_frames():
    data = np.load(PATH)
    dataset = NBodyDataset(PATH, "valid", limit=7, dtype=torch.float64)
    assert len(dataset) == 7
    x, v, q, target = dataset[3]
    frames = data["frames"].tolist()
    assert np.array_equal(x.numpy(), data["valid_loc"][3, frames.index(30)])
    assert np.array_equal(v.numpy(), data["valid_vel"][3, frames.index(30)])
    assert np.array_equal(target.numpy(), data["valid_loc"][3, frames.index(40)])
    assert np.array_equal(q.numpy(), data["valid_charges"][3]) and x.shape == (5, 3)


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: no n-body file at .*missing.npz .*python -m datasets.nbody"):
        NBodyDataset(tmp_path / "missing.npz", "train")
    with pytest.raises(ValueError, match="split: .* has no split 'val'; it has test, train, valid"):
        NBodyDataset(PATH, "val")
    with pytest.raises(ValueError, match=r"target_frame: frame 41 is not in .* \(saved frames: \[30, 40\]\)"):
        NBodyDataset(PATH, "train", target_frame=41)
