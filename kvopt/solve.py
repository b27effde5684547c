"""One entry point for every method: ``solve(instance, method) -> Result``.

Heuristics come from ``kvopt.heuristics``, the exact solver from ``kvopt.exact``;
``auto`` runs the exact solver when the instance is small enough to finish within
the budget (warm-started by the pipeline), else the pipeline plus the best cheap
lower bound, and says which happened in ``details["auto_choice"]``.

**One rule for "nothing fits", for every method.**  A valid instance is never an
input error.  An instance that one of the cheap proofs shows infeasible
(``kvopt.model.infeasibility_reason``), or that an exact search proves so, gives
status ``infeasible`` with ``details["reason"]``; a method that finds no placement
without proving that none exists gives ``unknown`` with the reason.  The heuristics
fall back to an exact memory packing (``kvopt.exact.packing``) on instances of at
most ``PACKING_FALLBACK_MAX_MODELS`` models before giving up (the pipeline does;
``greedy`` is Prism's algorithm as published and answers ``unknown``).

**Options.**  ``None`` means "not given"; an option that the chosen method does
not use is an error (``KvoptError``), never silently ignored (``METHOD_OPTIONS``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from kvopt.bounds import root_lower_bound
from kvopt.evaluate import evaluate
from kvopt.heuristics import HEURISTICS, PipelineConfig, run_heuristic
from kvopt.model import Instance, KvoptError, Placement, Result, infeasibility_reason, relative_gap

EXACT_METHODS = ("exact", "mccormick", "auto", "lns")

# "auto" solves exactly up to this many models; past it, the proof rarely fits a
# one-minute budget and the pipeline with its certified bound is the better answer.
AUTO_EXACT_MAX_MODELS = 40
# A heuristic that finds no placement asks the exact packing search up to this many models, for this long.
PACKING_FALLBACK_MAX_MODELS = 40
PACKING_FALLBACK_S = 10.0
DEFAULT_TIME_LIMIT_S = 60.0

# The options each method uses (besides the instance): anything else given is an error.
METHOD_OPTIONS: dict[str, frozenset[str]] = {
    "greedy": frozenset(),
    "pipeline": frozenset({"config"}),
    "exact": frozenset({"backend", "solver", "time_limit_s", "seed", "progress"}),
    "mccormick": frozenset({"solver", "time_limit_s", "seed"}),
    "lns": frozenset({"backend", "time_limit_s", "seed", "progress"}),
    "auto": frozenset({"backend", "solver", "time_limit_s", "seed", "progress", "config"}),
}


def method_names() -> list[str]:
    return sorted(HEURISTICS) + list(EXACT_METHODS)


def solve(
    instance: Instance,
    method: str = "pipeline",
    *,
    backend: str | None = None,
    solver: str | None = None,
    time_limit_s: float | None = None,
    seed: int | None = None,
    progress: Any = None,
    config: PipelineConfig | None = None,
) -> Result:
    """Place ``instance``'s models with ``method``; every number in the result comes from ``kvopt.evaluate``.

    ``method``: ``greedy`` | ``pipeline`` | ``exact`` | ``mccormick`` | ``auto`` | ``lns``.
    ``backend`` (``auto`` | ``cpsat`` | ``milp`` | ``setpart`` ...) and ``solver``
    (``highs`` | ``cbc``) choose the exact machinery; ``time_limit_s`` (default 60)
    bounds the whole call; ``seed`` (default 0) fixes randomised choices;
    ``progress`` is a callback for long runs; ``config`` tunes the pipeline
    (``PipelineConfig``).  Options the method does not use raise ``KvoptError``.
    """
    if method not in METHOD_OPTIONS:
        raise KvoptError(f"unknown method {method!r}; known methods: {', '.join(method_names())}")
    given = {name for name, value in (("backend", backend), ("solver", solver), ("time_limit_s", time_limit_s),
                                      ("seed", seed), ("progress", progress), ("config", config))
             if value is not None}
    unused = sorted(given - METHOD_OPTIONS[method])
    if unused:
        raise KvoptError(f"method {method!r} does not use option(s) {', '.join(unused)}")
    backend, solver = backend or "auto", solver or "highs"
    time_limit_s = DEFAULT_TIME_LIMIT_S if time_limit_s is None else time_limit_s
    seed = 0 if seed is None else seed
    if not time_limit_s > 0:
        raise KvoptError(f"time_limit_s: must be > 0, got {time_limit_s!r}")
    clock = time.perf_counter()
    reason = infeasibility_reason(instance)
    if reason is not None:
        return Result(instance.name, method, "infeasible", None, None, seconds=time.perf_counter() - clock,
                      details={"reason": reason})
    if instance.scenarios and method not in ("exact", "auto"):
        return _solve_scenarios_heuristic(instance, method)
    if method in HEURISTICS:
        return _heuristic(instance, method, config, seed, clock)
    if method == "exact":
        from kvopt.anytime import solve_exact_anytime

        return solve_exact_anytime(instance, backend=backend, solver=solver, time_limit_s=time_limit_s,
                                   seed=seed, progress=progress)
    if method == "mccormick":
        from kvopt.exact.mccormick import solve_mccormick

        return solve_mccormick(instance, solver=solver, time_limit_s=time_limit_s, seed=seed)
    if method == "lns":
        from kvopt.lns import solve_lns

        return solve_lns(instance, time_limit_s=time_limit_s, seed=seed, progress=progress, backend=backend)
    return _solve_auto(instance, backend=backend, solver=solver, time_limit_s=time_limit_s, seed=seed,
                       progress=progress, config=config, clock=clock)


def _heuristic(instance: Instance, method: str, config: PipelineConfig | None, seed: int, clock: float,
               time_limit_s: float = PACKING_FALLBACK_S) -> Result:
    """A heuristic's result with its certified bound; an exact packing when it found no placement (small instances)."""
    result = run_heuristic(method, instance, config=config)
    if result.placement is None and method == "pipeline" and instance.num_models <= PACKING_FALLBACK_MAX_MODELS:
        result = _packing_fallback(instance, result, seed, time_limit_s)
    if result.placement is None or result.status == "optimal":
        return replace(result, seconds=time.perf_counter() - clock)
    return _with_bound(instance, result)


