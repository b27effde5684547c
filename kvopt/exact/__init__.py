"""Exact optimisation: feasibility backends at a rational target and the bisection driver.

``solve_exact`` (``kvopt.exact.bisection``) proves optimal placements; the
backends (``cpsat``, ``milp``, ``setpart``) implement ``FeasibilityBackend``
(``kvopt.exact.backend``).  Solver packages are imported only when a backend is
built, so importing this package is cheap.
"""

from __future__ import annotations

from typing import Any


def solve_exact(*args: Any, **kwargs: Any) -> Any:
    """See ``kvopt.exact.bisection.solve_exact`` (imported on first use)."""
    from kvopt.exact.bisection import solve_exact as _solve_exact

    return _solve_exact(*args, **kwargs)


__all__ = ["solve_exact"]
