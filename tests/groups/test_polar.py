"""GL+(n) and SL(n) through the polar decomposition: group axioms, the chart and its edge, Haar densities against a
brute-force Jacobian, invariant Monte Carlo integrals, Haar rotation factors, membership, equivariance, errors."""

import math

import pytest
import torch
from scipy import stats

from equilib.groups import (
    SL,
    SO3,
    GLPlus,
    GroupElement,
    OnSet,
    Permutations,
    Positions,
    Scalars,
    Translations,
    assert_equivariant,
    chart,
    equivariance_error,
    haar_density,
    monte_carlo_integral,
    polar,
    unchart,
)
from equilib.groups._polar import polar_inverse, polar_product

F64 = torch.float64
GROUPS = {"GL+(2)": GLPlus(2), "GL+(3)": GLPlus(3), "SL(2)": SL(2), "SL(3)": SL(3, scale=0.8)}


def _rotation(n: int, angle: float, axis=(1.0, 2.0, 2.0)) -> torch.Tensor:
    """The rotation by ``angle`` (about ``axis`` for n = 3), through ``matrix_exp``: independent of the code tested."""
    if n == 2:
        generator = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    else:
        a = torch.tensor(axis, dtype=F64)
        a = a / a.norm()
        generator = torch.tensor([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]], dtype=F64)
    return torch.linalg.matrix_exp(angle * generator)


def _symmetric_with(n: int, eigenvalues, seed: int) -> torch.Tensor:
    """A symmetric matrix with the given eigenvalues and random eigenvectors."""
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64))
    return (q * torch.tensor(eigenvalues, dtype=F64)) @ q.T


def _close(a: GroupElement, b: GroupElement, rtol=1e-12) -> bool:
    scale = max(float(a.linear.abs().max()), float(b.linear.abs().max()), 1.0)
    return bool((a.linear - b.linear).abs().max() <= rtol * scale)


@pytest.mark.parametrize("name", GROUPS)
def test_group_axioms_on_sampled_elements(name, generator):
    group = GROUPS[name]
    g, h, k = (group.sample(32, generator=generator) for _ in range(3))
    e = group.identity(32)
    assert group.contains(g).all() and group.contains(e).all()
    assert group.contains(g.compose(h)).all() and group.contains(g.inverse()).all()  # closure
    assert _close(g.compose(h).compose(k), g.compose(h.compose(k)))  # associativity
    assert _close(g.compose(g.inverse()), e) and _close(g.inverse().compose(g), e)  # inverse
    assert _close(e.compose(g), g) and _close(g.compose(e), g)  # identity
    assert not _close(g, e)


@pytest.mark.parametrize("n", [2, 3])
def test_polar_factors_inverse_and_product(n, generator):
    g, h = (GLPlus(n).sample(64, generator=generator).linear for _ in range(2))
    P, R = polar(g)
    eye = torch.eye(n, dtype=F64)
    assert torch.allclose(P, P.mT, atol=0) and (torch.linalg.eigvalsh(P) > 0).all()
    assert torch.allclose(R @ R.mT, eye.expand_as(R), atol=1e-13)
    assert torch.allclose(torch.linalg.det(R), torch.ones(64, dtype=F64), atol=1e-13)
    assert torch.allclose(P @ R, g, atol=1e-12)
    P_inv, R_inv = polar_inverse(P, R)  # the polar factors of g^-1, with no generic inverse
    assert torch.allclose(P_inv @ R_inv @ g, eye.expand_as(g), atol=1e-12)
    assert torch.allclose(P_inv, P_inv.mT, atol=0) and (torch.linalg.eigvalsh(P_inv) > 0).all()
    assert torch.allclose(R_inv, R.mT, atol=0)
    Ph, Rh = polar(h)
    P_gh, R_gh = polar_product(P, R, Ph, Rh)
    assert torch.allclose(P_gh @ R_gh, g @ h, atol=1e-12)
    assert torch.allclose(P_gh, P_gh.mT, atol=0) and (torch.linalg.eigvalsh(P_gh) > 0).all()
    assert (P @ R @ Ph @ R.mT - P_gh).abs().max() > 1e-3  # the factors do not compose factor by factor
    # a batch with several leading axes
    P4, R4 = polar(g.view(8, 8, n, n))
    assert P4.shape == (8, 8, n, n) and torch.allclose(P4.reshape(64, n, n), P, atol=0)