def _packing_fallback(instance: Instance, failed: Result, seed: int, time_limit_s: float) -> Result:
    """The exact packing after the pipeline found nothing: a placement, a proof, or still ``unknown``.

    A memory packing first; when its peak is infinite, a finite-peak packing, whose
    ``infeasible`` answer proves the optimum is ``+inf`` (then the packing is optimal).
    """
    import math

    from kvopt.exact.packing import finite_peak_packing, memory_packing

    answer = memory_packing(instance, time_limit_s=max(time_limit_s, 0.01), seed=seed)
    why = failed.details.get("reason", "")
    if answer.status == "infeasible":
        return replace(failed, status="infeasible",
                       details={"reason": "no placement fits in memory (proven by the exact packing search)",
                                "heuristic": why})
    if answer.status != "feasible" or answer.gpu_of is None:
        return replace(failed, details={"reason": f"{why}; the exact packing search found none within "
                                                  f"{time_limit_s:g} s either", "heuristic": why})
    gpu_of, status, bound = tuple(answer.gpu_of), "feasible", None
    if evaluate(instance, gpu_of).peak_kvpr_exact == math.inf:
        finite = finite_peak_packing(instance, time_limit_s=max(time_limit_s, 0.01), hint=gpu_of, seed=seed)
        if finite.status == "feasible" and finite.gpu_of is not None:
            gpu_of = tuple(finite.gpu_of)
        elif finite.status == "infeasible":
            status, bound = "optimal", math.inf  # proven: every placement has an infinite peak
    ev = evaluate(instance, gpu_of)
    return replace(failed, status=status, placement=Placement(gpu_of), peak_kvpr=ev.peak_kvpr,
                   peak_kvpr_exact=ev.peak_kvpr_exact, lower_bound=None if bound is None else float(bound),
                   lower_bound_exact=bound, gap=None if bound is None else 0.0,
                   details={"fallback": "exact packing", "heuristic": why})


