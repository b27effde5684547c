"""Exact optimisation: feasibility backends at a rational target and the bisection driver.

``solve_exact`` (``kvopt.exact.bisection``) proves optimal placements; the
backends (``cpsat``, ``milp``, ``setpart``) implement ``FeasibilityBackend``
(``kvopt.exact.backend``) and get their solver objects from ``kvopt.exact.solvers``.
"""

from __future__ import annotations

from kvopt.exact.bisection import solve_exact

__all__ = ["solve_exact"]
