"""Equivariant layers of an interatomic potential, each in a handful of tensor operations.

The maps of e3nn's ``o3.Linear``, ``nn.Gate``, ``nn.FullyConnectedNet`` and of NequIP's species self-connection
(Geiger and Smidt, "e3nn", 2022; Batzner et al., NequIP, 2022), written so that one call is a few large operations
instead of a few per irrep (fewer operations for autograd to record, for the energy, the forces and the backward of
both). Same normalisation as e3nn: weights drawn from N(0, 1) and divided by sqrt(fan-in) in the forward;
activations scaled to unit second moment under a standard normal input (computed here by Gauss-Hermite
quadrature, not sampling).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3

from ..utils import TableModule


def second_moment_scale(activation) -> float:
    """``1 / sqrt(E[f(z)^2])`` for z ~ N(0, 1), by 100-point Gauss-Hermite quadrature in float64.

    Args:
        activation: A function of a float64 tensor.

    Returns:
        The scale, a float.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(100)
    values = activation(torch.as_tensor(nodes, dtype=torch.float64)).numpy()
    return float(1.0 / math.sqrt(np.sum(weights * values**2) / math.sqrt(2.0 * math.pi)))


class _ChannelMixing:
    """Index tables for an equivariant linear map as one batched matrix product over the irreps' components.

    An equivariant linear map mixes the channels of each irrep (every entry of it on either side) and is the identity
    on its 2l + 1 components. So it is one (c_in, c_out) matrix product per component column: the input is gathered
    into (columns, nodes, c_in), multiplied by each column's irrep's matrix, and the (columns, nodes, c_out) result
    gathered back to the flat output. Irreps with fewer channels are padded with zeros to the largest ``c_in`` and
    ``c_out``. ``weight_numel``: one weight per (input channel, output channel) of each irrep, irrep by irrep;
    ``norm``: 1 / sqrt(c_in) per weight (e3nn's 'element' normalisation).
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps) -> None:
        groups = []  # (ir, input channel columns per component, output channel columns per component)
        for ir in dict.fromkeys(ir for mul, ir in irreps_out if mul > 0):
            if any(other == ir and mul > 0 for mul, other in irreps_in):
                groups.append((ir, _channel_columns(irreps_in, ir), _channel_columns(irreps_out, ir)))
        self.c_in = max(len(cols[0]) for _, cols, _ in groups)
        self.c_out = max(len(cols[0]) for _, _, cols in groups)
        self.columns = sum(ir.dim for ir, _, _ in groups)
        x_index, weight_index, out_index, norms = [], [], np.full(irreps_out.dim, self.columns * self.c_out), []
        for ir, cols_in, cols_out in groups:
            c_in, c_out, base = len(cols_in[0]), len(cols_out[0]), len(norms)
            norms += [c_in**-0.5] * (c_in * c_out)
            block = np.full((self.c_in, self.c_out), -1)
            block[:c_in, :c_out] = base + np.arange(c_in * c_out).reshape(c_in, c_out)
            for m in range(ir.dim):
                column = len(x_index) // self.c_in
                x_index += cols_in[m] + [irreps_in.dim] * (self.c_in - c_in)  # padding reads a zero column
                weight_index.append(block)
                out_index[cols_out[m]] = column * self.c_out + np.arange(c_out)
        self.weight_numel = len(norms)
        weight_index = np.stack(weight_index)
        weight_index[weight_index < 0] = self.weight_numel  # padding reads a zero weight
        self.tables = {"x_index": x_index, "weight_index": weight_index.reshape(-1), "out_index": out_index}
        self.norm = np.array(norms)

    def register(self, module: TableModule, dtype: torch.dtype) -> None:
        for name, index in self.tables.items():
            module.register_buffer(f"_{name}", torch.as_tensor(np.asarray(index), dtype=torch.long), persistent=False)
        module.register_table("_norm", self.norm, dtype)

    def columns_of(self, module, x: torch.Tensor) -> torch.Tensor:
        """(nodes, dim_in) -> (columns, nodes, c_in)."""
        padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=-1)
        return padded.index_select(-1, module._x_index).view(x.shape[0], self.columns, self.c_in).transpose(0, 1)

    def weights_of(self, module, weight: torch.Tensor) -> torch.Tensor:
        """Flat weights (..., weight_numel) -> normalised, padded per column (..., columns, c_in, c_out)."""
        scaled = torch.cat([weight * module._norm, weight.new_zeros(weight.shape[:-1] + (1,))], dim=-1)
        shape = (*weight.shape[:-1], self.columns, self.c_in, self.c_out)
        return scaled.index_select(-1, module._weight_index).view(shape)

    def output_of(self, module, out: torch.Tensor) -> torch.Tensor:
        """(columns, nodes, c_out) -> (nodes, dim_out)."""
        flat = out.transpose(0, 1).reshape(out.shape[1], self.columns * self.c_out)
        return torch.cat([flat, flat.new_zeros(flat.shape[0], 1)], dim=-1).index_select(-1, module._out_index)


def _channel_columns(irreps: o3.Irreps, ir: o3.Irrep) -> list[list[int]]:
    """For each component m of ``ir``: the flat columns of every channel of every entry of ``ir``, entry by entry."""
    starts = np.cumsum([0] + [mul * other.dim for mul, other in irreps])
    return [[starts[k] + u * ir.dim + m for k, (mul, other) in enumerate(irreps) if other == ir for u in range(mul)]
            for m in range(ir.dim)]


class EquivariantLinear(TableModule):
    """e3nn's ``o3.Linear(irreps_in, irreps_out)`` (no biases): each irrep's channels mixed by a (c_in, c_out) matrix
    normalised by 1 / sqrt(c_in), as one batched matrix product (see ``_ChannelMixing``)."""

    def __init__(self, irreps_in, irreps_out, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        dtype = dtype or torch.get_default_dtype()
        self._mixing = _ChannelMixing(self.irreps_in, self.irreps_out)
        self._mixing.register(self, dtype)
        self.weight = torch.nn.Parameter(torch.randn(self._mixing.weight_numel, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The linear map.

        Args:
            x: (nodes, irreps_in.dim) features.

        Returns:
            (nodes, irreps_out.dim).
        """
        mixing = self._mixing
        out = torch.bmm(mixing.columns_of(self, x), mixing.weights_of(self, self.weight))
        return mixing.output_of(self, out)