def _round_trip_error(g: torch.Tensor) -> float:
    return float(((unchart(*chart(g)) - g).abs().amax((-2, -1)) / g.abs().amax((-2, -1))).max())


@pytest.mark.parametrize("name", GROUPS)
def test_chart_round_trips(name, generator):
    group = GROUPS[name]
    n = group.n
    g = group.sample(256, generator=generator).linear
    S, A = chart(g)
    assert torch.allclose(S, S.mT, atol=0) and torch.allclose(A, -A.mT, atol=0)
    if isinstance(group, SL):
        assert S.diagonal(dim1=-2, dim2=-1).sum(-1).abs().max() < 1e-12
    assert _round_trip_error(g) < 1e-12
    # and the other way: chart(unchart(S, A)) = (S, A) away from the edge of the chart
    assert torch.allclose(torch.stack(chart(unchart(S, A))), torch.stack((S, A)), atol=1e-10)
    # the chart of the inverse: S -> -R^T S R, A -> -A
    R = unchart(torch.zeros_like(A), A)
    S_inv, A_inv = chart(torch.linalg.inv(g))
    assert torch.allclose(S_inv, -R.mT @ S @ R, atol=1e-10) and torch.allclose(A_inv, -A, atol=1e-10)
    # strongly anisotropic P (eigenvalue ratio 1e3) and rotations near the edge of the chart (angle pi - 1e-6)
    eigenvalues = [10**-1.5, 10**1.5] if n == 2 else [10**-1.5, 1.0, 10**1.5]
    for angle in (0.0, 1e-9, 1.0, math.pi - 1e-6, -(math.pi - 1e-6), math.pi):
        for seed in range(3):
            g = _symmetric_with(n, eigenvalues, seed) @ _rotation(n, angle, axis=(1.0, -2.0, 0.5 + seed))
            assert _round_trip_error(g[None]) < 1e-10, (angle, seed)


def test_the_edge_of_the_chart():
    # n = 2: angles in (-pi, pi]; the rotation by -pi is +pi, near -pi stays near -pi
    for angle, expected in ((math.pi, math.pi), (-math.pi, math.pi), (-(math.pi - 1e-6), -(math.pi - 1e-6))):
        R = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=F64)
        A = chart(R[None])[1][0]
        assert abs(float(A[1, 0]) - expected) < 1e-12 and float(A[0, 1]) == -float(A[1, 0])
    # n = 3: angle in [0, pi]; near pi about a or -a, the rotation vector is close to (pi - 1e-6) a or -(...) a
    axis = torch.tensor([1.0, -2.0, 3.0], dtype=F64) / math.sqrt(14)
    for sign in (1.0, -1.0):
        A = chart(_rotation(3, math.pi - 1e-6, axis=(sign * axis).tolist())[None])[1][0]
        w = torch.stack([A[2, 1], A[0, 2], A[1, 0]])
        assert torch.allclose(w, sign * (math.pi - 1e-6) * axis, atol=1e-9)
    # at pi exactly (to round-off), the vector of angle pi with its largest-magnitude component positive
    for a in (axis, -axis, torch.tensor([0.0, 0.0, -1.0], dtype=F64)):
        R = 2 * torch.outer(a, a) - torch.eye(3, dtype=F64)  # the rotation by pi about a
        A = chart(R[None])[1][0]
        w = torch.stack([A[2, 1], A[0, 2], A[1, 0]])
        assert abs(float(w.norm()) - math.pi) < 1e-12 and float(w[w.abs().argmax()]) > 0
        assert torch.allclose(w.abs(), math.pi * a.abs(), atol=1e-12)
        assert torch.allclose(unchart(torch.zeros(1, 3, 3, dtype=F64), A[None])[0], R, atol=1e-12)


