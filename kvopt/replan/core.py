"""Re-place a running cluster: the best placement within a move budget, the moves-vs-peak frontier.

``replan`` answers "with at most ``B`` of move cost, how low can the (worst
scenario) peak go?": the budget-aware local search (``kvopt.replan.search``) and,
for ``exact``, the bisection driver of ``kvopt.exact`` with the budget as one
more integer row, warm-started by the search.  ``optimal`` only comes from the
driver's proof.  ``frontier`` walks ``K = 0, 1, ...`` moves until the peak
reaches the proven unconstrained optimum (``K*``) or the cap.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Sequence

from kvopt.evaluate import format_fraction, objective_peak_exact
from kvopt.model import ExactValue, Instance, KvoptError, Placement, Result
from kvopt.replan.migration import MigrationError, Step, plan_migration
from kvopt.replan.moves import Budget, budget_row, move_cost, moves_between, require_current
from kvopt.replan.search import budget_local_search

REPLAN_METHODS = ("auto", "pipeline", "exact", "lns")
AUTO_EXACT_MAX_MODELS = 40  # as ``kvopt.solve``: past this the proof rarely fits the budget


@dataclass(frozen=True)
class ReplanAnswer:
    """A re-placement: the result (placement, status, bound), its moves and migration plan."""

    result: Result
    budget: Budget | None
    current_peak_exact: ExactValue  # of the models placed now (math.inf = +inf; 0 when nothing is placed)
    plan: tuple[Step, ...] | None = None
    plan_error: str | None = None
    frontier: tuple[Result, ...] = field(default=())


def current_instance(instance: Instance) -> Instance | None:
    """The models that run now, on their current GPUs (``None`` if none does)."""
    placed = tuple(m for m in instance.models if m.current_gpu is not None)
    if not placed:
        return None
    return Instance(instance.name, placed, instance.gpu_mem_gb, dict(instance.meta),
                    tuple(replace(s, req_rate=tuple((n, r) for n, r in s.req_rate
                                                     if any(m.name == n for m in placed)))
                          for s in instance.scenarios))


def current_peak(instance: Instance) -> ExactValue:
    """The objective (worst scenario peak) of the current placement, new models left out."""
    now = current_instance(instance)
    if now is None:
        return Fraction(0)
    return objective_peak_exact(now, tuple(m.current_gpu for m in now.models))  # type: ignore[misc]


def _check(method: str, budget: Budget | None, instance: Instance) -> None:
    require_current(instance)
    if method not in REPLAN_METHODS:
        raise KvoptError(f"--method: unknown re-placement method {method!r}; choose one of "
                         f"{', '.join(REPLAN_METHODS)}")


def _search_result(instance: Instance, budget: Budget | None, starts: Sequence[Sequence[int]],
                   seconds_start: float) -> Result:
    limit = float(budget.limit) if budget is not None else float("inf")
    gpu_of = budget_local_search(instance, limit, budget.cost if budget else "count", starts)
    if gpu_of is None:
        return Result(instance.name, "replan-pipeline", "unknown", None, None,
                      seconds=time.perf_counter() - seconds_start,
                      details={"reason": "no placement within the budget found (a new model fits nowhere?)"})
    peak = objective_peak_exact(instance, gpu_of)
    return Result(instance.name, "replan-pipeline", "feasible", Placement(gpu_of),
                  float(peak), peak,
                  seconds=time.perf_counter() - seconds_start)


def best_within_budget(instance: Instance, budget: Budget | None, *, method: str = "auto", backend: str = "auto",
                       solver: str = "highs", time_limit_s: float = 60.0, seed: int = 0,
                       starts: Sequence[Sequence[int]] = (), floor: Fraction | None = None) -> Result:
    """The best placement found within ``budget`` (``method``: pipeline | exact | auto).

    ``floor``: a proven lower bound valid for every budget (the proven
    unconstrained optimum); a placement attaining it is optimal without a search.
    """
    _check(method, budget, instance)
    clock = time.perf_counter()
    heuristic = _search_result(instance, budget, starts, clock)
    use_exact = method == "exact" or (method == "auto" and instance.num_models <= AUTO_EXACT_MAX_MODELS)
    if method in ("lns", "auto") and not use_exact and budget is not None and heuristic.placement is not None:
        return _lns_result(instance, budget, heuristic, clock, time_limit_s, seed)
    if not use_exact:
        return heuristic
    if floor is not None and heuristic.peak_kvpr_exact == floor:
        return replace(heuristic, method="replan-exact", status="optimal", lower_bound=float(floor),
                       lower_bound_exact=floor, gap=0.0,
                       details={"stop_reason": "the peak equals the proven unconstrained optimum"})
    from kvopt.exact import solve_exact

    row = budget_row(instance, budget) if budget is not None else None
    remaining = max(1.0, time_limit_s - (time.perf_counter() - clock))
    exact = solve_exact(instance, backend=backend, solver=solver, time_limit_s=remaining, seed=seed,
                        warm_start=heuristic.placement, move_budget=row)
    return replace(exact, method="replan-exact", seconds=time.perf_counter() - clock,
                   details={**exact.details, "heuristic_peak": heuristic.peak_kvpr})


def _lns_result(instance: Instance, budget: Budget, heuristic: Result, clock: float, time_limit_s: float,
                seed: int) -> Result:
    """The budget-aware search's placement improved by ``kvopt.replan.lns`` for the rest of the time limit."""
    from kvopt.replan.lns import budget_lns

    remaining = max(0.0, time_limit_s - (time.perf_counter() - clock))
    gpu_of = budget_lns(instance, budget, heuristic.placement.gpu_of, time_limit_s=remaining, seed=seed)
    peak = objective_peak_exact(instance, gpu_of)
    return replace(heuristic, method="replan-lns", placement=Placement(gpu_of), peak_kvpr=float(peak),
                   peak_kvpr_exact=peak, seconds=time.perf_counter() - clock,
                   details={"heuristic_peak": heuristic.peak_kvpr})


