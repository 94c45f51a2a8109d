"""Groups and their actions: axioms on sampled elements, Haar measures, homomorphisms, agreement with e3nn, errors."""

import doctest
import math

import numpy as np
import pytest
import torch
from e3nn import o3
from scipy import stats

import equilib.groups
from equilib.groups import (
    E3,
    O2,
    O3,
    SE3,
    SO2,
    SO3,
    Concat,
    GroupElement,
    Irreps,
    OnSet,
    OrthogonalGroup,
    Permutations,
    Positions,
    PseudoVectors,
    Scalars,
    Scaling,
    Translations,
    Vectors,
    _equivariance,
    _representations,
    equivariance_error,
)

F64 = torch.float64
GROUPS = {
    "O3": O3(), "SO3": SO3(), "E3": E3(), "SE3": SE3(scale=2.0), "SO2(z)": SO2(), "O2(1,1,0)": O2((1.0, 1.0, 0.0)),
    "translations": Translations(3, 0.5), "S5": Permutations(5), "E3xS5": E3() * Permutations(5),
    "SO2(x)xT": SO2((1.0, 0.0, 0.0)) * Translations(3), "O5": OrthogonalGroup(5), "O2(n=2)": OrthogonalGroup(2),
    "scaling": Scaling(3, 0.5), "SO3+scaling": Scaling(base=SO3()), "O5+scaling": Scaling(base=OrthogonalGroup(5)),
}


def _close(a: GroupElement, b: GroupElement, atol=1e-12) -> bool:
    pa, pb = a.parts(), b.parts()
    if pa.keys() != pb.keys():
        return False
    return all(torch.equal(pa[k], pb[k]) if k == "permutation" else torch.allclose(pa[k], pb[k], atol=atol) for k in pa)


@pytest.mark.parametrize("name", GROUPS)
def test_group_axioms_on_sampled_elements(name, generator):
    group = GROUPS[name]
    g, h, k = (group.sample(16, generator=generator) for _ in range(3))
    e = group.identity(16)
    assert group.contains(g).all() and group.contains(e).all()
    assert group.contains(g.compose(h)).all()  # closure
    assert group.contains(g.inverse()).all()
    assert _close(g.compose(h).compose(k), g.compose(h.compose(k)))  # associativity
    assert _close(g.compose(g.inverse()), e) and _close(g.inverse().compose(g), e)  # inverse
    assert _close(e.compose(g), g) and _close(g.compose(e), g)  # identity
    assert not _close(g, e)  # a sample is not the identity


def test_contains_rejects_elements_of_other_groups(generator):
    improper = O3().sample(64, generator=generator)
    det = torch.linalg.det(improper.linear)
    assert (SO3().contains(improper) == (det > 0)).all() and (det < 0).any()
    assert not SO2().contains(SO3().sample(4, generator=generator)).any()
    o2 = O2().sample(64, generator=generator)
    assert SO2().contains(o2).any() and not SO2().contains(o2).all() and O3().contains(o2).all()
    assert not O3().contains(E3().sample(2, generator=generator)).any()  # a translation part is not in O(3)
    assert not Permutations(4).contains(Permutations(5).sample(2, generator=generator)).any()
    bad = GroupElement(permutation=torch.tensor([[0, 0, 2]]))
    assert not Permutations(3).contains(bad).any()


def test_so3_samples_are_haar_distributed():
    """The rotation angle of a Haar rotation has density (1 - cos t) / pi on [0, pi]: CDF (t - sin t) / pi. The trace
    is the character of the vector representation: mean 0, second moment 1."""
    rotations = SO3().sample(4000, generator=torch.Generator().manual_seed(0)).linear
    trace = rotations.diagonal(dim1=1, dim2=2).sum(-1)
    angle = torch.arccos(((trace - 1) / 2).clamp(-1, 1)).numpy()
    assert stats.kstest(angle, lambda t: (t - np.sin(t)) / np.pi).pvalue > 0.01
    assert abs(float(trace.mean())) < 0.05 and abs(float(trace.pow(2).mean()) - 1) < 0.08
    # a biased sampler (uniform angle about a uniform axis) fails the same test
    biased = torch.rand(4000, generator=torch.Generator().manual_seed(2), dtype=F64) * math.pi
    assert stats.kstest(biased.numpy(), lambda t: (t - np.sin(t)) / np.pi).pvalue < 1e-6