def _solve_scenarios_heuristic(instance: Instance, method: str) -> Result:
    """With demand scenarios every heuristic name runs the scenario-aware local search of ``kvopt.replan``
    (worst scenario peak); the bound is the largest scenario root bound."""
    from kvopt.evaluate import objective_peak_exact
    from kvopt.exact.bisection import scenario_bound_instance
    from kvopt.bounds import root_lower_bound
    from kvopt.heuristics import HEURISTICS
    from kvopt.model import Placement
    from kvopt.replan.search import budget_local_search

    if method not in HEURISTICS:
        raise KvoptError(f"method {method!r} does not handle demand scenarios; use exact, auto or a heuristic")
    start = time.perf_counter()
    gpu_of = budget_local_search(instance, float("inf"))
    if gpu_of is None:
        return Result(instance.name, method, "unknown", None, None, seconds=time.perf_counter() - start,
                      details={"reason": "the scenario search found no placement"})
    peak = objective_peak_exact(instance, gpu_of)
    bound = root_lower_bound(scenario_bound_instance(instance))
    value = float(peak)  # math.inf stays inf
    return Result(instance.name, method, "feasible", Placement(gpu_of), value, peak, float(bound), bound,
                  relative_gap(value, float(bound)), time.perf_counter() - start,
                  {"scenarios": "worst peak over the scenarios (scenario-aware local search)"})


def _with_bound(instance: Instance, result: Result) -> Result:
    """Attach the root lower bound and the certified gap to a heuristic result."""
    bound = root_lower_bound(instance)
    status = "optimal" if result.peak_kvpr_exact is not None and result.peak_kvpr_exact <= bound else result.status
    return replace(result, status=status, lower_bound=float(bound), lower_bound_exact=bound,
                   gap=relative_gap(result.peak_kvpr_exact, bound))


def _solve_auto(instance: Instance, *, backend: str, solver: str, time_limit_s: float, seed: int,
                progress: Any, config: PipelineConfig | None, clock: float) -> Result:
    """Pipeline (inside the limit), then the exact solver on what is left of it when the instance is small."""
    from kvopt.exact import solve_exact

    heuristic = _heuristic(instance, "pipeline", config, seed, clock,
                           time_limit_s=min(PACKING_FALLBACK_S, time_limit_s))
    remaining = time_limit_s - (time.perf_counter() - clock)
    small = instance.num_models <= AUTO_EXACT_MAX_MODELS
    if small and remaining > 0 and heuristic.status != "infeasible":
        exact = solve_exact(instance, backend=backend, solver=solver, time_limit_s=remaining,
                            warm_start=heuristic.placement, seed=seed, progress=progress)
        details = {**exact.details, "auto_choice": f"exact ({instance.num_models} models <= {AUTO_EXACT_MAX_MODELS})"}
        return replace(exact, method="auto", seconds=time.perf_counter() - clock, details=details)
    choice = (f"pipeline + lower bound ({instance.num_models} models > {AUTO_EXACT_MAX_MODELS})" if not small
              else "pipeline + lower bound (the time limit ran out before the exact step)")
    if instance.scenarios:  # the pipeline's peak is at the base rates: use the scenario-aware search
        heuristic = _solve_scenarios_heuristic(instance, "pipeline")
    details = {**heuristic.details, "auto_choice": choice}
    return replace(heuristic, method="auto", seconds=time.perf_counter() - clock, details=details)


def check_result(instance: Instance, result: Result) -> Result:
    """Re-evaluate a result's placement with ``kvopt.evaluate`` (never trust solver numbers)."""
    if result.placement is None:
        return result
    ev = evaluate(instance, result.placement)
    return replace(result, peak_kvpr=ev.peak_kvpr, peak_kvpr_exact=ev.peak_kvpr_exact)
