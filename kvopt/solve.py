"""One entry point for every method: ``solve(instance, method) -> Result``.

Heuristics come from ``kvopt.heuristics``, the exact solver from ``kvopt.exact``;
``auto`` runs the exact solver when the instance is small enough to finish within
the budget (warm-started by the pipeline), else the pipeline plus the best cheap
lower bound, and says which happened in ``details["auto_choice"]``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from kvopt.evaluate import evaluate
from kvopt.model import Instance, KvoptError, Result, relative_gap

EXACT_METHODS = ("exact", "mccormick", "auto", "lns")

# "auto" solves exactly up to this many models; past it, the proof rarely fits a
# one-minute budget and the pipeline with its certified bound is the better answer.
AUTO_EXACT_MAX_MODELS = 40


def method_names() -> list[str]:
    from kvopt.heuristics import HEURISTICS

    return sorted(HEURISTICS) + list(EXACT_METHODS)


def solve(
    instance: Instance,
    method: str = "pipeline",
    *,
    backend: str = "auto",
    solver: str = "highs",
    time_limit_s: float = 60.0,
    seed: int = 0,
    progress: Any = None,
) -> Result:
    """Solve ``instance`` with ``method``; the result's numbers come from ``kvopt.evaluate``."""
    from kvopt.heuristics import HEURISTICS, run_heuristic

    if method in HEURISTICS:
        return _with_bound(instance, run_heuristic(method, instance))
    if method == "exact":
        from kvopt.anytime import solve_exact_anytime

        return solve_exact_anytime(instance, backend=backend, solver=solver, time_limit_s=time_limit_s,
                                   seed=seed, progress=progress)
    if method == "mccormick":
        from kvopt.exact.mccormick import solve_mccormick

        return solve_mccormick(instance, solver=solver, time_limit_s=time_limit_s)
    if method == "lns":
        from kvopt.lns import solve_lns

        return solve_lns(instance, time_limit_s=time_limit_s, seed=seed, progress=progress)
    if method == "auto":
        return _solve_auto(instance, backend=backend, solver=solver, time_limit_s=time_limit_s,
                           seed=seed, progress=progress)
    raise KvoptError(f"unknown method {method!r}; known methods: {', '.join(method_names())}")


def _with_bound(instance: Instance, result: Result) -> Result:
    """Attach the root lower bound and the certified gap to a heuristic result."""
    from kvopt.bounds import root_lower_bound

    bound = root_lower_bound(instance)
    return replace(result, lower_bound=float(bound), lower_bound_exact=bound,
                   gap=relative_gap(result.peak_kvpr, float(bound)))


def _solve_auto(instance: Instance, *, backend: str, solver: str, time_limit_s: float, seed: int,
                progress: Any) -> Result:
    from kvopt.exact import solve_exact
    from kvopt.heuristics import run_heuristic

    start = time.perf_counter()
    heuristic = run_heuristic("pipeline", instance)
    if instance.num_models <= AUTO_EXACT_MAX_MODELS:
        remaining = max(1.0, time_limit_s - (time.perf_counter() - start))
        exact = solve_exact(instance, backend=backend, solver=solver, time_limit_s=remaining,
                            warm_start=heuristic.placement, seed=seed, progress=progress)
        details = {**exact.details, "auto_choice": f"exact ({instance.num_models} models <= {AUTO_EXACT_MAX_MODELS})"}
        return replace(exact, method="auto", seconds=time.perf_counter() - start, details=details)
    bounded = _with_bound(instance, heuristic)
    details = {**bounded.details,
               "auto_choice": f"pipeline + lower bound ({instance.num_models} models > {AUTO_EXACT_MAX_MODELS})"}
    return replace(bounded, method="auto", seconds=time.perf_counter() - start, details=details)


def check_result(instance: Instance, result: Result) -> Result:
    """Re-evaluate a result's placement with ``kvopt.evaluate`` (never trust solver numbers)."""
    if result.placement is None:
        return result
    ev = evaluate(instance, result.placement)
    return replace(result, peak_kvpr=ev.peak_kvpr, peak_kvpr_exact=ev.peak_kvpr_exact)