def replan(instance: Instance, budget: Budget | None, *, method: str = "auto", backend: str = "auto",
           solver: str = "highs", time_limit_s: float = 60.0, seed: int = 0,
           migration: str | None = "copy") -> ReplanAnswer:
    """The best placement within the budget, and (``migration``) the order to reach it."""
    result = best_within_budget(instance, budget, method=method, backend=backend, solver=solver,
                                time_limit_s=time_limit_s, seed=seed)
    plan, error = migration_plan(instance, result, migration)
    return ReplanAnswer(result, budget, current_peak(instance), plan, error)


def migration_plan(instance: Instance, result: Result, migration: str | None
                   ) -> tuple[tuple[Step, ...] | None, str | None]:
    if migration is None or result.placement is None:
        return None, None
    try:
        return tuple(plan_migration(instance, result.placement.gpu_of, migration)), None
    except MigrationError as exc:
        return None, str(exc)


def frontier(instance: Instance, *, max_moves: int | None = None, backend: str = "auto", solver: str = "highs",
             time_limit_s: float = 60.0, seed: int = 0, method: str = "exact") -> tuple[Result, Result]:
    """Points ``K = 0, 1, ...`` of the (moves, peak) frontier, and the unconstrained answer.

    Stops at the first ``K`` whose proven peak equals the proven unconstrained
    optimum (``K*``: more moves cannot help), else at ``max_moves`` or the number
    of models with a current GPU.  Each point is warm-started by the previous
    one (feasible for the larger budget).  Returns ``(points, unconstrained)``.
    """
    require_current(instance)
    unconstrained = best_within_budget(instance, None, method=method, backend=backend, solver=solver,
                                       time_limit_s=time_limit_s, seed=seed)
    movable = sum(1 for m in instance.models if m.current_gpu is not None)
    cap = movable if max_moves is None else min(max_moves, movable)
    points: list[Result] = []
    starts = [unconstrained.placement.gpu_of] if unconstrained.placement is not None else []
    floor = unconstrained.peak_kvpr_exact if unconstrained.status == "optimal" else None
    for k in range(cap + 1):
        budget = Budget("count", Fraction(k))
        point = best_within_budget(instance, budget, method=method, backend=backend, solver=solver,
                                   time_limit_s=time_limit_s, seed=seed, starts=starts, floor=floor)
        points.append(replace(point, details={**point.details, "max_moves": k}))
        if point.placement is not None:
            starts = [point.placement.gpu_of, *starts[-1:]]
        if _reaches(point, unconstrained):
            break
    return tuple(points), unconstrained  # type: ignore[return-value]


def _reaches(point: Result, unconstrained: Result) -> bool:
    """A proven point whose peak is the proven unconstrained optimum: the frontier is complete."""
    return (point.status == "optimal" and unconstrained.status == "optimal"
            and point.peak_kvpr_exact == unconstrained.peak_kvpr_exact)


# -- JSON -----------------------------------------------------------------------------
def moves_json(instance: Instance, gpu_of: Sequence[int]) -> dict[str, Any]:
    moves = moves_between(instance, gpu_of)
    return {"moves": [m.as_json() for m in moves], "num_moves": len(moves),
            "moved_gb": float(move_cost(instance, gpu_of, "size"))}


def point_json(instance: Instance, point: Result) -> dict[str, Any]:
    out: dict[str, Any] = {"max_moves": point.details.get("max_moves"), "status": point.status,
                           "peak_kvpr": point.peak_kvpr,
                           "peak_kvpr_exact": format_fraction(point.peak_kvpr_exact)
                           if point.placement is not None else None,
                           "lower_bound": point.lower_bound, "gap": point.gap, "seconds": round(point.seconds, 6)}
    if point.placement is not None:
        out.update(moves_json(instance, point.placement.gpu_of))
        out["assignment"] = point.placement.as_mapping(instance)
    return out


def answer_json(instance: Instance, answer: ReplanAnswer) -> dict[str, Any]:
    """The placement JSON of ``solve`` plus current peak, moves, plan (and scenario peaks, frontier)."""
    from kvopt.io import result_to_json

    out = result_to_json(instance, answer.result)
    out["budget"] = answer.budget.describe() if answer.budget else None
    out["current_peak_kvpr"] = "inf" if answer.current_peak_exact == math.inf else float(answer.current_peak_exact)
    out["current_peak_kvpr_exact"] = format_fraction(answer.current_peak_exact)
    if answer.result.placement is not None:
        out.update(moves_json(instance, answer.result.placement.gpu_of))
    if answer.plan is not None:
        out["plan"] = [s.as_json() for s in answer.plan]
    if answer.plan_error is not None:
        out["plan_error"] = answer.plan_error
    if answer.frontier:
        out["frontier"] = [point_json(instance, p) for p in answer.frontier]
    return out