@pytest.mark.parametrize("name", GROUPS)
def test_contains(name, generator):
    group = GROUPS[name]
    n = group.n
    g = group.sample(16, generator=generator)
    assert group.contains(g).all()
    flip = torch.eye(n, dtype=F64)
    flip[0, 0] = -1.0
    assert not group.contains(GroupElement(linear=g.linear @ flip)).any()  # det < 0
    singular = g.linear.clone()
    singular[:, :, 0] = singular[:, :, 1]
    assert not group.contains(GroupElement(linear=singular)).any()
    assert not group.contains(GroupElement(linear=g.linear, translation=torch.zeros(16, n, dtype=F64))).any()
    other = GROUPS["GL+(3)" if n == 2 else "GL+(2)"].sample(16, generator=generator)
    assert not group.contains(other).any()  # the wrong size
    assert not group.contains(Permutations(3).sample(2, generator=generator)).any()
    scaled = GroupElement(linear=1.01 * g.linear)
    assert group.contains(scaled).all() == isinstance(group, GLPlus)  # det != 1 is not in SL
    assert SL(n).contains(g).all() == isinstance(group, SL)


def test_rotation_factors_are_haar_distributed():
    """The rotation factors of the samples: for SO(2) a uniform angle (chi-square on 20 bins); for SO(3) the moments
    of the trace, the character of the vector representation: E[tr R] = 0 and E[(tr R)^2] = 1."""
    gen = torch.Generator().manual_seed(7)
    for group in (GLPlus(2), SL(2)):
        _, R = polar(group.sample(20000, generator=gen).linear)
        angle = torch.atan2(R[:, 1, 0], R[:, 0, 0])
        counts = torch.histc(angle, bins=20, min=-math.pi, max=math.pi)
        assert stats.chisquare(counts.numpy()).pvalue > 1e-3
    biased = torch.randn(20000, generator=gen, dtype=F64).clamp(-math.pi, math.pi)
    assert stats.chisquare(torch.histc(biased, bins=20, min=-math.pi, max=math.pi).numpy()).pvalue < 1e-6
    for group in (GLPlus(3), SL(3)):
        _, R = polar(group.sample(20000, generator=gen).linear)
        trace = R.diagonal(dim1=-2, dim2=-1).sum(-1)
        for power, expected in ((1, 0.0), (2, 1.0)):
            values = trace.pow(power)
            error = values.std() / math.sqrt(len(values))
            assert abs(float(values.mean()) - expected) < 4 * error


@pytest.mark.parametrize("name", GROUPS)
def test_the_positive_factor_is_log_normal(name):
    """``log P`` has independent N(0, scale^2) entries on and above the diagonal (GL+), projected to trace 0 (SL)."""
    group = GROUPS[name]
    n, scale = group.n, group.scale
    S, _ = chart(group.sample(20000, generator=torch.Generator().manual_seed(8)).linear)
    i, j = torch.triu_indices(n, n, offset=1)
    off = S[:, i, j].flatten()
    assert abs(float(off.mean())) < 4 * scale / math.sqrt(len(off))
    assert abs(float(off.std()) / scale - 1) < 0.03
    diagonal = S.diagonal(dim1=-2, dim2=-1)
    expected = scale * (math.sqrt(1 - 1 / n) if isinstance(group, SL) else 1.0)
    assert abs(float(diagonal.std()) / expected - 1) < 0.03


# -- the Haar density against a brute-force Jacobian -------------------------------------------------------------------