def test_o3_so2_o2_and_permutation_samples_are_uniform():
    gen = torch.Generator().manual_seed(3)
    det = torch.linalg.det(O3().sample(4000, generator=gen).linear)
    assert abs(float((det < 0).double().mean()) - 0.5) < 0.03
    axis = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    for group in (SO2(axis), O2(axis)):
        m = group.sample(4000, generator=gen).linear
        u = torch.tensor([1.0, 0.0, 0.0], dtype=F64)  # perpendicular to the axis: its image is uniform on a circle
        image = m @ u
        v = torch.linalg.cross(axis, u)
        angle = torch.atan2(image @ v, image @ u).numpy()
        assert stats.kstest(angle, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 0.01
    perms = Permutations(4).sample(24 * 200, generator=gen).permutation
    counts = np.unique(perms.numpy(), axis=0, return_counts=True)[1]
    assert len(counts) == 24 and stats.chisquare(counts).pvalue > 0.01


def test_orthogonal_group_samples_are_haar_distributed():
    """For Haar O(n), n >= 4, the trace's first four moments are those of a standard normal (0, 1, 0, 3; Diaconis and
    Shahshahani 1994) and half the elements are improper; QR without the sign correction is not Haar."""
    gen = torch.Generator().manual_seed(5)
    linear = OrthogonalGroup(5).sample(20000, generator=gen).linear
    trace = linear.diagonal(dim1=1, dim2=2).sum(-1)
    moments = [float(trace.pow(k).mean()) for k in (1, 2, 3, 4)]
    assert abs(moments[0]) < 0.04 and abs(moments[1] - 1) < 0.05 and abs(moments[2]) < 0.15
    assert abs(moments[3] - 3) < 0.25
    assert abs(float((torch.linalg.det(linear) < 0).double().mean()) - 0.5) < 0.02
    q, _ = torch.linalg.qr(torch.randn(20000, 5, 5, generator=gen, dtype=F64))  # LAPACK's signs: biased
    assert abs(float(q.diagonal(dim1=1, dim2=2).sum(-1).pow(2).mean()) - 1) > 0.2


def test_scaling_samples_are_log_normal_and_contains_checks_the_base():
    gen = torch.Generator().manual_seed(6)
    g = Scaling(3, scale=0.3, base=SO3()).sample(8000, generator=gen)
    log_factor = torch.linalg.det(g.linear).log() / 3
    assert abs(float(log_factor.mean())) < 0.01 and abs(float(log_factor.std()) - 0.3) < 0.01
    assert Scaling(base=O3()).contains(g).all() and not Scaling(3).contains(g).any()
    assert not Scaling(base=SO3()).contains(GroupElement(linear=-torch.eye(3, dtype=F64)[None])).any()
    assert not SO3().contains(g).any()
    with pytest.raises(ValueError, match="base: expected a linear group with generators"):
        Scaling(base=Translations(3))
    with pytest.raises(ValueError, match="scale: expected a positive number"):
        Scaling(scale=0.0)
    with pytest.raises(ValueError, match="dim: expected an int of at least 2"):
        OrthogonalGroup(1)


def _rep_cases():
    return {
        "irreps": (O3(), Irreps("2x0e+1x1o+1x2e+0o+1e+3o"), (4, 21)),
        "vectors": (E3(), Vectors(), (6, 3)),
        "pseudovectors": (O3(), PseudoVectors(), (6, 3)),
        "positions": (E3(), Positions(), (6, 3)),
        "positions-so2": (SO2((1.0, 2.0, 3.0)) * Translations(3), Positions(), (6, 3)),
        "set-of-positions": (E3() * Permutations(6), OnSet(Positions()), (6, 3)),
        "set-of-irreps": (O3() * Permutations(5), OnSet(Irreps("0e+1o+2e")), (2, 5, 9)),
        "set-of-scalars": (Permutations(7), OnSet(Scalars()), (7,)),
        "concat": (E3() * Permutations(5), OnSet(Concat(Positions(), Vectors(), Scalars(1), PseudoVectors())), (5, 10)),
    }


@pytest.mark.parametrize("case", list(_rep_cases()))
def test_actions_are_homomorphisms(case, generator):
    """(gh).x == g.(h.x), e.x == x, and the action changes x (it is not the trivial one)."""
    group, rep, shape = _rep_cases()[case]
    x = torch.randn(8, *shape, generator=generator, dtype=F64)
    g, h = group.sample(8, generator=generator), group.sample(8, generator=generator)
    assert torch.allclose(rep.act(g.compose(h), x), rep.act(g, rep.act(h, x)), atol=1e-12)
    assert torch.allclose(rep.act(group.identity(8), x), x, atol=1e-14)
    assert torch.allclose(rep.act(g.inverse(), rep.act(g, x)), x, atol=1e-12)
    assert (rep.act(g, x) - x).abs().max() > 1e-3


def test_actions_by_hand(generator):
    g = (E3() * Permutations(4)).sample(3, generator=generator)
    x = torch.randn(3, 4, 3, generator=generator, dtype=F64)
    moved = OnSet(Positions()).act(g, x)
    for k in range(3):
        expected = x[k][g.permutation[k]] @ g.linear[k].T + g.translation[k]
        assert torch.allclose(moved[k], expected, atol=1e-14)
    assert torch.allclose(Vectors().act(g, x), x @ g.linear.transpose(1, 2), atol=1e-14)
    det = torch.linalg.det(g.linear).view(-1, 1, 1)
    assert torch.allclose(PseudoVectors().act(g, x), det * (x @ g.linear.transpose(1, 2)), atol=1e-14)
    # a pseudo-vector is the cross product of two vectors
    a, b = torch.randn(2, 3, 3, generator=generator, dtype=F64)
    left = torch.linalg.cross(Vectors().act(g, a), Vectors().act(g, b))
    assert torch.allclose(left, PseudoVectors().act(g, torch.linalg.cross(a, b)), atol=1e-12)


def test_irreps_action_agrees_with_e3nn(generator):
    irreps = "2x0e+1x1o+1x2e+1x3o+0o+1e+2o"
    g = O3().sample(6, generator=generator)
    x = torch.randn(6, o3.Irreps(irreps).dim, generator=generator, dtype=F64)
    ours = Irreps(irreps).act(g, x)
    theirs = torch.einsum("nij,nj->ni", o3.Irreps(irreps).D_from_matrix(g.linear), x)
    assert (ours - theirs).abs().max() < 1e-5  # e3nn's D_from_matrix is accurate to ~1e-6 (angles in between)
    # l = 1 in e3nn's (x, y, z) order: odd parity is a Cartesian vector, even a pseudo-vector
    v = torch.randn(6, 3, generator=generator, dtype=F64)
    assert torch.allclose(Irreps("1o").act(g, v), Vectors().act(g, v), atol=1e-12)
    assert torch.allclose(Irreps("1e").act(g, v), PseudoVectors().act(g, v), atol=1e-12)


def test_equivariance_error_is_differentiable_and_batched(generator):
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 3, dtype=F64)  # a generic linear map of vectors: not rotation-equivariant
    x = torch.randn(5, 3, generator=generator, dtype=F64)
    g = O3().sample(6, generator=generator)
    looped = equivariance_error(layer, O3(), x, Vectors(), Vectors(), elements=g, reduction="none")
    batched = equivariance_error(layer, O3(), x, Vectors(), Vectors(), elements=g, reduction="none", batched=True)
    assert looped.shape == (6,) and torch.allclose(looped, batched, atol=1e-14) and looped.min() > 1e-2
    loss = equivariance_error(layer, O3(), x, Vectors(), Vectors(), elements=g, reduction="mean")
    loss.backward()
    assert layer.weight.grad.abs().max() > 0
    # minimising it makes the map equivariant: a multiple of the identity
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        equivariance_error(layer, O3(), x, Vectors(), Vectors(), samples=4, generator=generator,
                           reduction="mean").backward()
        optimizer.step()
    assert equivariance_error(layer, O3(), x, Vectors(), Vectors(), samples=8, generator=generator) < 0.05


