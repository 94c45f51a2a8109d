"""SIREN (Sitzmann et al., NeurIPS 2020): an MLP with sine activations, the implicit neural representation of the
convolution kernels of :mod:`equilib.lie` (a kernel is a function of coordinates, evaluated wherever a sampled group
element puts the kernel grid).

Layer ``l`` computes ``sin(omega0 (W_l z + b_l))``. Initialisation: the first layer's weights ``U(-1/in, 1/in)``
(``in`` the number of input coordinates), the later sine layers' ``U(-sqrt(6/in)/omega0, sqrt(6/in)/omega0)``
(``in`` the width), so that every pre-activation ``omega0 (W z)`` after the first layer has unit variance; biases
keep torch's default ``U(-1/sqrt(in), 1/sqrt(in))``. A final linear layer maps the features to the outputs (the
kernel values), with weights ``U(-b, b)``, ``b = sqrt(6 / (hidden * fan_in))``, and zero bias: each output then has
variance about ``1 / fan_in`` (the sines have variance 1/2), the LeCun scale of a convolution of that fan-in.
"""

from __future__ import annotations

import math

import torch


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: expected an int of at least {minimum}, got {value!r}")
    return value


def _positive_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


class Siren(torch.nn.Module):
    """A SIREN from ``in_features`` coordinates to ``out_features`` values: ``layers`` sine layers of width
    ``hidden``, then a linear layer (initialisation in the module docs).

    Args:
        in_features: Number of input coordinates.
        out_features: Number of outputs.
        hidden: Width of the sine layers.
        layers: Number of sine layers (at least 1).
        omega0: The frequency factor ``omega0`` of every sine layer.
        fan_in: The fan-in the outputs are used with: the final layer is scaled so that each output has variance
            about ``1 / fan_in``.

    Raises:
        ValueError: If a size is not a positive int or ``omega0``/``fan_in`` not a positive number.

    Examples:
        >>> import torch
        >>> from equilib.lie import Siren
        >>> _ = torch.manual_seed(0)
        >>> net = Siren(2, 8, hidden=16)
        >>> net(torch.zeros(5, 7, 2)).shape
        torch.Size([5, 7, 8])
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 60, layers: int = 3,
                 omega0: float = 10.0, fan_in: float = 1.0) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        self.hidden = _positive_int(hidden, "hidden")
        _positive_int(layers, "layers")
        self.omega0 = _positive_float(omega0, "omega0")
        fan_in = _positive_float(fan_in, "fan_in")
        widths = [in_features] + [hidden] * layers
        self.sines = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.final = torch.nn.Linear(hidden, out_features)
        with torch.no_grad():
            for index, layer in enumerate(self.sines):
                n = layer.in_features
                bound = 1.0 / n if index == 0 else math.sqrt(6.0 / n) / self.omega0
                layer.weight.uniform_(-bound, bound)
            bound = math.sqrt(6.0 / (hidden * fan_in))
            self.final.weight.uniform_(-bound, bound)
            self.final.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last sine layer's output.

        Args:
            x: ``(..., in_features)`` coordinates.

        Returns:
            ``(..., hidden)``.
        """
        for layer in self.sines:
            x = torch.sin(self.omega0 * layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's values at ``x``.

        Args:
            x: ``(..., in_features)`` coordinates.

        Returns:
            ``(..., out_features)``.

        Raises:
            ValueError: If the last axis of ``x`` is not ``in_features`` long.
        """
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected coordinates of shape (..., {self.in_features}), got {tuple(x.shape)}")
        return self.final(self.features(x))

    def extra_repr(self) -> str:
        """The one-line description of the module.

        Returns:
            The sizes and options.
        """
        return (f"in_features={self.in_features}, out_features={self.out_features}, hidden={self.hidden}, "
                f"layers={len(self.sines)}, omega0={self.omega0}")
