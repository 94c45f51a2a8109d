"""Point clouds with their true unit normals, for the normal-estimation task of Frame Averaging (Puny et al., ICLR
2022, section 5.1): analytic surfaces with random parameters and the surface meshes that the ``pyvista`` wheel ships
in ``pyvista/examples`` (read from the wheel as a zip file: pyvista is never installed or imported).

Every shape is sampled uniformly by area: on a mesh, a face with probability proportional to its area and a uniform
point in it (the square-root barycentric rule), the normal being the face's cross product; on an analytic surface
``r(u, v)``, by rejection in the parameter box with acceptance ``|r_u x r_v| / M`` (``M`` a bound of the area
element), the normal being ``r_u x r_v`` normalised. Each cloud is then centred on its centroid and scaled into the
unit ball (largest distance 1); normals are unchanged by that. Shapes stay upright: axis-aligned analytic surfaces,
meshes in their files' orientation. See README.md in this folder for the recipe, the file and the splits.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGE = "pyvista"
DEFAULT_CACHE = Path("~/.cache/equilib/pyvista")
EXAMPLES = "pyvista/examples/"
MESH_FILES = ("airplane.ply", "ant.ply", "nut.ply", "sphere.ply", "globe.vtk")  # the surface meshes of the wheel
ANALYTIC = ("sphere", "ellipsoid", "torus", "cylinder", "cone", "quadric")
SPLITS = ("train", "val", "test")
SEED = 0
POINTS = 512
SIZES = {"train": 4000, "val": 500, "test": 1000}
MESH_FRACTION = 0.4  # of the shapes, when meshes are given
CROP_PROBABILITY = 0.3
CROP_FRACTION = (0.3, 0.8)  # a crop keeps this fraction of the surface's samples (uniform in the range)
MESH_SCALE = 0.4  # meshes are scaled by exp(U(-MESH_SCALE, MESH_SCALE)) along each axis


# -- mesh files --------------------------------------------------------------------------------------------------------

PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
             "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4",
             "float32": "f4", "double": "f8", "float64": "f8"}


def _ply_header(data: bytes, where: str) -> tuple[str, list, int]:
    """The format, the elements ``[(name, count, [(property, type or ('list', count type, item type))])]`` and the
    offset of the body of a PLY file."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{where}: not a PLY file (no 'ply' magic or no end_header)")
    body = data.index(b"\n", end) + 1
    fmt, elements = None, []
    for line in data[:end].decode("ascii").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            if words[1] == "list":
                elements[-1][2].append((words[4], ("list", PLY_TYPES[words[2]], PLY_TYPES[words[3]])))
            else:
                elements[-1][2].append((words[2], PLY_TYPES[words[1]]))
        else:
            raise ValueError(f"{where}: unexpected PLY header line {line!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ValueError(f"{where}: unknown PLY format {fmt!r}")
    return fmt, elements, body


def read_ply(data: bytes, where: str = "ply") -> tuple[np.ndarray, list[list[int]]]:
    """The vertices and polygons of a PLY file (ASCII or binary, either byte order).

    Only ``x, y, z`` of the vertices and the ``vertex_indices`` (or ``vertex_index``) list of the faces are kept;
    other properties are read past.

    Args:
        data: The file's bytes.
        where: Name used in error messages.

    Returns:
        ``(vertices (V, 3) float64, polygons)``, a list of vertex-index lists.

    Raises:
        ValueError: If the file is not a PLY file, or lacks vertices or faces.
    """
    fmt, elements, offset = _ply_header(data, where)
    found: dict[str, dict[str, list]] = {}
    if fmt == "ascii":
        tokens = data[offset:].split()
        position = 0
        for name, count, props in elements:
            columns: dict[str, list] = {p: [] for p, _ in props}
            for _ in range(count):
                for prop, kind in props:
                    if isinstance(kind, tuple):
                        n = int(tokens[position])
                        columns[prop].append([int(t) for t in tokens[position + 1: position + 1 + n]])
                        position += 1 + n
                    else:
                        columns[prop].append(float(tokens[position]))
                        position += 1
            found[name] = columns
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        for name, count, props in elements:
            columns = {p: [] for p, _ in props}
            if not any(isinstance(kind, tuple) for _, kind in props):  # fixed-size rows: one structured read
                dtype = np.dtype([(p, order + kind) for p, kind in props])
                rows = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
                offset += dtype.itemsize * count
                found[name] = {p: rows[p].tolist() for p, _ in props}
                continue
            for _ in range(count):
                for prop, kind in props:
                    if isinstance(kind, tuple):
                        size = np.dtype(kind[1]).itemsize
                        n = int(np.frombuffer(data, dtype=order + kind[1], count=1, offset=offset)[0])
                        items = np.frombuffer(data, dtype=order + kind[2], count=n, offset=offset + size)
                        columns[prop].append(items.astype(np.int64).tolist())
                        offset += size + n * np.dtype(kind[2]).itemsize
                    else:
                        columns[prop].append(float(np.frombuffer(data, dtype=order + kind, count=1,
                                                                 offset=offset)[0]))
                        offset += np.dtype(kind).itemsize
            found[name] = columns
    vertex, face = found.get("vertex"), found.get("face")
    if vertex is None or not {"x", "y", "z"} <= set(vertex) or face is None:
        raise ValueError(f"{where}: expected 'vertex' (x, y, z) and 'face' elements, got {sorted(found)}")
    key = "vertex_indices" if "vertex_indices" in face else "vertex_index"
    if key not in face:
        raise ValueError(f"{where}: the faces have no vertex_indices list")
    vertices = np.stack([np.asarray(vertex[c], dtype=np.float64) for c in "xyz"], axis=1)
    return vertices, [list(map(int, p)) for p in face[key]]


VTK_TYPES = {"float": "f4", "double": "f8", "int": "i4", "vtktypeint64": "i8", "vtktypeint32": "i4", "long": "i8"}


def read_vtk_polydata(data: bytes, where: str = "vtk") -> tuple[np.ndarray, list[list[int]]]:
    """The points and polygons of a legacy VTK ``POLYDATA`` file (ASCII or BINARY, the pre-5.0 ``POLYGONS n size``
    layout).

    Args:
        data: The file's bytes.
        where: Name used in error messages.

    Returns:
        ``(points (P, 3) float64, polygons)``, a list of point-index lists.

    Raises:
        ValueError: If the file is not legacy VTK polydata with POINTS and POLYGONS.
    """
    lines = data.split(b"\n", 4)
    if len(lines) < 5 or not lines[0].startswith(b"# vtk DataFile") or lines[3].strip() != b"DATASET POLYDATA":
        raise ValueError(f"{where}: expected a legacy VTK file with 'DATASET POLYDATA'")
    binary = lines[2].strip() == b"BINARY"
    offset = sum(len(line) + 1 for line in lines[:4])
    points, polygons = None, None

    def header() -> list[str]:
        nonlocal offset
        while data[offset: offset + 1] in (b"\n", b" ", b"\r"):
            offset += 1
        end = data.index(b"\n", offset)
        words = data[offset:end].decode("ascii").split()
        offset = end + 1
        return words

    def numbers(count: int, kind: str) -> np.ndarray:
        nonlocal offset
        if binary:
            values = np.frombuffer(data, dtype=">" + kind, count=count, offset=offset)
            offset += values.nbytes
            return values
        tokens = data[offset:].split(maxsplit=count)
        values = np.array(tokens[:count], dtype=kind)
        offset = len(data) - len(tokens[count]) if len(tokens) > count else len(data)
        return values

    while offset < len(data) and (points is None or polygons is None):
        words = header()
        if not words:
            break
        if words[0] == "POINTS":
            count, kind = int(words[1]), VTK_TYPES.get(words[2])
            if kind is None:
                raise ValueError(f"{where}: unsupported POINTS type {words[2]!r}")
            points = numbers(3 * count, kind).astype(np.float64).reshape(count, 3)
        elif words[0] == "POLYGONS":
            count, size = int(words[1]), int(words[2])
            flat = numbers(size, "i4").astype(np.int64)
            polygons, k = [], 0
            for _ in range(count):
                n = int(flat[k])
                polygons.append(flat[k + 1: k + 1 + n].tolist())
                k += 1 + n
        else:
            raise ValueError(f"{where}: unsupported section {words[0]!r} before POINTS and POLYGONS")
    if points is None or polygons is None:
        raise ValueError(f"{where}: expected POINTS and POLYGONS sections")
    return points, polygons


def triangulate(polygons: list[list[int]]) -> np.ndarray:
    """Polygons as triangles, each fanned from its first vertex.

    Args:
        polygons: Lists of at least 3 vertex indices.

    Returns:
        (T, 3) int64 vertex indices.
    """
    triangles = [(p[0], p[k], p[k + 1]) for p in polygons for k in range(1, len(p) - 1)]
    return np.array(triangles, dtype=np.int64).reshape(-1, 3)


def read_mesh(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh from a ``.ply`` or legacy ``.vtk`` file's bytes: ``(vertices (V, 3), triangles (T, 3))``."""
    if name.endswith(".ply"):
        vertices, polygons = read_ply(data, name)
    elif name.endswith(".vtk"):
        vertices, polygons = read_vtk_polydata(data, name)
    else:
        raise ValueError(f"meshes: {name}: expected a .ply or .vtk file")
    triangles = triangulate(polygons)
    if len(triangles) == 0 or triangles.min() < 0 or triangles.max() >= len(vertices):
        raise ValueError(f"meshes: {name}: no triangles, or vertex indices outside 0..{len(vertices) - 1}")
    return vertices, triangles


def read_meshes(wheel: str | Path, names=MESH_FILES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The triangle meshes ``pyvista/examples/<name>`` of a pyvista wheel (read as a zip file).

    Args:
        wheel: The ``.whl`` file.
        names: File names in the wheel's ``pyvista/examples`` folder.

    Returns:
        ``{name: (vertices (V, 3) float64, triangles (T, 3) int64)}``.

    Raises:
        FileNotFoundError: If ``wheel`` does not exist.
        ValueError: If the wheel lacks one of the files or a file cannot be read.
    """
    wheel = Path(wheel)
    if not wheel.is_file():
        raise FileNotFoundError(f"wheel: no such file {wheel}")
    with zipfile.ZipFile(wheel) as archive:
        present = set(archive.namelist())
        missing = [n for n in names if EXAMPLES + n not in present]
        if missing:
            raise ValueError(f"wheel: {wheel.name} lacks {[EXAMPLES + n for n in missing]}")
        return {n: read_mesh(archive.read(EXAMPLES + n), n) for n in names}


# -- sampling ----------------------------------------------------------------------------------------------------------


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (the normalised cross product ``(b - a) x (c - a)``; zero for degenerate faces) and areas."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    normals = np.divide(cross, double_area[:, None], out=np.zeros_like(cross), where=double_area[:, None] > 0)
    return normals, 0.5 * double_area


def sample_mesh(vertices: np.ndarray, triangles: np.ndarray, count: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` points uniform by area on a triangle mesh, with the unit normals of their faces.

    Returns:
        ``(points (count, 3), normals (count, 3), face index (count,))``.
    """
    normals, areas = face_normals(vertices, triangles)
    if not areas.sum() > 0:
        raise ValueError("meshes: the mesh has zero area")
    faces = rng.choice(len(triangles), size=count, p=areas / areas.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    a, b, c = (vertices[triangles[faces, k]] for k in range(3))
    points = (1 - s)[:, None] * a + (s * (1 - r2))[:, None] * b + (s * r2)[:, None] * c
    return points, normals[faces], faces


@dataclass
class Piece:
    """A parametrised surface piece ``r(u, v)`` on the box ``low <= (u, v) <= high``.

    Attributes:
        fn: ``fn(u, v) -> (r, r_u, r_v)``, each (n, 3).
        low: Lower corner of the parameter box.
        high: Upper corner.
        bound: An upper bound of the area element ``|r_u x r_v|`` on the box.
    """

    fn: Callable
    low: tuple[float, float]
    high: tuple[float, float]
    bound: float

    @property
    def mass(self) -> float:
        return self.bound * (self.high[0] - self.low[0]) * (self.high[1] - self.low[1])


def _stack(*columns) -> np.ndarray:
    return np.stack(np.broadcast_arrays(*columns), axis=-1)


def _sphere(radius: float) -> list[Piece]:
    def fn(t, p):
        st, ct, sp, cp = np.sin(t), np.cos(t), np.sin(p), np.cos(p)
        zero = np.zeros_like(t)
        return (radius * _stack(st * cp, st * sp, ct), radius * _stack(ct * cp, ct * sp, -st),
                radius * _stack(-st * sp, st * cp, zero))
    return [Piece(fn, (0.0, 0.0), (math.pi, 2 * math.pi), radius**2)]


def _ellipsoid(a: float, b: float, c: float) -> list[Piece]:
    def fn(t, p):
        st, ct, sp, cp = np.sin(t), np.cos(t), np.sin(p), np.cos(p)
        zero = np.zeros_like(t)
        return _stack(a * st * cp, b * st * sp, c * ct), _stack(a * ct * cp, b * ct * sp, -c * st), \
            _stack(-a * st * sp, b * st * cp, zero)
    # |r_t x r_p| = sin t sqrt(b^2 c^2 sin^2 t cos^2 p + a^2 c^2 sin^2 t sin^2 p + a^2 b^2 cos^2 t): at most the
    # largest of the products
    return [Piece(fn, (0.0, 0.0), (math.pi, 2 * math.pi), max(b * c, a * c, a * b))]


def _torus(major: float, minor: float) -> list[Piece]:
    def fn(u, v):
        su, cu, sv, cv = np.sin(u), np.cos(u), np.sin(v), np.cos(v)
        ring = major + minor * cv
        return (_stack(ring * cu, ring * su, minor * sv), _stack(-ring * su, ring * cu, np.zeros_like(u)),
                _stack(-minor * sv * cu, -minor * sv * su, minor * cv))
    return [Piece(fn, (0.0, 0.0), (2 * math.pi, 2 * math.pi), minor * (major + minor))]


def _disk(radius: float, height: float, flip: bool) -> Piece:
    """The disk of ``radius`` at ``z = height`` in polar coordinates (s, phi); normal -z when ``flip``."""
    def fn(s, p):
        sp, cp = np.sin(p), np.cos(p)
        zero = np.zeros_like(s)
        r_s, r_p = _stack(cp, sp, zero), _stack(-s * sp, s * cp, zero)
        return _stack(s * cp, s * sp, zero + height), *((r_p, r_s) if flip else (r_s, r_p))
    return Piece(fn, (0.0, 0.0), (radius, 2 * math.pi), radius)


def _cylinder(radius: float, height: float, caps: bool) -> list[Piece]:
    def fn(p, z):
        sp, cp = np.sin(p), np.cos(p)
        zero = np.zeros_like(p)
        return _stack(radius * cp, radius * sp, z), _stack(-radius * sp, radius * cp, zero), _stack(zero, zero,
                                                                                                       zero + 1.0)
    pieces = [Piece(fn, (0.0, -height / 2), (2 * math.pi, height / 2), radius)]
    if caps:
        pieces += [_disk(radius, height / 2, False), _disk(radius, -height / 2, True)]
    return pieces


def _cone(radius: float, height: float, base: bool) -> list[Piece]:
    def fn(t, p):
        sp, cp = np.sin(p), np.cos(p)
        return (_stack(t * radius * cp, t * radius * sp, height * (1 - t)),
                _stack(radius * cp, radius * sp, np.full_like(t, -height)),
                _stack(-t * radius * sp, t * radius * cp, np.zeros_like(t)))
    pieces = [Piece(fn, (0.0, 0.0), (1.0, 2 * math.pi), radius * math.hypot(radius, height))]
    if base:
        pieces.append(_disk(radius, 0.0, True))
    return pieces


def _quadric(a: float, b: float, width: float, depth: float) -> list[Piece]:
    def fn(x, y):
        zero, one = np.zeros_like(x), np.ones_like(x)
        return _stack(x, y, a * x**2 + b * y**2), _stack(one, zero, 2 * a * x), _stack(zero, one, 2 * b * y)
    bound = math.sqrt(1 + 4 * a**2 * width**2 + 4 * b**2 * depth**2)
    return [Piece(fn, (-width, -depth), (width, depth), bound)]


def surface(kind: str, params: dict) -> list[Piece]:
    """The pieces of an analytic surface.

    Args:
        kind: One of ``ANALYTIC``: ``sphere`` (radius), ``ellipsoid`` (a, b, c: semi-axes along x, y, z), ``torus``
            (major, minor; axis z), ``cylinder`` (radius, height, caps; axis z, centred), ``cone`` (radius, height,
            base; apex at z = height, base disk at z = 0), ``quadric`` (a, b, width, depth: the patch
            ``z = a x^2 + b y^2`` over ``|x| <= width, |y| <= depth``; a paraboloid when a b > 0, a saddle when < 0).
        params: The parameters named above.

    Returns:
        The surface's :class:`Piece` list.
    """
    makers = {"sphere": _sphere, "ellipsoid": _ellipsoid, "torus": _torus, "cylinder": _cylinder, "cone": _cone,
              "quadric": _quadric}
    if kind not in makers:
        raise ValueError(f"kind: expected one of {ANALYTIC}, got {kind!r}")
    return makers[kind](**params)


def random_parameters(kind: str, rng: np.random.Generator) -> dict:
    """Random shape parameters of an analytic surface (the ranges of README.md)."""
    u = rng.uniform
    if kind == "sphere":
        return {"radius": u(0.5, 2.0)}
    if kind == "ellipsoid":
        return dict(zip("abc", u(0.3, 1.0, 3)))
    if kind == "torus":
        major = u(0.8, 1.5)
        return {"major": major, "minor": major * u(0.15, 0.6)}
    if kind == "cylinder":
        return {"radius": u(0.3, 1.0), "height": u(0.5, 3.0), "caps": bool(rng.random() < 0.5)}
    if kind == "cone":
        return {"radius": u(0.3, 1.0), "height": u(0.5, 2.0), "base": bool(rng.random() < 0.5)}
    if kind == "quadric":
        return {"a": u(-1.0, 1.0), "b": u(-1.0, 1.0), "width": u(0.5, 1.5), "depth": u(0.5, 1.5)}
    raise ValueError(f"kind: expected one of {ANALYTIC}, got {kind!r}")


def sample_surface(pieces: list[Piece], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points uniform by area on the union of the pieces, with unit normals ``r_u x r_v / |r_u x r_v|``.

    Rejection sampling: a piece with probability proportional to ``bound * box area``, a uniform parameter in its box,
    accepted with probability ``|r_u x r_v| / bound``; exact when each bound holds.

    Returns:
        ``(points (count, 3), normals (count, 3))``.
    """
    masses = np.array([p.mass for p in pieces])
    points, normals, have = [], [], 0
    while have < count:
        proposals = max(2 * (count - have), 64)
        which = rng.choice(len(pieces), size=proposals, p=masses / masses.sum())
        accept_u = rng.random(proposals)
        uv = rng.random((proposals, 2))
        for k, piece in enumerate(pieces):
            mine = which == k
            if not mine.any():
                continue
            low, high = np.array(piece.low), np.array(piece.high)
            u, v = (low + uv[mine] * (high - low)).T
            r, r_u, r_v = piece.fn(u, v)
            cross = np.cross(r_u, r_v)
            element = np.linalg.norm(cross, axis=1)
            if (element > piece.bound * (1 + 1e-9)).any():
                raise RuntimeError(f"the area bound {piece.bound} of a piece is exceeded: {element.max()}")
            keep = accept_u[mine] * piece.bound < element
            points.append(r[keep])
            normals.append(cross[keep] / element[keep, None])
            have += int(keep.sum())
    points, normals = np.concatenate(points), np.concatenate(normals)
    pick = rng.permutation(len(points))[:count]  # the pieces' points interleaved, in random order
    return points[pick], normals[pick]


def normalise(points: np.ndarray) -> np.ndarray:
    """Centred on the centroid and scaled so that the farthest point is at distance 1."""
    centred = points - points.mean(axis=0)
    return centred / np.linalg.norm(centred, axis=1).max()


def crop(sample: Callable[[int], tuple[np.ndarray, np.ndarray]], count: int, fraction: float,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random patch: ``count / fraction`` samples of the surface, the ``count`` nearest to one of them (a random
    one), in random order (so any prefix is a uniform subsample of the patch)."""
    points, normals = sample(math.ceil(count / fraction))
    centre = points[rng.integers(len(points))]
    nearest = np.argsort(np.linalg.norm(points - centre, axis=1), kind="stable")[:count]
    nearest = nearest[rng.permutation(count)]
    return points[nearest], normals[nearest]


def unit_box(vertices: np.ndarray) -> np.ndarray:
    """Vertices centred on their bounding box's centre and scaled so that its longest side is 1."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    return (vertices - (low + high) / 2) / (high - low).max()


def make_shape(rng: np.random.Generator, count: int, names: list[str], meshes: dict,
               mesh_fraction: float, crop_probability: float) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """One shape: an analytic surface (random kind and parameters) or, with probability ``mesh_fraction``, a mesh
    (random one, scaled by ``exp(U(-MESH_SCALE, MESH_SCALE))`` along each axis); cropped with probability
    ``crop_probability``; normalised. Returns the points, normals (float64), the index in ``names`` and the crop flag.
    """
    if meshes and rng.random() < mesh_fraction:
        name = sorted(meshes)[rng.integers(len(meshes))]
        vertices, triangles = meshes[name]
        vertices = unit_box(vertices) * np.exp(rng.uniform(-MESH_SCALE, MESH_SCALE, 3))

        def sample(n):
            return sample_mesh(vertices, triangles, n, rng)[:2]
        label = f"mesh:{name}"
    else:
        kind = ANALYTIC[rng.integers(len(ANALYTIC))]
        pieces = surface(kind, random_parameters(kind, rng))

        def sample(n):
            return sample_surface(pieces, n, rng)
        label = f"analytic:{kind}"
    cropped = bool(rng.random() < crop_probability)
    if cropped:
        points, normals = crop(sample, count, rng.uniform(*CROP_FRACTION), rng)
    else:
        points, normals = sample(count)
    return normalise(points), normals, names.index(label), cropped


def shape_names(meshes: dict) -> list[str]:
    """The labels of the shape families: ``analytic:<kind>`` then ``mesh:<file>``."""
    return [f"analytic:{k}" for k in ANALYTIC] + [f"mesh:{n}" for n in sorted(meshes)]


def generate(sizes: dict[str, int] = SIZES, points: int = POINTS, seed: int = SEED, meshes: dict | None = None,
             mesh_fraction: float = MESH_FRACTION, crop_probability: float = CROP_PROBABILITY,
             source: str = "") -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file (see README.md).

    Shape ``k`` of split ``s`` draws from ``np.random.default_rng([seed, s, k])`` (``s`` the split's position in
    ``SPLITS``), so it does not depend on the other shapes or on the split sizes.

    Args:
        sizes: Shapes per split, ``{"train": ..., "val": ..., "test": ...}``.
        points: Points per shape.
        seed: The seed.
        meshes: ``{file name: (vertices, triangles)}`` (None or empty: analytic surfaces only).
        mesh_fraction: Probability that a shape is a mesh (when meshes are given).
        crop_probability: Probability that a shape is a random patch of its surface.
        source: Where the meshes came from (the wheel and its sha256), stored in the file.

    Returns:
        ``{key: array}``.
    """
    meshes = meshes or {}
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown or any(int(n) < 0 for n in sizes.values()):
        raise ValueError(f"sizes: expected non-negative sizes of {SPLITS}, got {sizes}")
    if points < 1:
        raise ValueError(f"points: expected a positive number of points per shape, got {points}")
    names = shape_names(meshes)
    data = {"shape_names": np.array(names), "seed": np.array(seed, dtype=np.int64),
            "points_per_shape": np.array(points, dtype=np.int64), "mesh_fraction": np.array(float(mesh_fraction)),
            "crop_probability": np.array(float(crop_probability)), "source": np.array(source)}
    for s, split in enumerate(SPLITS):
        n = int(sizes.get(split, 0))
        xyz = np.zeros((n, points, 3), dtype=np.float32)
        normals = np.zeros((n, points, 3), dtype=np.float32)
        shape = np.zeros(n, dtype=np.int64)
        cropped = np.zeros(n, dtype=bool)
        for k in range(n):
            rng = np.random.default_rng([seed, s, k])
            p, q, shape[k], cropped[k] = make_shape(rng, points, names, meshes, mesh_fraction, crop_probability)
            xyz[k], normals[k] = p, q
        data[f"{split}_points"], data[f"{split}_normals"] = xyz, normals
        data[f"{split}_shape"], data[f"{split}_cropped"] = shape, cropped
    return data


def wheel_version(wheel: str | Path) -> str:
    """The version in a wheel's file name (``pyvista-0.49.1-py3-none-any.whl`` -> ``0.49.1``)."""
    match = re.fullmatch(rf"{PACKAGE}-([^-]+)-.*\.whl", Path(wheel).name)
    return match.group(1) if match else "unknown"


def pca_gaps(points: np.ndarray) -> np.ndarray:
    """The smaller relative gap ``(l_{k+1} - l_k) / l_3`` of each cloud's covariance spectrum (ascending eigenvalues):
    how far from degenerate its PCA frame is."""
    centred = points - points.mean(axis=1, keepdims=True)
    spectrum = np.linalg.eigvalsh(np.einsum("bmi,bmj->bij", centred, centred) / points.shape[1])
    return np.diff(spectrum, axis=1).min(axis=1) / spectrum[:, -1]


def summary(data: dict[str, np.ndarray]) -> dict:
    """The card's checks: shapes per split and family, crops, normal lengths, PCA spectral gaps."""
    names = data["shape_names"].tolist()
    out: dict = {"points_per_shape": int(data["points_per_shape"]), "families": names}
    for split in SPLITS:
        pts, nrm = data[f"{split}_points"], data[f"{split}_normals"]
        if len(pts) == 0:
            out[split] = {"shapes": 0}
            continue
        counts = np.bincount(data[f"{split}_shape"], minlength=len(names))
        gaps = pca_gaps(pts.astype(np.float64))
        lengths = np.linalg.norm(nrm.astype(np.float64), axis=-1)
        out[split] = {
            "shapes": int(len(pts)),
            "per_family": {n: int(c) for n, c in zip(names, counts)},
            "cropped": int(data[f"{split}_cropped"].sum()),
            "normal_length_max_deviation": float(np.abs(lengths - 1).max()),
            "largest_distance_to_centroid": float(np.linalg.norm(pts, axis=-1).max()),
            "pca_gap_min": float(gaps.min()), "pca_gap_median": float(np.median(gaps)),
            "pca_gap_below_1e-3": int((gaps < 1e-3).sum()), "pca_gap_below_1e-2": int((gaps < 1e-2).sum()),
        }
    return out