def test_equivariance_error_of_an_exactly_equivariant_map_has_a_zero_gradient(generator):
    """sqrt has no derivative at 0: an exactly equivariant map (a zero output head, as models start) must get the
    subgradient 0, or a penalty at strength 0 would turn every parameter into NaN."""
    scale = torch.ones(1, dtype=F64, requires_grad=True)
    x = torch.randn(5, 3, generator=generator, dtype=F64)
    error = equivariance_error(lambda v: scale * v, O3(), x, Vectors(), Vectors(), samples=3, generator=generator,
                               reduction="mean")
    (0.0 * error).backward()
    assert float(error) == 0.0 and scale.grad.item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equivariance_error_in_float32_and_float64(dtype, generator):
    x = torch.randn(7, 3, generator=generator, dtype=F64).to(dtype)

    def centred(p):
        return p - p.mean(0)

    def mirrored(p):
        return 2 * p.mean(0) - p

    error = equivariance_error(centred, E3(), x, Positions(), Vectors(), samples=4, generator=generator)
    assert error.dtype == dtype and error < _equivariance.TOLERANCE[dtype]
    tol = _equivariance.TOLERANCE[dtype]
    assert equivariance_error(mirrored, E3(), x, Positions(), Positions(), samples=4, generator=generator) < tol
    assert equivariance_error(mirrored, E3(), x, Positions(), Vectors(), samples=4, generator=generator) > 0.1