def _symmetric(n: int, traceless: bool, c: torch.Tensor) -> torch.Tensor:
    """S from its coordinates: the entries on and above the diagonal (GL+), or the entries above the diagonal and
    the first n - 1 diagonal entries (SL, the last diagonal entry is minus their sum)."""
    S = torch.zeros(n, n, dtype=F64)
    i, j = torch.triu_indices(n, n, offset=1)
    m = len(i)
    S = S.index_put((i, j), c[:m]).index_put((j, i), c[:m])
    diagonal = c[m:]
    if traceless:
        diagonal = torch.cat([diagonal, -diagonal.sum().view(1)])
    return S + torch.diag(diagonal)


def _rotation_from(n: int, c: torch.Tensor) -> torch.Tensor:
    if n == 2:
        return torch.stack([torch.stack([c[0].cos(), -c[0].sin()]), torch.stack([c[0].sin(), c[0].cos()])])
    zero = torch.zeros((), dtype=F64)
    K = torch.stack([torch.stack([zero, -c[2], c[1]]), torch.stack([c[2], zero, -c[0]]),
                     torch.stack([-c[1], c[0], zero])])
    return torch.linalg.matrix_exp(K)


def _lie_basis(n: int, traceless: bool) -> torch.Tensor:
    units = torch.eye(n * n, dtype=F64).view(n * n, n, n)
    if not traceless:
        return units
    off = [units[a * n + b] for a in range(n) for b in range(n) if a != b]
    return torch.stack(off + [units[a * n + a] - units[(a + 1) * n + a + 1] for a in range(n - 1)])


