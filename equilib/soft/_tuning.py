"""Automatic strengths of per-group equivariance regularisers: PER's one-shot rescaling (Kim et al. ICML 2023,
Sec. 4.2) and a continuous version of the same rule.

With regulariser values ``R_j`` and strengths ``lambda_j``, PER rescales once, at a set step,
``lambda_j <- lambda_j (R_min / R_j)^p`` with ``R_min`` the smallest ``R_j`` among the groups with a non-zero
strength: the group the data is closest to keeps its strength and the others are weakened polynomially, so the
strengths read as "how much of each symmetry the data has". Here ``R_j`` is the mean over the ``window`` steps
before the rescaling (PER's code keeps a running minimum instead). ``"continuous"`` applies the same rule at every
step from ``start`` on, to the initial strengths, with exponential moving averages of ``R_j``; ``"fixed"`` never
changes them.
"""

from __future__ import annotations

import math

RULES = ("fixed", "per", "continuous")


class StrengthTuner:
    """Strengths of the regularisers named ``names``, updated from their values at every training step.

    Args:
        names: One name per regulariser (e.g. the candidate groups).
        initial: Initial strengths, one per name (non-negative; a zero strength stays zero).
        rule: ``"fixed"``, ``"per"`` (one rescaling at step ``start``) or ``"continuous"`` (every step from
            ``start``).
        start: The step of PER's rescaling, or the first step of the continuous rule.
        power: The exponent ``p``.
        window: ``"per"``: steps averaged before the rescaling; ``"continuous"``: the time constant of the moving
            averages, in steps.

    Raises:
        ValueError: If the lengths differ, a strength is negative, the rule is unknown, or ``start``, ``power`` or
            ``window`` are out of range.

    Examples:
        >>> from equilib.soft import StrengthTuner
        >>> tuner = StrengthTuner(["O3", "O2z"], [1.0, 1.0], rule="per", start=2, power=2.0, window=2)
        >>> for values in ({"O3": 4.0, "O2z": 1.0}, {"O3": 4.0, "O2z": 1.0}):
        ...     tuner.update(values)
        >>> tuner.strengths  # O(2) about z fits best: it keeps its strength, O(3)'s falls by (1/4)^2
        {'O3': 0.0625, 'O2z': 1.0}
    """

    def __init__(self, names: list[str], initial: list[float], rule: str = "per", start: int = 1000,
                 power: float = 2.0, window: int = 50) -> None:
        if len(names) != len(initial) or not names:
            raise ValueError(f"initial: expected one strength per name ({len(names)}), got {len(initial)}")
        if any(not (isinstance(v, (int, float)) and v >= 0) for v in initial):
            raise ValueError(f"initial: expected non-negative strengths, got {list(initial)}")
        if rule not in RULES:
            raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start: expected a non-negative int (a step), got {start!r}")
        if not power >= 0:
            raise ValueError(f"power: expected a non-negative number, got {power!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window: expected a positive int, got {window!r}")
        self.names, self.initial = list(names), [float(v) for v in initial]
        self.rule, self.start, self.power, self.window = rule, start, float(power), window
        self.step = 0
        self.current = list(self.initial)
        self.averages: list[float | None] = [None] * len(names)
        self.sums = [0.0] * len(names)

    @property
    def strengths(self) -> dict[str, float]:
        """The current strength of each regulariser."""
        return dict(zip(self.names, self.current, strict=True))

    def update(self, values: dict[str, float]) -> None:
        """Record one step's regulariser values and apply the rule.

        Args:
            values: Name -> the regulariser's value at this step (finite, non-negative).

        Raises:
            ValueError: If a name is missing or a value is not finite and non-negative.
        """
        row = []
        for name in self.names:
            value = values.get(name)
            if value is None or not math.isfinite(value) or value < 0:
                raise ValueError(f"values: expected a finite non-negative value for {name!r}, got {value!r}")
            row.append(float(value))
        self.step += 1
        if self.rule == "per" and self.start - self.window < self.step <= self.start:
            self.sums = [s + v for s, v in zip(self.sums, row, strict=True)]
            if self.step == self.start:
                self.current = self._rescaled(self.current, [s / self.window for s in self.sums])
        elif self.rule == "continuous":
            decay = math.exp(-1.0 / self.window)
            self.averages = [v if a is None else decay * a + (1 - decay) * v
                             for a, v in zip(self.averages, row, strict=True)]
            if self.step >= self.start:
                self.current = self._rescaled(self.initial, self.averages)

    def _rescaled(self, strengths: list[float], values: list[float]) -> list[float]:
        active = [v for s, v in zip(strengths, values, strict=True) if s > 0]
        if not active:
            return list(strengths)
        smallest = min(active)
        return [s * (smallest / v) ** self.power if s > 0 and v > 0 else s for s, v in
                zip(strengths, values, strict=True)]

    def state_dict(self) -> dict:
        """The tuner's state, for checkpoints.

        Returns:
            ``{"step", "current", "averages", "sums"}``.
        """
        return {"step": self.step, "current": list(self.current), "averages": list(self.averages),
                "sums": list(self.sums)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state from :meth:`state_dict`.

        Args:
            state: The saved state.
        """
        self.step, self.current = state["step"], list(state["current"])
        self.averages, self.sums = list(state["averages"]), list(state["sums"])