def test_clear_errors(generator):
    x = torch.randn(5, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"inputs\[0\]: Irreps\('1x0e\+1x1o'\) acts on tensors of shape "
                                         r"\(\.\.\., 4\), got shape \(5, 3\)"):
        equivariance_error(lambda t: t, O3(), x, Irreps("0e+1o"), Irreps("0e+1o"))
    with pytest.raises(ValueError, match=r"in_reps: expected one representation per input \(2\), got 1"):
        equivariance_error(lambda a, b: a, O3(), (x, x), Vectors(), Vectors())
    with pytest.raises(ValueError, match=r"outputs\[1\]: Vectors\(\) acts on tensors of shape \(\.\.\., 3\), "
                                         r"got shape \(5,\)"):
        equivariance_error(lambda t: (t, t[:, 0]), O3(), x, Vectors(), (Vectors(), Vectors()))
    with pytest.raises(TypeError, match=r"in_reps\[0\]: expected a Representation"):
        equivariance_error(lambda t: t, O3(), x, "1o", Vectors())
    with pytest.raises(ValueError, match="reduction"):
        equivariance_error(lambda t: t, O3(), x, Vectors(), Vectors(), reduction="sum")
    with pytest.raises(ValueError, match="a permutation of 4 items acting on a set of 5"):
        equivariance_error(lambda t: t, Permutations(4), x, OnSet(Vectors()), OnSet(Vectors()))
    with pytest.raises(ValueError, match="needs a 2 x 2 linear part"):
        equivariance_error(lambda t: t, O3(), x[:, :2], Vectors(2), Vectors(2))
    with pytest.raises(ValueError, match="axis: expected a non-zero 3-vector"):
        SO2((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="same part"):
        O3() * SO3()
    with pytest.raises(ValueError, match="n: expected a non-negative int"):
        O3().sample(-1)


def test_doctests():
    for module in (equilib.groups, _equivariance, _representations):
        assert doctest.testmod(module, raise_on_error=False).failed == 0


@pytest.mark.parametrize("batched", [False, True])
def test_a_scalar_output_per_sample(batched, generator):
    """A 0-d output (an energy) is compared per sample like any other."""
    x = torch.randn(5, 3, generator=generator, dtype=torch.float64)

    def energy(points):
        return (points - points.mean(dim=-2, keepdim=True)).pow(2).sum(dim=(-2, -1))

    def first_coordinate(points):
        return points[..., 0, 0]

    rep, out = OnSet(Positions()), Scalars()
    assert float(equivariance_error(energy, E3(), x, rep, out, generator=generator, batched=batched)) < 1e-12
    assert float(equivariance_error(first_coordinate, E3(), x, rep, out, generator=generator, batched=batched)) > 1e-2
