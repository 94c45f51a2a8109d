"""An MLP on sums of Cartesian tensors whose linear layers are free and whose nonlinear parts are exactly
O(3)-equivariant, so that the network is exactly G-equivariant when its linear layers are: the soft-equivariant MLP of
PER (Kim et al. ICML 2023, an EMLP-shaped network with unconstrained weights), its exactly equivariant counterpart
(weights projected in the forward pass, EMLP, Finzi et al. ICML 2021) and the residual pathway prior (RPP, Finzi
et al. NeurIPS 2021: an equivariant layer plus a free one, the free one under a stronger weight prior).

Each hidden layer maps its input to scalars ``s``, vectors ``v``, rank-2 tensors ``T`` (and higher ranks) plus one
gate scalar ``g`` per non-scalar copy, then: ``s <- silu(s)``, ``v <- v (g + sigmoid(g))``,
``T <- (T + v_j (x) v_(j+1)) (g + sigmoid(g))`` (vectors paired cyclically). Outer products and scalar factors
commute with every linear map of the space (the nonlinear steps are GL(3)-equivariant), so products of inputs (an
inertia tensor's ``m r r^T``; its trace ``|r|^2`` through the next linear layer) are reachable; the factor
``g + sigmoid(g)`` is a gate (Weiler et al. 2018) with a linear part, so that a scalar times a tensor is exact.
"""

from __future__ import annotations

import torch

from ..groups import CartesianTensors, Group
from ._projector import EquivariantProjector, JointPenalty

MODES = ("free", "exact", "rpp")


class TensorLinear(torch.nn.Module):
    """A linear layer between sums of Cartesian tensors, ``y = W x + b``, in one of three modes.

    ``"free"``: ``W`` and ``b`` unconstrained. ``"exact"``: ``W = P_G theta``, ``b = P_G beta`` (exactly
    G-equivariant). ``"rpp"``: ``W = P_G theta + theta_free`` and the same for ``b`` (RPP), with ``theta_free``
    started at zero.

    Args:
        in_rep: Input :class:`~equilib.groups.CartesianTensors`.
        out_rep: Output :class:`~equilib.groups.CartesianTensors`.
        mode: ``"free"``, ``"exact"`` or ``"rpp"``.
        group: The group of ``"exact"`` and ``"rpp"``.
        dtype: Dtype of the parameters.

    Raises:
        ValueError: If ``mode`` is unknown or ``group`` is missing for ``"exact"``/``"rpp"``.
    """

    def __init__(self, in_rep: CartesianTensors, out_rep: CartesianTensors, mode: str = "free",
                 group: Group | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if mode != "free" and group is None:
            raise ValueError(f"group: mode {mode!r} needs the group its layers are equivariant under")
        self.in_rep, self.out_rep, self.mode = in_rep, out_rep, mode
        n_in, n_out = in_rep.shape[0], out_rep.shape[0]
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in, dtype=dtype) / n_in**0.5)
        self.bias = torch.nn.Parameter(torch.zeros(n_out, dtype=dtype))
        self.projector = EquivariantProjector(group, in_rep, out_rep) if mode != "free" else None
        if mode == "rpp":
            self.free_weight = torch.nn.Parameter(torch.zeros(n_out, n_in, dtype=dtype))
            self.free_bias = torch.nn.Parameter(torch.zeros(n_out, dtype=dtype))

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight matrix and bias the layer applies.

        Returns:
            ``(W, b)``.
        """
        if self.mode == "free":
            return self.weight, self.bias
        w, b = self.projector.project(self.weight), self.projector.project_bias(self.bias)
        if self.mode == "rpp":
            w, b = w + self.free_weight, b + self.free_bias
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``W x + b`` with the mode's effective weights.

        Args:
            x: ``(..., in_rep.dim)`` inputs.

        Returns:
            ``(..., out_rep.dim)`` outputs.
        """
        w, b = self.effective()
        return torch.nn.functional.linear(x, w, b)


