"""Trajectories under Hamilton's equations of a learned energy (Hamiltonian neural networks, Greydanus et al. NeurIPS
2019; the pendulum models of EMLP, Finzi et al. ICML 2021, and RPP, Finzi et al. NeurIPS 2021).

The state ``z = (q, p)`` holds positions then momenta (equal halves); ``dq/dt = dH/dp`` and ``dp/dt = -dH/dq`` with
``H = energy(z)``, integrated by classical Runge-Kutta (RK4) with ``substeps`` equal steps per output interval. If
the energy is invariant under a group acting linearly and orthogonally on q and p alike, the flow is equivariant.
"""

from __future__ import annotations

import torch


class HamiltonianFlow(torch.nn.Module):
    """``z(t)`` at the times ``ts`` from ``z(0)``, under the Hamiltonian ``energy(z)`` (module docs).

    Args:
        energy: A module mapping states ``(..., 2n)`` to energies ``(..., 1)`` or ``(...,)``.
        substeps: RK4 steps per interval between consecutive output times.

    Raises:
        ValueError: If ``substeps`` is not a positive int.

    Examples:
        >>> import torch
        >>> from equilib.nn import HamiltonianFlow
        >>> class Oscillator(torch.nn.Module):  # H = (q^2 + p^2) / 2: rotation in phase space
        ...     def forward(self, z):
        ...         return 0.5 * z.square().sum(-1)
        >>> flow = HamiltonianFlow(Oscillator(), substeps=20)
        >>> z = flow(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
        >>> bool(torch.allclose(z[1], torch.stack([torch.tensor(1.0).cos(), -torch.tensor(1.0).sin()]).double(),
        ...                     atol=1e-6))
        True
    """

    def __init__(self, energy: torch.nn.Module, substeps: int = 2) -> None:
        super().__init__()
        if not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"substeps: expected a positive int, got {substeps!r}")
        self.energy, self.substeps = energy, substeps

    def vector_field(self, z: torch.Tensor) -> torch.Tensor:
        """``dz/dt = (dH/dp, -dH/dq)``, differentiable in the energy's parameters while training.

        Args:
            z: ``(..., 2n)`` states.

        Returns:
            ``(..., 2n)`` time derivatives.
        """
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.energy(z).sum(), z, create_graph=self.training)
        dq, dp = gradient.chunk(2, dim=-1)
        return torch.cat([dp, -dq], dim=-1)

    def forward(self, z0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """The states at ``ts``.

        Args:
            z0: ``(..., 2n)`` initial states (at ``ts[0]``).
            ts: ``(T,)`` increasing times, shared by all states.

        Returns:
            ``(..., T, 2n)`` states; the first is ``z0``.

        Raises:
            ValueError: If ``z0``'s last axis is odd or ``ts`` is not a 1-d tensor.
        """
        if z0.shape[-1] % 2:
            raise ValueError(f"z0: expected an even last axis (positions then momenta), got shape {tuple(z0.shape)}")
        if ts.dim() != 1:
            raise ValueError(f"ts: expected a 1-d tensor of times, got shape {tuple(ts.shape)}")
        states, z = [z0], z0
        for k in range(len(ts) - 1):
            h = (ts[k + 1] - ts[k]) / self.substeps
            for _ in range(self.substeps):
                k1 = self.vector_field(z)
                k2 = self.vector_field(z + 0.5 * h * k1)
                k3 = self.vector_field(z + 0.5 * h * k2)
                k4 = self.vector_field(z + h * k3)
                z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            states.append(z if self.training else z.detach())
        return torch.stack(states, dim=-2)

    def penalties(self, groups) -> dict:
        """The energy model's per-group penalties (for the ``soft_equivariance`` loss term).

        Args:
            groups: The candidate groups.

        Returns:
            What the energy model's ``penalties(groups)`` returns.

        Raises:
            TypeError: If the energy model has no ``penalties``.
        """
        if not callable(getattr(self.energy, "penalties", None)):
            raise TypeError(f"penalties: the energy model {type(self.energy).__name__} has no penalties(groups)")
        return self.energy.penalties(groups)
