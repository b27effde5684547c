"""Exact minimisation of the peak KVPR by bisection on a rational target ``T``.

The driver keeps a proven bracket ``lower <= optimum <= upper``:

* ``upper`` is the exact peak (``kvopt.evaluate``) of the best placement seen;
  it starts from a warm start (the ``pipeline`` heuristic by default);
* ``lower`` starts at ``kvopt.bounds.root_lower_bound`` and rises when a backend
  proves that no placement has peak ``<= T`` (then ``optimum > T``).  When the
  start is not optimal and the backend calls turn out to be costly (``>=
  COLGEN_TRIGGER_S`` seconds in all), the column-generation bound of
  ``kvopt.exact.colgen`` is computed once (exact Farkas certificate, at most
  ``COLGEN_SHARE`` of the time limit): it typically lands within 1e-4 of the
  optimum and saves the hardest bisection steps.

Each step asks a ``FeasibilityBackend`` one question (``FeasibilityQuery``): is
there a placement with every ``KVPR_g <= T``?  ``T`` is a fraction with a small
denominator strictly inside ``(lower, upper)`` near the midpoint (short integer
rows).  A feasible answer's placement is re-validated and re-evaluated exactly,
and ``upper`` becomes its actual peak (``<= T``).  The proof step asks the strict
question "peak ``< upper``?": *infeasible* proves ``optimum >= upper``, hence
``optimum = upper`` (status ``optimal``, gap 0).  It is asked first (warm starts
are often optimal) and whenever the bracket is within ``PROOF_GAP``.

What is trusted: ``optimal``/``infeasible`` only ever come from an
``infeasible`` backend answer or from an exact bound argument.  The default
backends prove exactly in integers (set-partitioning search, CP-SAT); the MILP
backends' float-based proofs are limited as described in ``kvopt.exact.milp``.
After an ``unknown`` answer at ``T`` (the backend ran out of its per-question
time) the driver keeps asking below ``T`` — midpoints of ``[lower, T]``, which
are easier to decide and can still raise the bound or find a better placement —
while time is left.  A run that stops on the time limit or on ``unknown``
answers returns ``feasible`` with the best placement, the best proven lower
bound and ``gap = upper / lower - 1`` — never ``optimal``.

Special cases: an instance with no memory-feasible placement (checked with the
same backend on the instance with all demands set to 0, where "``KVPR_g <= 1``"
just means "fits in memory") is ``infeasible`` with ``details["reason"]``; an
instance where every placement leaves a GPU with demand and no free memory has
optimum ``+inf`` (proven by a query at ``finite_peak_ceiling``, above which no
finite peak exists), reported as ``optimal`` with ``peak_kvpr = inf``.

The driver does not know which backend it drives; ``make_backend`` builds one by
name, and ``auto`` picks the branch-and-price backend (``kvopt.exact.branch_price``;
CP-SAT when no finite upper bound is known).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Callable, Sequence

from kvopt.bounds import (
    finite_peak_ceiling,
    infeasibility_argument,
    is_infinite_bound,
    root_lower_bound,
    simple_fraction_between,
)
from kvopt.evaluate import check_placement, evaluate, format_fraction, objective_peak_exact
from kvopt.exact.backend import FeasibilityAnswer, FeasibilityBackend, FeasibilityQuery, MoveBudget
from kvopt.exact.branch_price import BranchPriceBackend
from kvopt.exact.colgen import colgen_lower_bound
from kvopt.exact.cpsat import CpSatBackend
from kvopt.exact.milp import MilpBackend
from kvopt.exact.packing import zero_demand_instance
from kvopt.exact.setpart import SetPartitionBackend
from kvopt.exact.solvers import silence_highs_banner
from kvopt.heuristics.start import start_placement
from kvopt.model import ExactValue, Instance, KvoptError, Placement, Result, relative_gap

BACKENDS = ("auto", "cpsat", "milp", "setpart", "branch-price")
SOLVERS = ("highs", "cbc")
PROOF_GAP = Fraction(1, 10**3)  # ask the strict proof question once upper/lower - 1 is this small
MIDPOINT_MIN_GAP = Fraction(1, 10**7)  # below this, only strict questions (midpoints would need long fractions)
COLGEN_TRIGGER_S = 0.25  # backend seconds after which the column-generation bound is worth its cost
COLGEN_SHARE = 0.1  # share of the time limit for the column-generation bound
COLGEN_MAX_S = 10.0
COLGEN_REL_TOL = 1e-4


# -- backends -------------------------------------------------------------------------
@dataclass(frozen=True)
class BackendChoice:
    """A backend and what it is, for ``Result.details``."""

    backend: FeasibilityBackend
    name: str
    model: str
    why: str = ""


def make_backend(name: str, instance: Instance, *, solver: str = "highs", seed: int = 0, workers: int = 1,
                 upper: ExactValue = math.inf) -> BackendChoice:
    """Build the backend ``name`` (``auto``: branch and price, or CP-SAT without a finite ``upper``)."""
    if name == "cpsat":
        return BackendChoice(CpSatBackend(workers=workers, seed=seed), "cpsat", "assignment")
    if name == "milp":
        return BackendChoice(MilpBackend(solver=solver), f"milp-{solver}", "assignment")
    if name == "setpart":
        silence_highs_banner()  # its fallback MILP uses HiGHS
        # "highs": setpart's exact search with its HiGHS covering MILP as fallback.
        return BackendChoice(SetPartitionBackend(solver="auto" if solver == "highs" else "cbc"),
                             "setpart", "set-partitioning")
    if name == "branch-price":
        return BackendChoice(BranchPriceBackend(), "branch-price", "bin-packing (column generation, branch and price)")
    if name == "auto":
        return _auto_backend(instance, solver=solver, seed=seed, workers=workers, upper=upper)
    raise KvoptError(f"unknown exact backend {name!r}; choose one of {', '.join(BACKENDS)}")


def _auto_backend(instance: Instance, *, solver: str, seed: int, workers: int,
                  upper: ExactValue) -> BackendChoice:
    if not 0 < upper < math.inf:
        return replace(make_backend("cpsat", instance, seed=seed, workers=workers), why="no finite upper bound")
    # Measured (reports/frontier.md): branch and price proves every hard-family case in < 5 s (set
    # partitioning / CP-SAT left 2 hetero cases unproven in 20 s), is as fast on adrs50, and is the
    # only backend that gets anywhere on 16+ GPUs.  Its first stage is set partitioning's own search.
    return replace(make_backend("branch-price", instance, solver=solver, seed=seed, workers=workers),
                   why="bin packing by column generation and branch and price")


# -- progress ------------------------------------------------------------------------
@dataclass(frozen=True)
class ExactProgress:
    """One backend call, as shown to a progress callback."""

    iteration: int
    target: Fraction
    strict: bool
    status: str
    seconds: float
    lower: ExactValue
    upper: ExactValue


def _progress_callback(progress: Any) -> Callable[[ExactProgress], None] | None:
    """A callable is used as is; any other truthy value prints one line per step to stderr."""
    if callable(progress):
        return progress
    if progress:
        return _print_progress
    return None


def _print_progress(event: ExactProgress) -> None:
    upper = f"{float(event.upper):.8g}"
    print(f"[exact] #{event.iteration} T={float(event.target):.8g}{' (strict)' if event.strict else ''} "
          f"-> {event.status} in {event.seconds:.3f}s; bracket [{float(event.lower):.8g}, {upper}]",
          file=sys.stderr)


def scenario_bound_instance(instance: Instance) -> Instance:
    """The instance bounds are computed on: itself, or with scenarios the scenario with the largest root bound.

    The worst scenario peak is at least any one scenario's peak, so every lower
    bound or infeasibility argument of one scenario holds for the worst.
    """
    if not instance.scenarios:
        return instance
    return max((instance.for_scenario(s) for s in instance.scenarios), key=root_lower_bound)


# -- the driver -----------------------------------------------------------------------
@dataclass
class _Run:
    """Mutable state of one ``solve_exact`` run."""

    instance: Instance
    backend: BackendChoice | None
    deadline: float
    per_solve_limit_s: float | None
    seed: int
    workers: int
    progress: Callable[[ExactProgress], None] | None
    lower: Fraction
    upper: ExactValue = math.inf  # the best placement's exact peak (math.inf: +inf, or no placement yet)
    best: tuple[int, ...] | None = None
    solves: list[tuple[str, bool, str, float]] = field(default_factory=list)
    iterations: int = 0
    proof_asked: bool = False
    strict_improved: bool = False  # the last strict proof question came back feasible
    undecided: Fraction | None = None  # smallest target whose question came back unknown
    colgen_tried: bool = False
    backend_seconds: float = 0.0
    time_limit_s: float = 0.0
    stop_reason: str = ""
    move_budget: MoveBudget | None = None
    bound_instance: Instance | None = None  # where bounds are computed (a scenario's instance with scenarios)
    incumbents: Callable[[], Sequence[int] | None] | None = None
    incumbents_taken: int = 0
    incumbents_ignored: int = 0
    on_improve: Callable[[tuple[int, ...]], None] | None = None

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def ask(self, target: Fraction, strict: bool, instance: Instance | None = None) -> FeasibilityAnswer:
        """One backend call (bounded by the per-solve limit and the time left), logged."""
        limit = self.remaining()
        if self.per_solve_limit_s is not None:
            limit = min(limit, self.per_solve_limit_s)
        query = FeasibilityQuery(instance or self.instance, target, strict, hint=self.best,
                                 time_limit_s=max(0.01, limit), seed=self.seed, workers=self.workers,
                                 move_budget=self.move_budget)
        assert self.backend is not None
        answer = self.backend.backend.check(query)
        self.iterations += 1
        self.backend_seconds += answer.seconds
        self.solves.append((format_fraction(target), strict, answer.status, round(answer.seconds, 6)))
        if self.progress is not None:
            self.progress(ExactProgress(self.iterations, target, strict, answer.status, answer.seconds,
                                        self.lower, self.upper))
        return answer

    def accept(self, gpu_of: Sequence[int], target: Fraction | None = None, strict: bool = False,
               announce: bool = True) -> bool:
        """Take a backend's placement if it is valid and (when ``target`` is given) meets the target exactly;
        a better one goes to ``on_improve`` (unless ``announce`` is false: it came from there)."""
        checked = check_placement(self.instance, tuple(int(g) for g in gpu_of))
        peak = objective_peak_exact(self.instance, checked)
        if target is not None and (peak > target or (strict and peak == target)):
            return False
        if self.best is None or peak < self.upper:
            self.best, self.upper = checked, peak
            if announce and self.on_improve is not None:
                self.on_improve(checked)
        return True

    def take_incumbent(self) -> None:
        """A better placement from ``incumbents`` (if any) becomes the best; invalid ones are only counted."""
        if self.incumbents is None:
            return
        offered = self.incumbents()
        if offered is None:
            return
        before = self.upper
        try:
            self.accept(offered, announce=False)
        except KvoptError:
            self.incumbents_ignored += 1
            return
        if self.upper < before:
            self.incumbents_taken += 1


def solve_exact(instance: Instance, *, backend: str = "auto", solver: str = "highs", time_limit_s: float = 60.0,
                per_solve_limit_s: float | None = None, warm_start: Placement | Sequence[int] | None = None,
                seed: int = 0, workers: int = 1, progress: Any = None,
                move_budget: MoveBudget | None = None,
                incumbents: Callable[[], Sequence[int] | None] | None = None,
                on_improve: Callable[[tuple[int, ...]], None] | None = None) -> Result:
    """Minimise the peak KVPR exactly (see the module docstring); ``Result.method == "exact"``.

    ``backend``: ``auto`` | ``cpsat`` | ``milp`` | ``setpart``; ``solver`` (``highs`` |
    ``cbc``) is the MILP solver of ``milp`` and of set partitioning's fallback.
    ``details``: ``backend``, ``model``, ``iterations``, ``root_lower_bound``,
    ``solves`` (``(T "p/q", strict, status, seconds)`` per backend call),
    ``start`` (where the warm start came from), ``stop_reason``.

    Re-placement: ``move_budget`` adds the budget row to every query; an instance
    with scenarios minimises the worst scenario peak (one row per scenario and
    GPU).  Both restrict or dominate a plain instance, so the bounds stay valid
    when computed on the scenario with the largest root bound.  Set partitioning
    carries neither row: ``auto``/``setpart`` then use CP-SAT (said in
    ``details["backend_choice"]``).

    ``incumbents``: asked before every question for a placement found elsewhere (the
    anytime method's LNS side); one that is valid and better lowers ``upper`` (so the
    next questions start nearer the optimum), an invalid one is ignored and counted
    (``details["incumbents"]``: taken / ignored).  ``on_improve``: called with each better
    placement a backend answer brings (the anytime method hands it to its LNS side).
    """
    _check_arguments(backend, solver, time_limit_s, per_solve_limit_s)
    clock = time.perf_counter()
    best, source = start_placement(instance, warm_start)
    bound_instance = scenario_bound_instance(instance)
    lower = root_lower_bound(bound_instance)
    run = _Run(instance, None, clock + time_limit_s, per_solve_limit_s, seed, workers,
               _progress_callback(progress), lower, time_limit_s=time_limit_s, move_budget=move_budget,
               bound_instance=bound_instance, incumbents=incumbents, on_improve=on_improve)
    if (move_budget is not None or instance.scenarios) and backend in ("auto", "setpart", "branch-price"):
        backend, rows_why = "cpsat", "set partitioning / bin packing cannot carry the move budget / scenario rows"
    else:
        rows_why = ""
    details: dict[str, Any] = {"start": source, "root_lower_bound": format_fraction(lower)}
    if best is not None:
        run.accept(best, announce=False)
        details["start_peak"] = format_fraction(run.upper)
    run.backend = make_backend(backend, instance, solver=solver, seed=seed, workers=workers, upper=run.upper)
    details.update(backend=run.backend.name, model=run.backend.model)
    if run.backend.why or rows_why:
        details["backend_choice"] = run.backend.why or rows_why
    run.take_incumbent()  # a placement found elsewhere may already settle the questions below
    outcome = _find_placement(run) if run.best is None else None
    if outcome is None and run.upper == math.inf:
        outcome = _find_finite_peak(run)
    if outcome is None:
        outcome = _bisect(run)
    return _result(run, outcome, details, clock)


def _check_arguments(backend: str, solver: str, time_limit_s: float, per_solve_limit_s: float | None) -> None:
    if backend not in BACKENDS:
        raise KvoptError(f"unknown exact backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if solver not in SOLVERS:
        raise KvoptError(f"unknown MILP solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if not time_limit_s > 0:
        raise KvoptError(f"time_limit_s: must be > 0, got {time_limit_s!r}")
    if per_solve_limit_s is not None and not per_solve_limit_s > 0:
        raise KvoptError(f"per_solve_limit_s: must be > 0, got {per_solve_limit_s!r}")


def _find_placement(run: _Run) -> str | None:
    """No start placement: ask the backend whether anything fits in memory at all."""
    answer = run.ask(Fraction(1), False, zero_demand_instance(run.instance))
    if answer.status == "infeasible":
        run.stop_reason = "no placement fits in memory (proven)"
        return "infeasible"
    if answer.status == "unknown" or answer.gpu_of is None:
        run.stop_reason = "no placement found and no proof that none exists"
        return "stopped"
    run.accept(answer.gpu_of)
    return None


def _find_finite_peak(run: _Run) -> str | None:
    """The best placement has an infinite peak: is any finite peak possible?"""
    if is_infinite_bound(run.lower):
        run.stop_reason = "every placement leaves a GPU with demand and no free memory (bound)"
        return "optimal"
    ceiling = max(finite_peak_ceiling(run.instance.for_scenario(s)) for s in run.instance.scenarios) \
        if run.instance.scenarios else finite_peak_ceiling(run.instance)
    answer = run.ask(ceiling, False)
    if answer.status == "infeasible":
        run.stop_reason = "every placement leaves a GPU with demand and no free memory (proven)"
        return "optimal"
    if answer.status == "feasible" and answer.gpu_of is not None and run.accept(answer.gpu_of, ceiling):
        return None
    run.stop_reason = "no finite-peak placement found"
    return "stopped"


def _next_question(run: _Run) -> tuple[Fraction, bool]:
    """The strict proof at ``upper`` first and once the bracket is tight, else a simple midpoint.

    After a strict question that found a (slightly) better placement, the next one is
    a midpoint: a run of strict questions each shaving a little off ``upper`` would
    not halve the bracket (measured on 16-GPU cases: 14 such steps in a row).
    """
    if run.undecided is not None and run.undecided <= run.upper:
        # Above ``undecided`` the backend could not answer in its time: raise the bound below it instead.
        mid = simple_fraction_between(run.lower, run.undecided)
        return (mid, False) if mid is not None else (run.undecided, False)
    gap = None if run.lower == 0 else run.upper / run.lower - 1
    if not run.proof_asked or gap is None or gap <= MIDPOINT_MIN_GAP or (gap <= PROOF_GAP and not run.strict_improved):
        return run.upper, True
    mid = simple_fraction_between(run.lower, run.upper)
    return (mid, False) if mid is not None else (run.upper, True)


def _bisect(run: _Run) -> str:
    """Narrow ``[lower, upper]`` until the strict proof at ``upper`` succeeds or time runs out."""
    while True:
        if run.lower >= run.upper:
            run.stop_reason = "lower bound reaches the placement's peak"
            return "optimal"
        if run.remaining() <= 0:
            run.stop_reason = "time limit"
            return "stopped"
        run.take_incumbent()
        if run.lower >= run.upper:
            continue
        if run.proof_asked and not run.colgen_tried and run.backend_seconds >= COLGEN_TRIGGER_S:
            _raise_by_colgen(run)
            continue
        target, strict = _next_question(run)
        if run.undecided is not None and target >= run.undecided:
            return "stopped"  # nothing left to ask below the undecided question
        run.proof_asked = run.proof_asked or strict
        argument = infeasibility_argument(run.bound_instance, target, strict)
        if argument is not None:
            run.solves.append((format_fraction(target), strict, f"infeasible ({argument})", 0.0))
            if strict:
                run.lower = target
                run.stop_reason = f"proof by bound argument {argument}"
                return "optimal"
            run.lower = target
            continue
        answer = run.ask(target, strict)
        run.strict_improved = strict and answer.status == "feasible"
        if answer.status == "infeasible":
            run.lower = max(run.lower, target)
            if strict:
                run.stop_reason = "no placement has a smaller peak (proven)"
                return "optimal"
        elif answer.status == "feasible" and answer.gpu_of is not None:
            if not run.accept(answer.gpu_of, target, strict):
                run.stop_reason = "backend placement did not meet its target"
                return "stopped"
        else:
            run.stop_reason = f"backend answered unknown at T={format_fraction(target)}" + \
                (" (strict)" if strict else "") + _reason(answer)
            # Keep going below it while there is time: a question nearer the bound is easier to decide.
            if run.remaining() <= 0 or run.lower == 0 or target / run.lower - 1 <= MIDPOINT_MIN_GAP:
                return "stopped"
            run.undecided = target


def _raise_by_colgen(run: _Run) -> None:
    """Once, when the start is not optimal and the backend calls have cost ``COLGEN_TRIGGER_S``
    seconds: the column-generation bound (``kvopt.exact.colgen``).

    Its bound comes with an exact integer (Farkas) certificate, so it is a proven
    ``optimum > bound``; it usually lands much closer to the optimum than the root
    bound and saves the hardest bisection steps.
    """
    run.colgen_tried = True
    if run.upper / run.lower - 1 <= PROOF_GAP:
        return
    budget = min(COLGEN_MAX_S, COLGEN_SHARE * run.time_limit_s, run.remaining())
    if budget <= 0:
        return
    start = time.perf_counter()
    outcome = colgen_lower_bound(run.bound_instance, upper=run.upper, time_limit_s=budget, rel_tol=COLGEN_REL_TOL)
    seconds = time.perf_counter() - start
    if not outcome.certified or outcome.bound <= run.lower:
        return
    if outcome.bound >= run.upper:
        # "optimum > bound >= a peak we hold" is a contradiction: never let it decide anything.
        run.solves.append((format_fraction(outcome.bound), False, "ignored (colgen bound above a known peak)",
                           round(seconds, 6)))
        return
    run.lower = outcome.bound
    run.solves.append((format_fraction(outcome.bound), False, "infeasible (colgen certificate)", round(seconds, 6)))


def _reason(answer: FeasibilityAnswer) -> str:
    reason = answer.details.get("reason") if answer.details else None
    return f": {reason}" if reason else ""


def _result(run: _Run, outcome: str, details: dict[str, Any], clock: float) -> Result:
    """The ``Result`` of a run; every placement is re-validated by ``kvopt.evaluate``."""
    details.update(iterations=run.iterations, solves=run.solves, stop_reason=run.stop_reason)
    if run.incumbents is not None:
        details["incumbents"] = {"taken": run.incumbents_taken, "ignored": run.incumbents_ignored}
    seconds = time.perf_counter() - clock
    name = run.instance.name
    if outcome == "infeasible":
        details["reason"] = run.stop_reason
        return Result(name, "exact", "infeasible", None, None, seconds=seconds, details=details)
    if run.best is None:
        details["reason"] = run.stop_reason
        return Result(name, "exact", "unknown", None, None, lower_bound=float(run.lower),
                      lower_bound_exact=run.lower, seconds=seconds, details=details)
    peak = objective_peak_exact(run.instance, run.best)
    evaluation = evaluate(run.instance, run.best)
    if run.instance.scenarios:
        evaluation = replace(evaluation, peak_kvpr=float(peak))
    # Optimal: the bound is the peak itself (+inf included); else the best proven bound.
    bound = peak if outcome == "optimal" else run.lower
    return Result(name, "exact", "optimal" if outcome == "optimal" else "feasible", Placement(run.best),
                  evaluation.peak_kvpr, peak, float(bound), bound, relative_gap(peak, bound), seconds, details)