class TensorNonlinearity(torch.nn.Module):
    """The O(3)-equivariant nonlinear step of a hidden layer (module docs): input ``hidden`` plus gate scalars,
    output ``hidden``.

    Args:
        hidden: The hidden :class:`~equilib.groups.CartesianTensors` (its terms sorted by rank, one term per rank).
    """

    def __init__(self, hidden: CartesianTensors) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = sum(mult for mult, rank in hidden.terms if rank > 0)
        self.d = hidden.dim
        gated = " + ".join(f"{m + (self.gates if r == 0 else 0)}x{r}" for m, r in hidden.terms)
        if all(r != 0 for _, r in hidden.terms):
            gated = f"{self.gates}x0 + {gated}"
        self._input_rep = CartesianTensors(gated, dim=self.d)

    def input_rep(self) -> CartesianTensors:
        """The representation the layer's linear map produces.

        Returns:
            ``hidden`` with the gate scalars first, as :class:`~equilib.groups.CartesianTensors`.
        """
        return self._input_rep

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The nonlinear step (module docs).

        Args:
            z: ``(..., input_rep().dim)`` outputs of the layer's linear map.

        Returns:
            ``(..., hidden.dim)`` hidden tensors.
        """
        d = self.d
        ranks = [r for _, r in self._input_rep.terms]
        parts = dict(zip(ranks, z.split(self._input_rep.sizes, dim=-1), strict=True))
        raw = parts[0][..., : self.gates]
        factors = raw + torch.sigmoid(raw)
        lead = z.shape[:-1]
        v = parts[1].reshape(*lead, -1, d) if 1 in parts else None
        t = parts[2].reshape(*lead, -1, d, d) if 2 in parts else None
        out, used = [], 0
        for mult, rank in self.hidden.terms:
            if rank == 0:
                out.append(torch.nn.functional.silu(parts[0][..., self.gates:]))
                continue
            g = factors[..., used:used + mult].unsqueeze(-1)
            used += mult
            if rank == 1:
                out.append((v * g).reshape(*lead, -1))
            elif rank == 2:
                x = t
                if v is not None:  # v_j (x) v_(j+1)
                    k = min(mult, v.shape[-2])
                    outer = v[..., :k, :, None] * v.roll(-1, dims=-2)[..., :k, None, :]
                    x = torch.cat([t[..., :k, :, :] + outer, t[..., k:, :, :]], dim=-3)
                out.append((x.reshape(*lead, mult, -1) * g).reshape(*lead, -1))
            else:
                out.append((parts[rank].reshape(*lead, mult, -1) * g).reshape(*lead, -1))
        return torch.cat(out, dim=-1)


class SoftEquivariantMLP(torch.nn.Module):
    """An MLP from ``in_rep`` to ``out_rep`` through ``num_layers`` hidden layers of ``hidden`` (module docs).

    Args:
        in_rep: Input tensors, e.g. ``"5x0+5x1"`` (masses and positions).
        out_rep: Output tensors, e.g. ``"1x2"``.
        hidden: Hidden tensors, one term per rank in increasing rank order, e.g. ``"32x0+16x1+16x2"``.
        num_layers: Number of hidden layers.
        mode: ``"free"`` (PER's soft model: unconstrained weights), ``"exact"`` or ``"rpp"`` (see
            :class:`TensorLinear`).
        group: The group of ``"exact"`` and ``"rpp"``.
        dim: Dimension of the space.
        input_scale: A constant the inputs are multiplied by first (a scalar: it commutes with every group action);
            inputs of order 1 keep the products of the nonlinear steps of order 1.
        centre: Read the rank-1 inputs as positions and subtract their mean (over all rank-1 copies) first: the
            network is then exactly invariant under translations of the positions (PER's SE(3) task), and the
            centring commutes with every linear map, so the modes' equivariance is kept.
        dtype: Dtype of the parameters.

    Raises:
        ValueError: If a representation does not parse, ``hidden`` repeats a rank or is not in increasing rank
            order, ``num_layers`` is not positive, ``mode``/``group`` do not fit, or ``centre`` is set for inputs
            without rank-1 copies.

    Examples:
        >>> import torch
        >>> from equilib.groups import O3, CartesianTensors, assert_equivariant
        >>> from equilib.soft import SoftEquivariantMLP
        >>> _ = torch.manual_seed(0)
        >>> model = SoftEquivariantMLP("5x0+5x1", "1x2", hidden="8x0+4x1+4x2", mode="exact", group=O3(),
        ...                            dtype=torch.float64)
        >>> x = torch.randn(7, 20, dtype=torch.float64)
        >>> assert_equivariant(model, O3(), x, CartesianTensors("5x0+5x1"), CartesianTensors("1x2")) < 1e-10
        True
        >>> sorted(model.penalties([O3()]))  # exactly O(3)-equivariant: no penalty
        ['O3()']
    """

    def __init__(self, in_rep, out_rep, hidden: str = "32x0+16x1+8x2", num_layers: int = 2, mode: str = "free",
                 group: Group | None = None, dim: int = 3, input_scale: float = 1.0, centre: bool = False,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.in_rep = in_rep if isinstance(in_rep, CartesianTensors) else CartesianTensors(in_rep, dim)
        self.out_rep = out_rep if isinstance(out_rep, CartesianTensors) else CartesianTensors(out_rep, dim)
        hidden_rep = CartesianTensors(hidden, dim)
        ranks = [r for _, r in hidden_rep.terms]
        if ranks != sorted(set(ranks)):
            raise ValueError(f"hidden: expected one term per rank in increasing rank order, got {hidden!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers: expected a positive int, got {num_layers!r}")
        self.mode, self.group, self.input_scale = mode, group, float(input_scale)
        self.centre = bool(centre)
        if self.centre and not any(rank == 1 for _, rank in self.in_rep.terms):
            raise ValueError(f"centre: {self.in_rep!r} has no rank-1 inputs (positions) to centre")
        self.nonlinearities = torch.nn.ModuleList(TensorNonlinearity(hidden_rep) for _ in range(num_layers))
        reps = [self.in_rep] + [hidden_rep] * num_layers
        self.linears = torch.nn.ModuleList(
            TensorLinear(reps[k], self.nonlinearities[k].input_rep(), mode, group, dtype) for k in range(num_layers))
        self.readout = TensorLinear(hidden_rep, self.out_rep, mode, group, dtype)
        self._projectors: dict[tuple[int, str], EquivariantProjector] = {}
        self._penalties: dict[tuple[int, tuple[str, ...]], JointPenalty] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs.

        Args:
            x: ``(..., in_rep.dim)`` inputs.

        Returns:
            ``(..., out_rep.dim)`` outputs.

        Raises:
            ValueError: If the last axis of ``x`` is not ``in_rep.dim``.
        """
        if x.shape[-1] != self.in_rep.shape[0]:
            raise ValueError(f"x: expected a last axis of {self.in_rep.shape[0]} for {self.in_rep!r}, got shape "
                             f"{tuple(x.shape)}")
        x = x * self.input_scale if self.input_scale != 1.0 else x
        x = self._centred(x) if self.centre else x
        for linear, nonlinearity in zip(self.linears, self.nonlinearities, strict=True):
            x = nonlinearity(linear(x))
        return self.readout(x)

    def _centred(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the mean of its rank-1 copies subtracted from each of them."""
        pieces = list(x.split(self.in_rep.sizes, dim=-1))
        d = self.in_rep.dim
        vectors = [k for k, (_, rank) in enumerate(self.in_rep.terms) if rank == 1]
        mean = torch.cat([pieces[k].reshape(*x.shape[:-1], -1, d) for k in vectors], dim=-2).mean(-2, keepdim=True)
        for k in vectors:
            pieces[k] = (pieces[k].reshape(*x.shape[:-1], -1, d) - mean).reshape(pieces[k].shape)
        return torch.cat(pieces, dim=-1)

    def layers(self) -> list[TensorLinear]:
        """The linear layers.

        Returns:
            The :class:`TensorLinear` layers, input to output.
        """
        return [*self.linears, self.readout]

    def penalties(self, groups: list[Group]) -> dict[str, torch.Tensor]:
        """PER's regulariser per candidate group: ``sum over layers of ||W - P_G W||^2 / 2 + ||b - P_G b||^2 / 2``
        on the weights the layers apply.

        Args:
            groups: The candidate groups.

        Returns:
            ``repr(group)`` -> differentiable 0-d tensor.
        """
        names = tuple(repr(group) for group in groups)
        total = 0.0
        for k, layer in enumerate(self.layers()):
            if (k, names) not in self._penalties:
                for group in groups:
                    if (k, repr(group)) not in self._projectors:
                        self._projectors[(k, repr(group))] = EquivariantProjector(group, layer.in_rep, layer.out_rep)
                self._penalties[(k, names)] = JointPenalty([self._projectors[(k, name)] for name in names])
            total = total + self._penalties[(k, names)](*layer.effective())
        return {name: total[j] for j, name in enumerate(names)}

    def rpp_prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """RPP's two weight priors: the squared norms of the equivariant and of the free parameters.

        Returns:
            ``(sum ||theta||^2 + ||beta||^2, sum ||theta_free||^2 + ||beta_free||^2)``.

        Raises:
            ValueError: If the model is not in ``"rpp"`` mode.
        """
        if self.mode != "rpp":
            raise ValueError(f"rpp_prior: the model is in mode {self.mode!r}, not 'rpp'")
        equivariant = sum(layer.weight.square().sum() + layer.bias.square().sum() for layer in self.layers())
        free = sum(layer.free_weight.square().sum() + layer.free_bias.square().sum() for layer in self.layers())
        return equivariant, free
