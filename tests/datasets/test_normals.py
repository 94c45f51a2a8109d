"""The normals recipe: analytic normals against the implicit surfaces' gradients, uniform sampling by area, the mesh
readers (PLY ASCII and binary, legacy VTK) on meshes written here, mesh normals against cross products, a synthetic
pyvista wheel, determinism, the shipped file and the reader's errors (no network)."""

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets._recipes import write_npz
from datasets.normals.__main__ import SMALL_NAME, SMALL_OUT, main
from datasets.normals.generate import (
    ANALYTIC,
    EXAMPLES,
    MESH_FILES,
    generate,
    normalise,
    random_parameters,
    read_meshes,
    read_ply,
    read_vtk_polydata,
    sample_mesh,
    sample_surface,
    surface,
    triangulate,
)
from equilib.data import NormalsDataset

SMALL = SMALL_OUT / f"{SMALL_NAME}.npz"


def _rng(seed=0):
    return np.random.default_rng(seed)


def _gradient(kind: str, p: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The implicit function F (zero on the surface) and its gradient, for the pieces of each analytic kind (caps and
    bases as the planes they lie in)."""
    X, Y, Z = x.T
    zero, one = np.zeros_like(X), np.ones_like(X)
    if kind == "sphere":
        return (x**2).sum(1) - p["radius"] ** 2, 2 * x
    if kind == "ellipsoid":
        axes = np.array([p["a"], p["b"], p["c"]])
        return ((x / axes) ** 2).sum(1) - 1, 2 * x / axes**2
    if kind == "torus":
        s = np.hypot(X, Y)
        f = (s - p["major"]) ** 2 + Z**2 - p["minor"] ** 2
        return f, np.stack([2 * (s - p["major"]) * X / s, 2 * (s - p["major"]) * Y / s, 2 * Z], 1)
    if kind == "cylinder":
        side = np.abs(np.abs(Z) - p["height"] / 2) > 1e-12  # on the lateral surface, not a cap
        f = np.where(side, X**2 + Y**2 - p["radius"] ** 2, np.abs(Z) - p["height"] / 2)
        return f, np.where(side[:, None], np.stack([2 * X, 2 * Y, zero], 1), np.stack([zero, zero, one], 1))
    if kind == "cone":
        side = np.abs(Z) > 1e-12
        s = np.hypot(X, Y)
        f = np.where(side, s - p["radius"] * (1 - Z / p["height"]), Z)
        lateral = np.stack([X / s, Y / s, p["radius"] / p["height"] * one], 1)
        return f, np.where(side[:, None], lateral, np.stack([zero, zero, one], 1))
    if kind == "quadric":
        return Z - p["a"] * X**2 - p["b"] * Y**2, np.stack([-2 * p["a"] * X, -2 * p["b"] * Y, one], 1)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ANALYTIC)
def test_analytic_points_lie_on_the_surface_with_its_unit_normal(kind):
    rng = _rng(1)
    for _ in range(3):
        params = random_parameters(kind, rng)
        if kind in ("cylinder", "cone"):
            params[{"cylinder": "caps", "cone": "base"}[kind]] = True
        points, normals = sample_surface(surface(kind, params), 500, rng)
        f, grad = _gradient(kind, params, points)
        assert points.shape == normals.shape == (500, 3)
        assert np.abs(f).max() < 1e-9
        assert np.abs(np.linalg.norm(normals, axis=1) - 1).max() < 1e-12
        unit_grad = grad / np.linalg.norm(grad, axis=1, keepdims=True)
        assert np.linalg.norm(np.cross(normals, unit_grad), axis=1).max() < 1e-9  # parallel: orthogonal to tangents


def test_sphere_normals_are_the_outward_position_directions():
    points, normals = sample_surface(surface("sphere", {"radius": 1.7}), 1000, _rng(2))
    assert np.abs(normals - points / np.linalg.norm(points, axis=1, keepdims=True)).max() < 1e-12
    assert np.abs(np.linalg.norm(points, axis=1) - 1.7).max() < 1e-12


def test_sphere_sampling_is_uniform_by_area():
    n = 40_000
    points, _ = sample_surface(surface("sphere", {"radius": 1.0}), n, _rng(3))
    for axis in range(3):  # each hemisphere holds half the points (4 standard deviations)
        assert abs((points[:, axis] > 0).sum() - n / 2) < 4 * math.sqrt(n / 4)
    counts, _ = np.histogram(points[:, 2], bins=10, range=(-1, 1))  # Archimedes: z is uniform on [-1, 1]
    chi2 = ((counts - n / 10) ** 2 / (n / 10)).sum()
    assert chi2 < 30  # 9 degrees of freedom: P(chi2 > 30) < 0.001; uniform angles instead give thousands
    wrong, _ = np.histogram(np.cos(_rng(4).uniform(0, np.pi, n)), bins=10, range=(-1, 1))  # polar angles uniform
    assert ((wrong - n / 10) ** 2 / (n / 10)).sum() > 1000  # the check can fail


def test_area_sampling_weights_the_pieces_and_the_area_element():
    n, rng = 40_000, _rng(6)
    major, minor = 1.0, 0.5
    points, _ = sample_surface(surface("torus", {"major": major, "minor": minor}), n, rng)
    outer = (np.hypot(points[:, 0], points[:, 1]) > major).mean()  # outer half: (pi R + 2 r) / (2 pi R) of the area
    expected = (math.pi * major + 2 * minor) / (2 * math.pi * major)
    assert abs(outer - expected) < 4 * math.sqrt(expected * (1 - expected) / n) and abs(outer - 0.5) > 0.1
    radius, height = 0.5, 2.0
    points, _ = sample_surface(surface("cylinder", {"radius": radius, "height": height, "caps": True}), n, rng)
    caps = (np.abs(np.abs(points[:, 2]) - height / 2) < 1e-12).mean()
    expected = radius / (radius + height)  # 2 pi r^2 of 2 pi r^2 + 2 pi r h
    assert abs(caps - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def _two_triangles():
    """Two triangles in different planes, of areas 1 and 3."""
    vertices = np.array([[0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 1], [0, 3, 1], [0, 0, 3]], dtype=np.float64)
    return vertices, np.array([[0, 1, 2], [3, 4, 5]])


def test_mesh_sampling_lies_on_the_faces_with_their_cross_product_normals_and_uniform_area():
    vertices, triangles = _two_triangles()
    n = 20_000
    points, normals, faces = sample_mesh(vertices, triangles, n, _rng(7))
    a, b, c = (vertices[triangles[faces, k]] for k in range(3))
    cross = np.cross(b - a, c - a)
    expected = cross / np.linalg.norm(cross, axis=1, keepdims=True)
    assert np.abs(normals - expected).max() < 1e-12
    assert np.abs(((points - a) * expected).sum(1)).max() < 1e-12  # on the face's plane
    # inside the triangle: barycentric coordinates in [0, 1]
    a0, b0, c0 = vertices[triangles[0]]
    d = np.linalg.lstsq(np.stack([b0 - a0, c0 - a0], 1), (points[faces == 0] - a0).T, rcond=None)[0]
    assert d.min() >= -1e-12 and d.sum(0).max() <= 1 + 1e-12
    share = (faces == 1).mean()  # areas 1 and 3
    assert abs(share - 0.75) < 4 * math.sqrt(0.75 * 0.25 / n)


QUADS = (np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1.5]]), [[0, 1, 2, 3], [0, 1, 4], [1, 2, 4]])


def _ply(fmt: str) -> bytes:
    vertices, polygons = QUADS
    header = (f"ply\nformat {fmt} 1.0\ncomment written by a test\nelement vertex {len(vertices)}\nproperty float x\n"
              "property float y\nproperty float z\nproperty uchar red\n"
              f"element face {len(polygons)}\nproperty list uchar int vertex_indices\nend_header\n").encode()
    if fmt == "ascii":
        body = "".join(f"{x} {y} {z} 7\n" for x, y, z in vertices) + "".join(
            f"{len(p)} {' '.join(map(str, p))}\n" for p in polygons)
        return header + body.encode()
    order = "<" if fmt == "binary_little_endian" else ">"
    rows = np.zeros(len(vertices), dtype=[("x", order + "f4"), ("y", order + "f4"), ("z", order + "f4"), ("r", "u1")])
    rows["x"], rows["y"], rows["z"], rows["r"] = *vertices.T, 7
    faces = b"".join(np.uint8(len(p)).tobytes() + np.array(p, dtype=order + "i4").tobytes() for p in polygons)
    return header + rows.tobytes() + faces


def _vtk(binary: bool) -> bytes:
    vertices, polygons = QUADS
    size = sum(len(p) + 1 for p in polygons)
    head = (f"# vtk DataFile Version 4.2\nvtk output\n{'BINARY' if binary else 'ASCII'}\nDATASET POLYDATA\n"
            f"POINTS {len(vertices)} double\n").encode()
    flat = [v for p in polygons for v in (len(p), *p)]
    if binary:
        return (head + vertices.astype(">f8").tobytes() + f"\nPOLYGONS {len(polygons)} {size}\n".encode()
                + np.array(flat, dtype=">i4").tobytes() + b"\nPOINT_DATA 5\n")
    return (head + " ".join(map(str, vertices.ravel())).encode() + f"\nPOLYGONS {len(polygons)} {size}\n".encode()
            + " ".join(map(str, flat)).encode() + b"\n")


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
def test_ply_reader_round_trips(fmt):
    vertices, polygons = read_ply(_ply(fmt))
    assert np.array_equal(vertices, QUADS[0]) and polygons == QUADS[1]


@pytest.mark.parametrize("binary", [False, True])
def test_vtk_reader_round_trips(binary):
    vertices, polygons = read_vtk_polydata(_vtk(binary))
    assert np.array_equal(vertices, QUADS[0]) and polygons == QUADS[1]


def test_triangulate_fans_polygons_and_readers_reject_other_files():
    assert triangulate(QUADS[1]).tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 4], [1, 2, 4]]
    with pytest.raises(ValueError, match="not a PLY file"):
        read_ply(b"solid stl\n")
    with pytest.raises(ValueError, match="DATASET POLYDATA"):
        read_vtk_polydata(b"# vtk DataFile Version 4.2\nx\nASCII\nDATASET UNSTRUCTURED_GRID\nPOINTS 0 double\n")


def _wheel(path, names=MESH_FILES):
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(EXAMPLES + name, _ply("binary_little_endian") if name.endswith(".ply") else _vtk(True))
    return path


def test_meshes_are_read_from_a_wheel(tmp_path):
    meshes = read_meshes(_wheel(tmp_path / "pyvista-0.0.0-py3-none-any.whl"))
    assert sorted(meshes) == sorted(MESH_FILES)
    for vertices, triangles in meshes.values():
        assert vertices.shape == (5, 3) and triangles.shape == (4, 3)
    with pytest.raises(ValueError, match="lacks"):
        read_meshes(_wheel(tmp_path / "short.whl", MESH_FILES[:2]))
    with pytest.raises(FileNotFoundError, match="wheel: no such file"):
        read_meshes(tmp_path / "absent.whl")


def test_generate_is_deterministic_normalised_and_mixes_meshes():
    meshes = {"box.ply": (QUADS[0].astype(float), triangulate(QUADS[1]))}
    sizes = {"train": 12, "val": 2, "test": 3}
    data = generate(sizes, 64, seed=5, meshes=meshes, mesh_fraction=0.5, crop_probability=0.5)
    again = generate({"train": 4}, 64, seed=5, meshes=meshes, mesh_fraction=0.5, crop_probability=0.5)
    assert np.array_equal(data["train_points"][:4], again["train_points"])  # shape k does not depend on the sizes
    assert np.array_equal(data["train_normals"][:4], again["train_normals"]) and len(again["test_points"]) == 0
    other = generate(sizes, 64, seed=6, meshes=meshes, mesh_fraction=0.5, crop_probability=0.5)
    assert not np.allclose(other["train_points"], data["train_points"])
    names = data["shape_names"].tolist()
    assert names[-1] == "mesh:box.ply" and (data["train_shape"] == len(names) - 1).any()
    assert data["train_cropped"].any() and not data["train_cropped"].all()
    for split, n in sizes.items():
        points, normals = data[f"{split}_points"], data[f"{split}_normals"]
        assert points.shape == normals.shape == (n, 64, 3) and points.dtype == np.float32
        assert np.abs(points.mean(1)).max() < 1e-6
        assert np.abs(np.linalg.norm(points, axis=-1).max(1) - 1).max() < 1e-6
        assert np.abs(np.linalg.norm(normals, axis=-1) - 1).max() < 1e-6
    with pytest.raises(ValueError, match="sizes"):
        generate({"training": 3})
    centred = normalise(np.array([[0.0, 0, 0], [4, 0, 0]]))
    assert centred.tolist() == [[-1.0, 0, 0], [1.0, 0, 0]]


def test_the_shipped_file_is_what_the_recipe_makes(tmp_path):
    out = main(["--small", "--out", str(tmp_path)])
    assert out["bytes"] == SMALL.stat().st_size and SMALL.stat().st_size < 400_000
    with np.load(SMALL) as shipped, np.load(tmp_path / f"{SMALL_NAME}.npz") as made:
        assert sorted(shipped.files) == sorted(made.files)
        for key in shipped.files:
            assert np.array_equal(shipped[key], made[key]), key
    assert out["train"]["shapes"] == 80 and out["val"]["shapes"] == 20 and out["test"]["shapes"] == 20
    assert out["source"] == "analytic surfaces only"


def test_reader_loads_subsets_and_rotates():
    full = NormalsDataset(SMALL, "test", dtype=torch.float64)
    part = NormalsDataset(SMALL, "test", points=32, limit=5, dtype=torch.float64)
    assert len(full) == 20 and len(part) == 5 and part[0][0].shape == (32, 3)
    assert torch.equal(part.points, full.points[:5, :32]) and part.shape.tolist() == full.shape[:5].tolist()
    angle = torch.tensor(0.3, dtype=torch.float64)
    turn = torch.tensor([[1, 0, 0], [0, torch.cos(angle), -torch.sin(angle)], [0, torch.sin(angle), torch.cos(angle)]],
                        dtype=torch.float64)
    rotated = NormalsDataset(SMALL, "test", limit=5, rotations=turn.expand(5, 3, 3), dtype=torch.float64)
    assert torch.allclose(rotated.points, full.points[:5] @ turn.T, atol=1e-12)
    assert torch.allclose(rotated.normals, full.normals[:5] @ turn.T, atol=1e-12)


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: no normals file"):
        NormalsDataset(tmp_path / "absent.npz", "train")
    with pytest.raises(ValueError, match="split: .* has no split 'valid' .*; it has test, train, val"):
        NormalsDataset(SMALL, "valid")
    with pytest.raises(ValueError, match="points: expected 1..128"):
        NormalsDataset(SMALL, "train", points=129)
    with pytest.raises(ValueError, match="rotations: expected shape"):
        NormalsDataset(SMALL, "train", limit=3, rotations=torch.eye(3).expand(4, 3, 3))
    points = np.zeros((2, 4, 3), dtype=np.float32)
    normals = np.tile(np.array([0, 0, 1], dtype=np.float32), (2, 4, 1))
    write_npz(tmp_path / "mismatch.npz", {"train_points": points, "train_normals": normals[:, :3]})
    with pytest.raises(ValueError, match="of one shape"):
        NormalsDataset(tmp_path / "mismatch.npz", "train")
    write_npz(tmp_path / "long.npz", {"train_points": points, "train_normals": 2 * normals})
    with pytest.raises(ValueError, match="not unit vectors"):
        NormalsDataset(tmp_path / "long.npz", "train")
    write_npz(tmp_path / "ok.npz", {"train_points": points, "train_normals": normals})
    assert len(NormalsDataset(Path(tmp_path / "ok.npz"), "train")) == 2
