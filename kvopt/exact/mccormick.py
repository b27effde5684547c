"""Single-shot MILP: minimise the peak ``T`` with the bilinear term linearised by McCormick.

``KVPR_g <= T`` for a GPU whose memory fits is ``N_g <= T·(C_g − S_g)``, i.e.::

    sum_i n_i x_ig + sum_i s_i z_ig − C_g·T <= 0,     z_ig = T·x_ig

With known bounds ``T_lo <= T <= T_hi`` the McCormick envelope of ``z = T·x``::

    z <= T_hi·x,   z >= T_lo·x,   z <= T − T_lo·(1 − x),   z >= T − T_hi·(1 − x)

is *exact* for binary ``x``: ``x = 0`` gives ``0 <= z <= 0`` and ``x = 1`` gives
``T <= z <= T``.  With ``sum_g x_ig = 1`` and the memory rows ``sum_i s_i x_ig <= C_g``
the MILP ``min T`` has the optimal peak as its optimum, provided it is in
``[T_lo, T_hi]``: ``T_lo = Σn/(ΣC − Σs)`` (the mediant bound: ``peak·Σ(C_g−S_g) >=
ΣN_g``) and ``T_hi`` the peak of a warm start (``kvopt.heuristics.start``).

Symmetry of equal GPUs is cut by variable bounds: in a class of equal GPUs
``g_0, g_1, ...``, ``x_{i,g_k} = 0`` for ``i < k`` (relabel the GPUs of a class by
the smallest model index they carry; the ``k``-th then carries no model below
``k``).  The warm start is relabelled the same way.

**Precision.**  The data ``n_i``, ``s_i``, ``C_g`` enter as floats and the solver
proves optimality only up to its tolerances (feasibility 1e-7, gap 1e-7 here).
The placement is therefore re-evaluated exactly (``kvopt.evaluate``), and, when
``certify`` is on and the instance is small enough, optimality is then proven in
exact arithmetic by one strict set-partitioning check at the exact peak
(``kvopt.exact.setpart``: no placement has peak ``< P``).  ``details["proof"]``
says which proof stands behind ``status == "optimal"``: ``"exact"`` or
``"solver-tolerance"`` (the solver's best bound is within 1e-6 of the peak; no
``lower_bound_exact`` is given then).
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import Sequence

from kvopt.exact.solvers import cbc_engine, configured_highs, highs_has_solution
from kvopt.evaluate import evaluate, exact_peak_kvpr
from kvopt.exact.backend import FeasibilityQuery
from kvopt.exact.linear import LinearModel, LinearRow, to_highs, to_pulp
from kvopt.heuristics.start import start_placement
from kvopt.model import Instance, KvoptError, Placement, PlacementError, Result
from kvopt.scaling import canonical_placement, capacity_classes, integer_data

SOLVERS = ("highs", "cbc")
SOLVER_GAP = 1e-7
TOLERANCE_PROOF = 1e-6  # solver bound within this relative distance of the peak = "optimal" (tolerance)


def _peak_key(instance: Instance, gpu_of: Sequence[int]) -> Fraction | float:
    peak = exact_peak_kvpr(instance, gpu_of)
    return math.inf if peak is None else peak


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
                    lower: Fraction | None = None, upper: Fraction | None = None,
                    warm_start: Sequence[int] | None = None, certify: bool = True, seed: int = 0) -> Result:
    """Minimise the peak with the McCormick MILP; the result is re-evaluated exactly.

    ``lower``/``upper``: known bounds on the optimum (defaults: mediant bound and
    the warm start's peak); ``lower`` must be *proven* (it is trusted, and the
    result is "optimal" at once if the start meets it).  ``certify``: prove optimality exactly with one strict
    set-partitioning check (see module docstring).
    """
    from kvopt.exact.setpart import SetPartitionBackend, mediant_lower_bound

    if solver not in SOLVERS:
        raise KvoptError(f"mccormick: unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    t0 = time.perf_counter()
    start, _ = start_placement(instance, warm_start)
    if start is None:
        raise KvoptError(f"instance {instance.name!r}: no start placement found")
    start_peak = exact_peak_kvpr(instance, start)
    if start_peak is None:
        raise KvoptError(f"instance {instance.name!r}: the start placement has infinite peak KVPR")
    t_lo = max(mediant_lower_bound(instance), Fraction(lower) if lower is not None else Fraction(0))
    t_hi = min(start_peak, Fraction(upper)) if upper is not None else start_peak
    details: dict = {"solver": solver, "T_lo": float(t_lo), "T_hi": float(t_hi), "start_peak": float(start_peak)}
    if start_peak <= t_lo:
        # The start meets a lower bound: optimal, exactly.
        return _result(instance, start, "optimal", t_lo, t0, {**details, "proof": "exact", "via": "start meets bound"})
    if t_hi < t_lo:
        raise KvoptError(f"mccormick: upper bound {t_hi} is below the lower bound {t_lo}")
    start = canonical_placement(start, gpu_classes(instance))
    model = mccormick_model(instance, t_lo, t_hi)
    values_in = start_values(instance, start, float(t_hi))
    if solver == "highs":
        proved, values, bound, status_text = _solve_highs(model, values_in, time_limit_s, seed)
    else:
        proved, values, bound, status_text = _solve_cbc(model, values_in, time_limit_s)
    details.update(solver_status=status_text, solver_bound=bound, solver_seconds=time.perf_counter() - t0)
    gpu_of = placement_from_values(instance, values) if values is not None else None
    if gpu_of is None or _peak_key(instance, gpu_of) > start_peak or not _fits_memory(instance, gpu_of):
        gpu_of = start
    peak = exact_peak_kvpr(instance, gpu_of)
    assert peak is not None  # no worse than the finite start peak
    float_bound = max(float(t_lo), bound) if bound is not None else float(t_lo)
    if proved and certify:
        remaining = max(0.5, time_limit_s - (time.perf_counter() - t0))
        answer = SetPartitionBackend().check(FeasibilityQuery(instance, peak, strict=True, time_limit_s=remaining))
        details["certify"] = answer.status
        if answer.status == "infeasible":
            return _result(instance, gpu_of, "optimal", peak, t0, {**details, "proof": "exact"})
        if answer.status == "feasible":
            # The solver's tolerance hid a better placement: report it, unproven.
            better = answer.gpu_of
            details["note"] = "exact check found a better placement than the solver's optimum"
            return _result(instance, better, "feasible", t_lo, t0, details)
    if proved and float_bound >= float(peak) * (1 - TOLERANCE_PROOF):
        return _result(instance, gpu_of, "optimal", None, t0, {**details, "proof": "solver-tolerance"},
                       float_bound=float_bound)
    return _result(instance, gpu_of, "feasible", t_lo, t0, details, float_bound=float_bound)


def _fits_memory(instance: Instance, gpu_of: Sequence[int]) -> bool:
    try:
        evaluate(instance, gpu_of, exact=False)
    except PlacementError:
        return False
    return True


def _result(instance: Instance, gpu_of: Sequence[int], status: str, bound_exact: Fraction | None, t0: float,
            details: dict, *, float_bound: float | None = None) -> Result:
    """A ``Result`` with the peak from ``kvopt.evaluate``; lower bound exact if given, else the float one."""
    ev = evaluate(instance, gpu_of)
    lower = float(bound_exact) if bound_exact is not None else float_bound
    if bound_exact is not None and float_bound is not None:
        lower = max(lower, float_bound)
    gap = None
    if lower is not None:
        gap = 0.0 if status == "optimal" else (ev.peak_kvpr / lower - 1 if lower > 0 else None)
    return Result(instance.name, "mccormick", status, Placement(tuple(gpu_of)), ev.peak_kvpr, ev.peak_kvpr_exact,
                  lower, bound_exact, gap, time.perf_counter() - t0, details)
