"""Single-shot MILP: minimise the peak ``T`` with the bilinear term linearised by McCormick.

``KVPR_g <= T`` for a GPU whose memory fits is ``N_g <= T·(C_g − S_g)``, i.e.::

    sum_i n_i x_ig + sum_i s_i z_ig − C_g·T <= 0,     z_ig = T·x_ig

With known bounds ``T_lo <= T <= T_hi`` the McCormick envelope of ``z = T·x``::

    z <= T_hi·x,   z >= T_lo·x,   z <= T − T_lo·(1 − x),   z >= T − T_hi·(1 − x)

is *exact* for binary ``x``: ``x = 0`` gives ``0 <= z <= 0`` and ``x = 1`` gives
``T <= z <= T``.  With ``sum_g x_ig = 1`` and the memory rows ``sum_i s_i x_ig <= C_g``
the MILP ``min T`` has the optimal peak as its optimum, provided it is in
``[T_lo, T_hi]``: ``T_lo`` the proven ``kvopt.bounds.root_lower_bound`` and ``T_hi``
the peak of a warm start (``kvopt.heuristics.start``).

Symmetry of equal GPUs is cut by variable bounds: in a class of equal GPUs
``g_0, g_1, ...``, ``x_{i,g_k} = 0`` for ``i < k`` (relabel the GPUs of a class by
the smallest model index they carry; the ``k``-th then carries no model below
``k``).  The warm start is relabelled the same way.

**Precision.**  The data ``n_i``, ``s_i``, ``C_g`` enter as floats and the solver
proves optimality only up to its tolerances (feasibility 1e-7, gap 1e-7 here).
The placement is therefore re-evaluated exactly (``kvopt.evaluate``), and
``optimal`` is only ever claimed with an exact proof: one strict set-partitioning
check at the exact peak (``kvopt.exact.setpart``: no placement has peak ``< P``),
or the start meeting the proven lower bound (``details["proof"]`` says which).
Without it the result is ``feasible`` with the certified bound ``T_lo``; the
solver's own float bound is only reported in ``details["solver_bound"]``.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import Sequence

from kvopt.exact.solvers import cbc_engine, configured_highs, highs_has_solution
from kvopt.evaluate import evaluate, exact_peak_kvpr
from kvopt.bounds import root_lower_bound
from kvopt.exact.backend import FeasibilityQuery, seconds_left
from kvopt.exact.packing import finite_peak_packing, memory_packing
from kvopt.exact.setpart import SetPartitionBackend
from kvopt.exact.linear import LinearModel, LinearRow, to_highs, to_pulp
from kvopt.heuristics.start import start_placement
from kvopt.model import ExactValue, Instance, KvoptError, Placement, PlacementError, Result, relative_gap
from kvopt.scaling import canonical_placement, capacity_classes, integer_data

SOLVERS = ("highs", "cbc")
SOLVER_GAP = 1e-7


# -- the model --------------------------------------------------------------------------
def gpu_classes(instance: Instance) -> list[tuple[int, ...]]:
    """GPU indices grouped by equal capacity (``kvopt.scaling.capacity_classes``)."""
    return [cls.gpus for cls in capacity_classes(integer_data(instance))]


def _t_col() -> int:
    return 0


def _x_col(instance: Instance, i: int, g: int) -> int:
    return 1 + i * instance.num_gpus + g


def _z_col(instance: Instance, i: int, g: int) -> int:
    return 1 + instance.num_models * instance.num_gpus + i * instance.num_gpus + g


def mccormick_model(instance: Instance, t_lo: Fraction, t_hi: Fraction, *, symmetry: bool = True) -> LinearModel:
    """The McCormick MILP (module docstring) as a ``LinearModel``; columns ``T``, ``x_i_g``, ``z_i_g``."""
    if not 0 <= t_lo <= t_hi:
        raise KvoptError(f"mccormick: need 0 <= T_lo <= T_hi, got T_lo={t_lo}, T_hi={t_hi}")
    n, num_gpus = instance.num_models, instance.num_gpus
    lo, hi = float(t_lo), float(t_hi)
    names = ["T"] + [f"x_{i}_{g}" for i in range(n) for g in range(num_gpus)] + \
        [f"z_{i}_{g}" for i in range(n) for g in range(num_gpus)]
    col_lower = [lo] + [0.0] * (2 * n * num_gpus)
    col_upper = [hi] + [1.0] * (n * num_gpus) + [hi] * (n * num_gpus)
    integer = [False] + [True] * (n * num_gpus) + [False] * (n * num_gpus)
    if symmetry:
        for gpus in gpu_classes(instance):
            for k, g in enumerate(gpus):
                for i in range(min(k, n)):
                    col_upper[_x_col(instance, i, g)] = 0.0
    rows: list[LinearRow] = []
    for i in range(n):
        rows.append(LinearRow(f"assign_{i}", tuple(_x_col(instance, i, g) for g in range(num_gpus)),
                              (1.0,) * num_gpus, 1.0, 1.0))
    sizes, demands, caps = instance.sizes, instance.demands, instance.capacities
    for g in range(num_gpus):
        x_cols = tuple(_x_col(instance, i, g) for i in range(n))
        rows.append(LinearRow(f"mem_{g}", x_cols, tuple(float(s) for s in sizes), None, float(caps[g])))
        z_cols = tuple(_z_col(instance, i, g) for i in range(n))
        rows.append(LinearRow(f"kvpr_{g}", x_cols + z_cols + (_t_col(),),
                              tuple(float(d) for d in demands) + tuple(float(s) for s in sizes) + (-float(caps[g]),),
                              None, 0.0))
    for i in range(n):
        for g in range(num_gpus):
            x, z, t = _x_col(instance, i, g), _z_col(instance, i, g), _t_col()
            rows.append(LinearRow(f"mc_hi_x_{i}_{g}", (z, x), (1.0, -hi), None, 0.0))
            rows.append(LinearRow(f"mc_lo_x_{i}_{g}", (z, x), (1.0, -lo), 0.0, None))
            rows.append(LinearRow(f"mc_t_lo_{i}_{g}", (z, t, x), (1.0, -1.0, -lo), None, -lo))
            rows.append(LinearRow(f"mc_t_hi_{i}_{g}", (z, t, x), (1.0, -1.0, -hi), -hi, None))
    objective = [1.0] + [0.0] * (2 * n * num_gpus)
    return LinearModel("kvpr_mccormick", tuple(names), tuple(col_lower), tuple(col_upper), tuple(integer),
                       tuple(objective), tuple(rows))


def start_values(instance: Instance, gpu_of: Sequence[int], peak: float) -> list[float]:
    """Column values of a placement with ``T = peak`` (a feasible MILP point)."""
    n, num_gpus = instance.num_models, instance.num_gpus
    values = [0.0] * (1 + 2 * n * num_gpus)
    values[_t_col()] = peak
    for i, g in enumerate(gpu_of):
        values[_x_col(instance, i, g)] = 1.0
        values[_z_col(instance, i, g)] = peak
    return values


def placement_from_values(instance: Instance, values: Sequence[float]) -> tuple[int, ...] | None:
    """GPU of each model from the ``x`` values (the largest per model); ``None`` if any row is empty."""
    gpu_of = []
    for i in range(instance.num_models):
        scores = [values[_x_col(instance, i, g)] for g in range(instance.num_gpus)]
        best = max(range(instance.num_gpus), key=scores.__getitem__)
        if scores[best] < 0.5:
            return None
        gpu_of.append(best)
    return tuple(gpu_of)


# -- solving ----------------------------------------------------------------------------
def _solve_highs(model: LinearModel, start: Sequence[float], time_limit_s: float, seed: int
                 ) -> tuple[bool, list[float] | None, float | None, str]:
    """(solver proved optimal, column values, best bound, status text)."""
    import highspy

    h = configured_highs(time_limit_s=time_limit_s, seed=seed, mip_rel_gap=SOLVER_GAP, mip_abs_gap=1e-12)
    to_highs(model, h)
    solution = highspy.HighsSolution()
    solution.col_value = list(start)
    solution.value_valid = True
    h.setSolution(solution)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    values = list(h.getSolution().col_value) if highs_has_solution(h) else None
    bound = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else None
    return status == highspy.HighsModelStatus.kOptimal, values, bound, h.modelStatusToString(status)


def _solve_cbc(model: LinearModel, start: Sequence[float], time_limit_s: float
               ) -> tuple[bool, list[float] | None, float | None, str]:
    import pulp

    prob, variables = to_pulp(model)
    for var, value in zip(variables, start):
        var.setInitialValue(value)
    cbc = cbc_engine(timeLimit=time_limit_s, warmStart=True, gapRel=SOLVER_GAP, gapAbs=1e-12)
    prob.solve(cbc)
    status = pulp.LpStatus[prob.status]
    has_solution = prob.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    values = [var.value() or 0.0 for var in variables] if has_solution else None
    optimal = prob.sol_status == pulp.LpSolutionOptimal
    # PuLP does not report CBC's best bound; at proven optimality it is the objective.
    bound = float(pulp.value(prob.objective)) if optimal else None
    return optimal, values, bound, status


def solve_mccormick(instance: Instance, *, solver: str = "highs", time_limit_s: float = 60.0,
                    lower: ExactValue | None = None, upper: Fraction | None = None,
                    warm_start: Placement | Sequence[int] | None = None, certify: bool = True,
                    seed: int = 0) -> Result:
    """Minimise the peak with the McCormick MILP; the result is re-evaluated exactly.

    ``lower``/``upper``: known bounds on the optimum (defaults: ``root_lower_bound``
    and the start's peak); ``lower`` must be *proven* (it is trusted, and the
    result is "optimal" at once if the start meets it).  ``certify``: prove
    optimality exactly with one strict set-partitioning check; without that proof
    the result is ``feasible`` whatever the solver says (see module docstring).
    No placement at all gives ``infeasible`` (proven) or ``unknown``; an infinite
    optimum is proven by the bound or by ``finite_peak_packing``.
    """
    if solver not in SOLVERS:
        raise KvoptError(f"mccormick: unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    start, source = start_placement(instance, warm_start)
    details: dict = {"solver": solver, "start": source}
    if start is None:
        packing = memory_packing(instance, time_limit_s=seconds_left(deadline), seed=seed)
        if packing.status != "feasible":
            return _no_placement(instance, packing.status, t0, details)
        start = packing.gpu_of
    t_lo = max(root_lower_bound(instance), lower if lower is not None else Fraction(0))
    start_peak = exact_peak_kvpr(instance, start)
    if start_peak == math.inf and t_lo < math.inf:
        finite = finite_peak_packing(instance, time_limit_s=seconds_left(deadline), hint=start, seed=seed)
        details["finite_peak_check"] = finite.status
        if finite.status == "infeasible":
            t_lo = math.inf  # proven: every placement has an infinite peak
        elif finite.status == "feasible":
            start, start_peak = finite.gpu_of, exact_peak_kvpr(instance, finite.gpu_of)
    details.update(T_lo=float(t_lo), start_peak=float(start_peak))
    if start_peak <= t_lo:
        # The start meets a proven lower bound (+inf included): optimal, exactly.
        return _result(instance, start, "optimal", start_peak, t0, {**details, "proof": "start meets bound"})
    if start_peak == math.inf:
        return _result(instance, start, "feasible", t_lo, t0, {**details, "reason": "no finite-peak placement found"})
    t_hi = min(start_peak, Fraction(upper)) if upper is not None else start_peak
    if t_hi < t_lo:
        raise KvoptError(f"mccormick: upper bound {t_hi} is below the lower bound {t_lo}")
    details["T_hi"] = float(t_hi)
    start = canonical_placement(start, gpu_classes(instance))
    model = mccormick_model(instance, t_lo, t_hi)
    values_in = start_values(instance, start, float(t_hi))
    if solver == "highs":
        proved, values, bound, status_text = _solve_highs(model, values_in, seconds_left(deadline), seed)
    else:
        proved, values, bound, status_text = _solve_cbc(model, values_in, seconds_left(deadline))
    details.update(solver_status=status_text, solver_bound=bound, solver_seconds=time.perf_counter() - t0)
    gpu_of = placement_from_values(instance, values) if values is not None else None
    if gpu_of is None or not _fits_memory(instance, gpu_of) or exact_peak_kvpr(instance, gpu_of) > start_peak:
        gpu_of = start
    peak = exact_peak_kvpr(instance, gpu_of)
    if proved and certify:
        answer = SetPartitionBackend().check(FeasibilityQuery(instance, peak, strict=True,
                                                              time_limit_s=seconds_left(deadline), seed=seed))
        details["certify"] = answer.status
        if answer.status == "infeasible":
            return _result(instance, gpu_of, "optimal", peak, t0, {**details, "proof": "set-partitioning check"})
        if answer.status == "feasible":
            # The solver's tolerance hid a better placement: report it, unproven.
            details["note"] = "exact check found a better placement than the solver's optimum"
            return _result(instance, answer.gpu_of, "feasible", t_lo, t0, details)
    # The solver's own bound is a float with tolerances: kept in details, never reported as the bound.
    return _result(instance, gpu_of, "feasible", t_lo, t0, details)


def _no_placement(instance: Instance, status: str, t0: float, details: dict) -> Result:
    """No start and no packing: ``infeasible`` when the packing search proved it, else ``unknown``."""
    if status == "infeasible":
        details["reason"] = "no placement fits in memory (proven)"
        return Result(instance.name, "mccormick", "infeasible", None, None, seconds=time.perf_counter() - t0,
                      details=details)
    details["reason"] = "no placement found and no proof that none exists"
    return Result(instance.name, "mccormick", "unknown", None, None, seconds=time.perf_counter() - t0,
                  details=details)


def _fits_memory(instance: Instance, gpu_of: Sequence[int]) -> bool:
    try:
        evaluate(instance, gpu_of, exact=False)
    except PlacementError:
        return False
    return True


def _result(instance: Instance, gpu_of: Sequence[int], status: str, bound: ExactValue, t0: float,
            details: dict) -> Result:
    """A ``Result`` with the peak from ``kvopt.evaluate`` and the certified (exact) lower bound."""
    ev = evaluate(instance, gpu_of)
    return Result(instance.name, "mccormick", status, Placement(tuple(gpu_of)), ev.peak_kvpr, ev.peak_kvpr_exact,
                  float(bound), bound, relative_gap(ev.peak_kvpr_exact, bound), time.perf_counter() - t0, details)