class SpeciesSelfConnection(TableModule):
    """NequIP's self-connection: a linear map of the features chosen by the atom's species, ``x ⊗ onehot(Z)`` through
    e3nn's ``FullyConnectedTensorProduct(irreps_in, 'S x 0e', irreps_out)``: every species' map is applied (one
    batched product) and each node keeps its own species' result. Weights normalised by 1 / sqrt(c_in S)."""

    def __init__(self, irreps_in, num_species: int, irreps_out, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        dtype = dtype or torch.get_default_dtype()
        self._mixing = _ChannelMixing(self.irreps_in, self.irreps_out)
        self._mixing.register(self, dtype)
        self.num_species = num_species
        self.weight = torch.nn.Parameter(torch.randn(num_species, self._mixing.weight_numel, dtype=dtype))

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Each node's features through its own species' linear map.

        Args:
            x: (nodes, irreps_in.dim) features.
            species: (nodes,) torch.long indices into the species list.

        Returns:
            (nodes, irreps_out.dim).
        """
        mixing, s = self._mixing, self.num_species
        weights = mixing.weights_of(self, self.weight / s**0.5)  # (S, columns, c_in, c_out)
        weights = weights.permute(1, 2, 0, 3).reshape(mixing.columns, mixing.c_in, s * mixing.c_out)
        every = torch.bmm(mixing.columns_of(self, x), weights).view(mixing.columns, x.shape[0], s, mixing.c_out)
        index = species.view(1, -1, 1, 1).expand(mixing.columns, -1, 1, mixing.c_out)
        return mixing.output_of(self, every.gather(2, index).squeeze(2))


class Gate(torch.nn.Module):
    """e3nn's gated nonlinearity on ``irreps_in = scalars + gates + gated``: SiLU on the scalars, each gated irrep
    times the sigmoid of its gate (both activations scaled to unit second moment); ``irreps_out = scalars + gated``."""

    def __init__(self, scalars, gated) -> None:
        super().__init__()
        self.scalars, self.gated = o3.Irreps(scalars), o3.Irreps(gated)
        self.gates = o3.Irreps([(self.gated.num_irreps, "0e")]) if self.gated.num_irreps else o3.Irreps("")
        self.irreps_in = self.scalars + self.gates + self.gated
        self.irreps_out = self.scalars + self.gated
        self._silu = second_moment_scale(torch.nn.functional.silu)
        self._sigmoid = second_moment_scale(torch.sigmoid)
        copies = [ir for mul, ir in self.gated for _ in range(mul)]  # one gate per copy of a gated irrep
        spread = [k for k, ir in enumerate(copies) for _ in range(ir.dim)]
        self.register_buffer("_spread", torch.tensor(spread, dtype=torch.long), persistent=False)
        self._sizes = [self.scalars.dim, self.gates.dim, self.gated.dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The gated nonlinearity.

        Args:
            x: (..., irreps_in.dim) features, laid out as scalars, gates, gated.

        Returns:
            (..., irreps_out.dim): activated scalars, then the gated irreps.
        """
        scalars, gates, gated = x.split(self._sizes, dim=-1)
        scalars = torch.nn.functional.silu(scalars) * self._silu
        if not self._sizes[2]:
            return scalars
        gated = gated * (torch.sigmoid(gates) * self._sigmoid).index_select(-1, self._spread)
        return torch.cat([scalars, gated], dim=-1)


class RadialMLP(torch.nn.Module):
    """e3nn's ``FullyConnectedNet(sizes, silu)``: normalised linear layers without biases, SiLU (unit second moment)
    between them, none after the last."""

    def __init__(self, sizes: list[int], dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dtype = dtype or torch.get_default_dtype()
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(a, b, dtype=dtype)) for a, b in zip(sizes[:-1], sizes[1:])])
        self._fan_in = [a**-0.5 for a in sizes[:-1]]
        self._silu = second_moment_scale(torch.nn.functional.silu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network.

        Args:
            x: (..., sizes[0]) inputs.

        Returns:
            (..., sizes[-1]).
        """
        last = len(self.weights) - 1
        for k, (weight, scale) in enumerate(zip(self.weights, self._fan_in)):
            x = x @ (weight * scale)
            if k < last:
                x = torch.nn.functional.silu(x) * self._silu
        return x
