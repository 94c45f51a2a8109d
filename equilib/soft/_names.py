"""Candidate groups by name, as configs and data cards write them: ``"O3"``, ``"SO3"``, ``"O2z"`` (O(2) fixing the z
axis: rotations about it and reflections through planes that contain it; PER's ``Oxy2``), ``"SO2x"`` and so on;
``"O5"`` (O(n) for n >= 4, EMLP's ``O5Synthetic``); ``"Scale"`` (positive scalings of R^3) and ``"SO3+Scale"`` /
``"O3+Scale"`` (rotations times scalings, PER's ``SO3+Scale`` on its CosSim task); ``"Translations"`` (of R^3,
N(0, I) samples) and ``"SO3+Translations"`` / ``"O3+Translations"`` (SE(3) and E(3), PER's ``SE3`` task). Groups with
translations act only on inputs that are positions (:class:`~equilib.groups.Positions`) and have no linear
generators, so they are candidates of the sampled regulariser, not of the projection one."""

from __future__ import annotations

from ..groups import E3, O2, O3, SE3, SO2, SO3, Group, OrthogonalGroup, Scaling, Translations

AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
NAMES = ("O3", "SO3", *(f"{g}{a}" for g in ("O2", "SO2") for a in AXES), "O<n> (n >= 4)", "Scale", "SO3+Scale",
         "O3+Scale", "Translations", "SO3+Translations", "O3+Translations")


def group_named(name: str) -> Group:
    """The group called ``name``.

    Args:
        name: One of ``NAMES``.

    Returns:
        The :class:`~equilib.groups.Group`.

    Raises:
        ValueError: If the name is unknown.

    Examples:
        >>> from equilib.soft import group_named
        >>> group_named("O2x")
        O2(axis=[1.0, 0.0, 0.0])
        >>> group_named("SO3+Scale"), group_named("O5")
        (Scaling(dim=3, scale=0.5, base=SO3()), OrthogonalGroup(5))
        >>> group_named("SO3+Translations")
        SE3(scale=1.0)
    """
    if name == "O3":
        return O3()
    if name == "SO3":
        return SO3()
    if isinstance(name, str) and name[:-1] in ("O2", "SO2") and name[-1:] in AXES:
        return (O2 if name.startswith("O") else SO2)(axis=AXES[name[-1]])
    if name == "Scale":
        return Scaling(3)
    if name in ("SO3+Scale", "O3+Scale"):
        return Scaling(base=group_named(name.split("+")[0]))
    if name == "Translations":
        return Translations(3)
    if name == "SO3+Translations":
        return SE3()
    if name == "O3+Translations":
        return E3()
    if isinstance(name, str) and name[:1] == "O" and name[1:].isdigit() and int(name[1:]) >= 4:
        return OrthogonalGroup(int(name[1:]))
    raise ValueError(f"group: expected one of {', '.join(NAMES)}, got {name!r}")