def _brute_force(n: int, traceless: bool, points: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The Haar density in the coordinates (S, rotation) by autograd, divided by the rotation's own Haar density in
    its coordinates, and :func:`haar_density`, at random points: their ratio is constant if the formula is right.

    The Haar density of a parametrisation ``p -> g(p)`` is ``|det M|`` with ``M`` the coordinates of
    ``g^-1 dg/dp_k`` in a basis of the Lie algebra (the left-invariant volume form); for GL+ that is
    ``|det J| |det g|^-n`` with J the Jacobian of the n^2 entries, checked too."""
    dims = n * (n + 1) // 2 - (1 if traceless else 0)
    basis = _lie_basis(n, traceless).reshape(-1, n * n)
    gen = torch.Generator().manual_seed(seed)
    volumes, densities = [], []
    for _ in range(points):
        p = torch.randn(dims + (1 if n == 2 else 3), generator=gen, dtype=F64)

        def element(q):
            return torch.linalg.matrix_exp(_symmetric(n, traceless, q[:dims])) @ _rotation_from(n, q[dims:])

        g = element(p)
        J = torch.autograd.functional.jacobian(element, p)  # (n, n, parameters)
        maurer_cartan = torch.einsum("ij,jlk->kil", torch.linalg.inv(g), J).reshape(len(p), n * n)
        coordinates = torch.linalg.lstsq(basis.T, maurer_cartan.T).solution
        residual = (basis.T @ coordinates - maurer_cartan.T).abs().max()
        assert residual < 1e-12 * maurer_cartan.abs().max()  # g^-1 dg lies in the Lie algebra
        volume = torch.linalg.det(coordinates).abs()
        if not traceless:
            direct = torch.linalg.det(J.reshape(n * n, -1)).abs() * torch.linalg.det(g).abs() ** -n
            assert torch.allclose(volume, direct, rtol=1e-10)
        if n == 3:  # the Haar density of SO(3) in exponential coordinates w: (2 - 2 cos|w|) / |w|^2
            t = p[dims:].norm()
            volume = volume / ((2 - 2 * t.cos()) / t**2)
        volumes.append(volume)
        densities.append(haar_density(_symmetric(n, traceless, p[:dims])))
    return torch.stack(volumes), torch.stack(densities)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("traceless", [False, True], ids=["GL+", "SL"])
def test_haar_density_against_a_brute_force_jacobian(n, traceless):
    volumes, densities = _brute_force(n, traceless, points=6, seed=10 + n + 2 * traceless)
    ratios = volumes / densities
    assert (ratios / ratios[0] - 1).abs().max() < 1e-8, ratios
    assert (volumes / volumes[0] - 1).abs().max() > 1e-2  # the Lebesgue measure of S (density 1) would fail


def test_haar_density_limits():
    assert haar_density(torch.zeros(3, 3, dtype=F64)) == 1.0
    assert torch.allclose(haar_density(2.5 * torch.eye(3, dtype=F64)), torch.tensor(1.0, dtype=F64), atol=1e-15)
    # coinciding eigenvalues: sinh(d) / d -> 1 + d^2 / 6, continuously across the switch to the series
    d = torch.tensor([0.0, 1e-9, 1e-4, 0.0499999, 0.0500001, 0.3, 5.0, 300.0], dtype=F64)
    S = torch.diag_embed(torch.stack([d / 2, -d / 2], -1))
    exact = torch.where(d > 0, torch.sinh(d) / d.clamp(min=1e-300), torch.ones_like(d))
    assert torch.allclose(haar_density(S), exact, rtol=1e-13, atol=0)
    large = haar_density(torch.diag(torch.tensor([300.0, -300.0], dtype=F64)))  # sinh(600) / 600, no overflow
    assert abs(float(large.log()) - (600 - math.log(1200))) < 1e-12
    # the density depends on the eigenvalues only: invariant under S -> O S O^T
    S = _symmetric_with(3, [0.3, -1.0, 2.0], 0)
    O = _rotation(3, 0.7)
    assert torch.allclose(haar_density(O @ S @ O.T), haar_density(S), rtol=1e-13)


# -- invariant Monte Carlo integration ---------------------------------------------------------------------------------


def _bump(n: int):
    eye = torch.eye(n, dtype=F64)

    def f(g: GroupElement) -> torch.Tensor:
        a = g.linear
        return torch.exp(-((a - eye).pow(2) + (torch.linalg.inv(a) - eye).pow(2)).sum((-2, -1)) / 2)

    return f


@pytest.mark.parametrize("name", ["GL+(2)", "SL(2)", "GL+(3)"])
def test_monte_carlo_integrals_are_left_and_right_invariant(name):
    """``int f(h g) dg = int f(g h) dg = int f(g) dg``: the estimates agree within 3 standard errors, which fall like
    1 / sqrt(samples); without the Haar density (Lebesgue weights on S) they would not (checked for n = 2)."""
    group = GROUPS[name]
    n = group.n
    f = _bump(n)
    eigenvalues = {2: [0.5, -0.3], 3: [0.5, -0.3, 0.2]}[n] if isinstance(group, GLPlus) else \
        {2: [0.5, -0.5], 3: [0.5, -0.2, -0.3]}[n]
    h = unchart(_symmetric_with(n, eigenvalues, 3), chart(_rotation(n, 2.0)[None])[1][0])

    def left(g):
        return f(GroupElement(linear=h @ g.linear))

    def right(g):
        return f(GroupElement(linear=g.linear @ h))

    gen = torch.Generator().manual_seed(11)
    errors = {}
    for samples in (1000, 100000):
        base, base_error = monte_carlo_integral(f, group, samples, gen)
        for name_, moved in (("left", left), ("right", right)):
            estimate, error = monte_carlo_integral(moved, group, samples, gen)
            combined = math.hypot(float(base_error), float(error))
            assert abs(float(estimate - base)) < 3 * combined, (samples, name_, float(estimate), float(base), combined)
            errors[samples] = combined
    assert errors[100000] < errors[1000] / 3  # 1 / sqrt(samples): a factor 10 expected
    assert errors[100000] < 0.05 * float(base)
    if n == 3:
        return
    # the test can fail: weights without the Haar density (the Lebesgue measure of the chart) are not invariant
    S, R = group._draw(100000, gen)
    weights = (-group.log_sampling_density(S)).exp()
    g = GroupElement(linear=torch.linalg.matrix_exp(S) @ R)
    plain, moved = f(g) * weights, left(g) * weights
    difference = plain - moved
    assert abs(float(difference.mean())) > 5 * float(difference.std()) / math.sqrt(len(difference))


def test_monte_carlo_integral_of_a_known_integral():
    """On GL+(2) the Haar measure of ``{g : |log P| <= ...}`` is not simple, but a function of the rotation only,
    times a function of S, factorises: ``int cos(angle)^2 u(S) = 1/2 int u(S)``, the rotation's measure having mass 1;
    and ``int u`` is a deterministic quadrature of ``u(S) haar_density(S)`` over the coordinates (a, b, c) of S."""
    gen = torch.Generator().manual_seed(12)
    group = GLPlus(2)

    def u(g):
        P, _ = polar(g.linear)
        return torch.exp(-2 * chart(P)[0].pow(2).sum((-2, -1)))

    def with_rotation(g):
        _, R = polar(g.linear)
        return u(g) * R[:, 0, 0] ** 2

    a, a_error = monte_carlo_integral(u, group, 40000, gen)
    b, b_error = monte_carlo_integral(with_rotation, group, 40000, gen)
    assert abs(float(b - a / 2)) < 3 * math.hypot(float(b_error), float(a_error) / 2)
    grid = torch.linspace(-4, 4, 81, dtype=F64)
    step = float(grid[1] - grid[0])
    x, y, z = torch.meshgrid(grid, grid, grid, indexing="ij")
    S = torch.stack([torch.stack([x, y], -1), torch.stack([y, z], -1)], -2)
    quadrature = float((torch.exp(-2 * S.pow(2).sum((-2, -1))) * haar_density(S)).sum()) * step**3
    assert abs(float(a) - quadrature) < 3 * float(a_error), (float(a), quadrature, float(a_error))


# -- equivariance, generators, determinism, errors ---------------------------------------------------------------------


@pytest.mark.parametrize("name", GROUPS)
def test_positions_under_these_groups(name, generator):
    group = GROUPS[name]
    n = group.n
    x = torch.randn(6, n, generator=generator, dtype=F64)
    assert assert_equivariant(lambda p: 2 * p, group, x, Positions(n), Positions(n), generator=generator) < 1e-12
    both = group * Translations(n, 0.5) * Permutations(6)
    affine = assert_equivariant(lambda p: 2 * p - p.mean(0), both, x, OnSet(Positions(n)), OnSet(Positions(n)),
                                generator=generator, samples=8)  # an affine combination: equivariant for x -> A x + t
    assert affine < 1e-12
    g, h = group.sample(8, generator=generator), group.sample(8, generator=generator)
    xs = x.expand(8, 6, n)
    rep = Positions(n)
    assert torch.allclose(rep.act(g.compose(h), xs), rep.act(g, rep.act(h, xs)), atol=1e-10)
    # distances are not invariant under these groups (they are under rotations)

    def distances(p):
        return (p[:, None] - p[None]).norm(dim=-1)

    assert float(equivariance_error(distances, group, x, OnSet(Positions(n)), Scalars(), generator=generator)) > 1e-2


@pytest.mark.parametrize("name", GROUPS)
def test_generators(name):
    group = GROUPS[name]
    n = group.n
    gens = group.generators()
    assert gens.discrete.shape == (0, n, n) and gens.dim == n
    expected = n * n - (1 if isinstance(group, SL) else 0)
    assert gens.lie.shape == (expected, n, n)
    assert torch.linalg.matrix_rank(gens.lie.reshape(expected, -1)) == expected
    if isinstance(group, SL):
        assert gens.lie.diagonal(dim1=-2, dim2=-1).sum(-1).abs().max() == 0
    combination = torch.einsum("k,kij->ij", torch.linspace(-0.3, 0.4, expected, dtype=F64), gens.lie)
    assert group.contains(GroupElement(linear=torch.linalg.matrix_exp(combination)[None])).all()
    # the linear maps that commute with every generator: multiples of the identity
    eye = torch.eye(n, dtype=F64)
    commutator = torch.stack([torch.kron(L, eye) - torch.kron(eye, L.T.contiguous()) for L in gens.lie])
    commutator = commutator.reshape(-1, n * n)
    assert n * n - torch.linalg.matrix_rank(commutator) == 1


@pytest.mark.parametrize("name", GROUPS)
def test_samplers_are_deterministic(name):
    group = GROUPS[name]
    first = group.sample(5, generator=torch.Generator().manual_seed(3)).linear
    assert torch.equal(first, group.sample(5, generator=torch.Generator().manual_seed(3)).linear)
    assert not torch.equal(first, group.sample(5, generator=torch.Generator().manual_seed(4)).linear)
    estimates = [monte_carlo_integral(_bump(group.n), group, 100, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(torch.stack(estimates[0]), torch.stack(estimates[1]))
    float32 = group.sample(5, generator=torch.Generator().manual_seed(3), dtype=torch.float32).linear
    assert float32.dtype == torch.float32 and torch.allclose(float32.double(), first, atol=1e-6)
    assert group.identity(2).linear.shape == (2, group.n, group.n)


def test_repr():
    assert repr(GLPlus(2)) == "GLPlus(2, scale=0.5)" and repr(SL(3, scale=0.25)) == "SL(3, scale=0.25)"


def test_clear_errors():
    for n in (4, 1, "2"):
        with pytest.raises(ValueError, match=f"n: expected 2 or 3, got {n!r}"):
            GLPlus(n)
    with pytest.raises(ValueError, match="n: expected 2 or 3, got 4"):
        SL(4)
    with pytest.raises(ValueError, match="scale: expected a positive number"):
        GLPlus(2, scale=0.0)
    with pytest.raises(ValueError, match=r"g: expected square matrices of shape \(\.\.\., n, n\), got \(2, 3\)"):
        polar(torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="n: expected 2 or 3, got 4"):
        chart(torch.eye(4, dtype=F64))
    with pytest.raises(ValueError, match=r"g: expected matrices of positive determinant, got det <= 0 at index \(1,\)"):
        polar(torch.stack([torch.eye(2, dtype=F64), torch.diag(torch.tensor([1.0, -1.0], dtype=F64))]))
    with pytest.raises(ValueError, match="g: expected invertible matrices, got a singular one"):
        chart(torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64))
    with pytest.raises(ValueError, match="g: expected invertible matrices"):
        polar(torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="S: expected symmetric matrices"):
        unchart(torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64), torch.zeros(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="A: expected skew-symmetric matrices"):
        unchart(torch.zeros(2, 2, dtype=F64), torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match=r"A: expected the shape of S \(2, 2\), got \(3, 3\)"):
        unchart(torch.zeros(2, 2, dtype=F64), torch.zeros(3, 3, dtype=F64))
    with pytest.raises(ValueError, match="S: expected symmetric matrices"):
        haar_density(torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=F64))
    with pytest.raises(ValueError, match="P: expected positive definite matrices"):
        polar_inverse(-torch.eye(2, dtype=F64), torch.eye(2, dtype=F64))
    with pytest.raises(TypeError, match="group: expected a GLPlus or SL group, got SO3"):
        monte_carlo_integral(_bump(3), SO3(), 10)
    with pytest.raises(ValueError, match="samples: expected an int of at least 2"):
        monte_carlo_integral(_bump(2), GLPlus(2), 1)
    with pytest.raises(ValueError, match=r"f: expected a tensor of shape \(10, \.\.\.\), got shape \(\)"):
        monte_carlo_integral(lambda g: g.linear.sum(), GLPlus(2), 10)
    with pytest.raises(ValueError, match="n: expected a non-negative int"):
        GLPlus(2).sample(-1)
