"""Groups, how their elements act on tensors, and equivariance checks: the vocabulary the rest of equilib shares.

A group (:class:`O3`, :class:`SO3`, :class:`E3`, :class:`SE3`, :class:`SO2` / :class:`O2` about an axis,
:class:`OrthogonalGroup` O(n), :class:`Scaling`, :class:`Translations`, :class:`Permutations`, products ``G * H``)
samples batches of :class:`GroupElement`: a linear part, a translation and a permutation, each optional. A
representation (:class:`Irreps`, :class:`Positions`, :class:`Vectors`, :class:`PseudoVectors`, :class:`Scalars`,
:class:`OnSet` for a set axis, :class:`Concat` for parts side by side, :class:`CartesianTensors` for sums of Cartesian
tensors such as ``"5x0+5x1"``) says how an element acts on a tensor, reading only the parts it needs. A linear group's
:meth:`Group.generators` (a Lie-algebra basis and discrete generators) say which linear maps commute with it (the
projectors of :mod:`equilib.soft`). :func:`equivariance_error` measures ``||f(g.x) - g.f(x)|| / ||f(x)||``;
:func:`assert_equivariant` is the one conformance check every layer and model is tested with.

Adding a group: subclass :class:`Group`, state the ``parts`` its elements use and implement ``sample`` (Haar when
compact), ``identity`` and ``contains``; composition and inverses come from :class:`GroupElement`. A group whose
elements need a new kind of part (say, a scale factor) adds that part to :class:`GroupElement` with its composition
rule. Adding an action: subclass :class:`Representation` with ``shape`` (the trailing axes it acts on) and
``act(g, x)`` for ``x`` of shape ``(len(g), ..., *shape)``. :class:`GLPlus` and :class:`SL` (n = 2, 3) are written
this way, through the polar decomposition (:func:`polar`, the global chart :func:`chart` / :func:`unchart`, the Haar
density :func:`haar_density` and Haar integrals :func:`monte_carlo_integral`), and :class:`Images` resamples an
image's pixel grid at ``g^-1 x``.

>>> import torch
>>> from equilib.groups import E3, Positions, Vectors, equivariance_error
>>> x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> to_centroid = lambda p: p.mean(0) - p  # vectors: rotate with g, ignore translations
>>> float(equivariance_error(to_centroid, E3(), x, Positions(), Vectors())) < 1e-12
True
"""

from ._element import GroupElement
from ._equivariance import TOLERANCE, assert_equivariant, equivariance_error
from ._groups import (
    E3,
    O2,
    O3,
    SE3,
    SO2,
    SO3,
    DirectProduct,
    Group,
    LinearGenerators,
    OrthogonalGroup,
    Permutations,
    Scaling,
    Translations,
)
from ._images import Images
from ._polar import SL, GLPlus, chart, haar_density, monte_carlo_integral, plane_rotations, polar, unchart
from ._representations import (
    Concat,
    Irreps,
    OnSet,
    Positions,
    PseudoVectors,
    Representation,
    Scalars,
    Vectors,
)
from ._tensors import CartesianTensors, parse_tensor_terms

__all__ = [
    "E3", "O2", "O3", "SE3", "SL", "SO2", "SO3", "TOLERANCE", "CartesianTensors", "Concat", "DirectProduct", "GLPlus",
    "Group", "GroupElement", "Images", "Irreps", "LinearGenerators", "OnSet", "OrthogonalGroup", "Permutations",
    "Positions", "PseudoVectors", "Representation", "Scalars", "Scaling", "Translations", "Vectors",
    "assert_equivariant", "chart", "equivariance_error", "haar_density", "monte_carlo_integral", "parse_tensor_terms",
    "plane_rotations", "polar", "unchart",
]
