"""Column-generation lower bound: the LP relaxation of the set-partitioning model, proven exactly.

At a target ``T`` a placement is a choice of at most ``G_c`` patterns per capacity
class covering every model (``kvopt.exact.setpart``).  The LP relaxation, in the
bin-packing form that column generation handles well::

    min λ   s.t.  sum_{P ∋ i} y_P >= 1            (dual π_i >= 0),
                  sum_{P in c} y_P <= G_c·λ        (dual u_c >= 0),   y, λ >= 0

has ``λ* <= 1`` iff its relaxation is feasible at ``T``.  Its dual is
``max Σπ_i`` s.t. ``π(P) <= u_c`` for every pattern ``P`` of class ``c`` and
``Σ_c G_c u_c <= 1``.  Columns are priced by a knapsack over the exact integer
target row: ``max π(P)`` over the patterns of a class (a greedy first, then an
exact branch and bound, ``max_value_pattern``).  The memory row is implied by the
target row (``weight_i >= p·L·sint_i``), so the knapsack has one row.

**Exact infeasibility certificate (Farkas).**  Take the LP duals, round them down
to integers ``π_i = floor(D·dual_i) >= 0`` and compute ``u_c >= max_P π(P)`` in
integers over the exact rows of ``kvopt.scaling`` — exactly by a table over
(size, demand) when it is small (``max_pattern_value_dp``), else by branch and
bound (whose proven upper bound is used if it stops early).  If::

    Σ_i π_i  >  Σ_c G_c·u_c

no placement exists at ``T``: a placement puts pattern ``P_g`` (or nothing) on
GPU ``g``, so ``Σ_i π_i = Σ_g π(P_g) <= Σ_c G_c·u_c``.  The check uses integers
only, so the floating-point LP only *suggests* the certificate; the proof is
exact whatever its tolerances.

Certificates are tried when pricing finds no column and every ``CERTIFY_EVERY``
iterations (any duals are fine once verified, which cuts the LP's tail).

``colgen_lower_bound`` bisects on ``T`` between the mediant bound and a feasible
peak and returns the largest ``T`` with a verified certificate (the optimum is
then ``> T``), or the mediant bound if none is found.

Measured (``scripts/bench_colgen.py``, adrs50's distribution at 64 GPUs / 128 models): the
bound is 4.7–7.1 % above the mediant bound and within 0.05 % of the optimum
(proven by ``kvopt.exact.candidates.minimize_peak_setpart``), in ~1.5 s.  At 256 GPUs a check near the
LP threshold takes minutes (LP tail-off), so the time-limited bound is looser.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from kvopt.exact.solvers import configured_highs
from kvopt.bounds import mediant_bound, simple_fraction_between
from kvopt.evaluate import exact_peak_kvpr
from kvopt.heuristics.start import start_placement
from kvopt.scaling import CapacityClass, IntegerData, TargetRows, capacity_classes, integer_data, target_rows
from kvopt.model import Instance, KvoptError

DUAL_SCALE = 10**9  # D: LP duals are rounded down to multiples of 1/D
PRICING_TOL = 1e-9
GREEDY_SEEDS = 64  # at least this many seed models per class for the greedy pricing (n/4 if larger)
PRICING_NODES = 20_000  # knapsack nodes per exact pricing call (past it: no column, see _generate)
CERTIFY_NODES = 2_000_000  # knapsack bound evaluations per class for the certificate (past it: a weaker valid bound)
CERTIFY_EVERY = 50  # also try the certificate every this many LP iterations (tail-off)
DP_MAX_CELLS = 4_000_000  # exact (size, demand) table for the certificate when it is at most this big


# -- pricing: exact 0-1 knapsack with integer values --------------------------------------
@dataclass(frozen=True)
class KnapsackItems:
    """Items with positive value, sorted by value/weight descending (exact order)."""

    model: tuple[int, ...]
    value: tuple[int, ...]
    weight: tuple[int, ...]


def knapsack_items(values: Sequence[int], weights: Sequence[int]) -> KnapsackItems:
    """Keep items of positive value (others never raise ``π(P)``), best ratio first."""
    keep = [i for i, v in enumerate(values) if v > 0]
    keep.sort(key=lambda i: (Fraction(values[i], weights[i]) if weights[i] > 0 else math.inf), reverse=True)
    return KnapsackItems(tuple(keep), tuple(values[i] for i in keep), tuple(weights[i] for i in keep))


@dataclass(frozen=True)
class KnapsackResult:
    """Best value found, its models, and a proven upper bound on the optimum (``== value`` if complete)."""

    value: int
    models: tuple[int, ...]
    upper: int

    @property
    def complete(self) -> bool:
        return self.upper == self.value


class _Interrupted(Exception):
    """Node budget used up; carries the largest bound of the unexplored subtrees."""

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.bound = bound


@dataclass
class _KnapsackState:
    best_value: int
    best_set: tuple[int, ...]
    nodes_left: int


def max_value_pattern(items: KnapsackItems, capacity: int, node_limit: int = 10**12) -> KnapsackResult:
    """``max Σ value`` over subsets with ``Σ weight <= capacity`` (branch and bound).

    Items are added in ratio order; a node's bound is the fractional (Dantzig)
    fill of the remaining items — the LP optimum over them, so it can only shrink
    as the start index grows, and the loop stops at the first start whose bound
    cannot beat the best.  Values are integers, so a float bound ``< best + 0.5``
    is a safe prune (float error is far below 0.5 for sums < 2^50).  Past
    ``node_limit`` bound evaluations the search stops and ``upper`` is the largest bound of
    the unexplored subtrees (rounded up with a margin): still a valid upper bound.
    """
    state = _KnapsackState(0, (), node_limit)
    upper: int | None = None
    try:
        _knapsack_node(items, 0, capacity, 0, [], state)
    except _Interrupted as stop:
        upper = max(state.best_value, math.ceil(stop.bound * (1 + 1e-9) + 1))
    models = tuple(items.model[k] for k in state.best_set)
    return KnapsackResult(state.best_value, models, state.best_value if upper is None else upper)


def _dantzig_bound(items: KnapsackItems, start: int, slack: int) -> float:
    bound = 0.0
    for k in range(start, len(items.value)):
        w = items.weight[k]
        if w <= slack:
            slack -= w
            bound += items.value[k]
        else:
            return bound + items.value[k] * (slack / w)
    return bound


def _knapsack_node(items: KnapsackItems, start: int, slack: int, value: int, chosen: list[int],
                   state: _KnapsackState) -> None:
    if value > state.best_value:
        state.best_value, state.best_set = value, tuple(chosen)
    state.nodes_left -= 1
    if state.nodes_left < 0:
        raise _Interrupted(value + _dantzig_bound(items, start, slack))
    for k in range(start, len(items.value)):
        state.nodes_left -= 1  # the budget counts bound evaluations, the real work
        if state.nodes_left < 0:
            raise _Interrupted(value + _dantzig_bound(items, k, slack))
        if value + _dantzig_bound(items, k, slack) < state.best_value + 0.5:
            return
        w = items.weight[k]
        if w <= slack:
            chosen.append(k)
            try:
                _knapsack_node(items, k + 1, slack - w, value + items.value[k], chosen, state)
            except _Interrupted as stop:
                # Items k.. (with k or without) are still open here: their bound covers both.
                raise _Interrupted(max(stop.bound, value + _dantzig_bound(items, k, slack))) from None
            chosen.pop()


# -- the restricted master LP ------------------------------------------------------------
@dataclass
class _Master:
    """HiGHS LP with rows ``0..n-1`` (cover) and ``n..n+K-1`` (class); columns: ``λ``, then patterns."""

    highs: object
    num_models: int
    columns: set  # (class, frozenset of models) already in the LP
    data: IntegerData


def _new_master(data: IntegerData, counts: Sequence[int]) -> _Master:
    import highspy

    num_models = len(data.demand_int)
    # Re-solves after adding columns must hot-start the simplex; presolve would discard the basis.
    # The caller bounds the whole bound search in time, so the LP itself has no limit.
    h = configured_highs(time_limit_s=math.inf, presolve="off", solver="simplex")
    inf = highspy.kHighsInf
    num_rows = num_models + len(counts)
    lower = np.array([1.0] * num_models + [-inf] * len(counts))
    upper = np.array([inf] * num_models + [0.0] * len(counts))
    h.addRows(num_rows, lower, upper, 0, np.zeros(num_rows, dtype=np.int32), np.array([], dtype=np.int32),
              np.array([]))
    # λ: cost 1, coefficient −G_c in every class row.
    class_rows = np.arange(num_models, num_rows, dtype=np.int32)
    h.addCol(1.0, 0.0, inf, len(counts), class_rows, -np.array(counts, dtype=float))
    return _Master(h, num_models, set(), data)


def _add_pattern(master: _Master, cls: int, models: Sequence[int]) -> bool:
    import highspy

    key = (cls, frozenset(models))
    if key in master.columns or not models:
        return False
    master.columns.add(key)
    index = np.array(sorted(models) + [master.num_models + cls], dtype=np.int32)
    master.highs.addCol(0.0, 0.0, highspy.kHighsInf, len(index), index, np.ones(len(index)))
    return True


def _solve_master(master: _Master) -> tuple[float, list[float], list[float]]:
    """(objective, cover duals π, class duals u >= 0)."""
    h = master.highs
    h.run()
    duals = list(h.getSolution().row_dual)
    n = master.num_models
    return h.getObjectiveValue(), duals[:n], [max(0.0, -d) for d in duals[n:]]


# -- one target ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ColgenOutcome:
    """``infeasible`` (exact certificate), ``lp-feasible`` (LP relaxation feasible: no proof), or ``unknown``."""

    status: str
    lp_value: float  # λ of the last restricted master (> 1: LP relaxation infeasible if converged)
    iterations: int
    columns: int


def _class_capacity(rows: TargetRows, cls: CapacityClass) -> int:
    return rows.capacity[cls.gpus[0]]


def verify_certificate(data: IntegerData, rows: TargetRows, classes: Sequence[CapacityClass],
                       duals: Sequence[float]) -> bool:
    """Exact Farkas check: ``Σπ > Σ_c G_c·max_P π(P)`` with ``π = floor(D·dual)`` (module docstring).

    ``max_P π(P)`` comes from the exact table ``max_pattern_value_dp`` when it is
    small enough, else from the branch and bound (an upper bound if it stops early).
    """
    values = [max(0, math.floor(d * DUAL_SCALE)) for d in duals]
    items = knapsack_items(values, rows.weight)
    bound = 0
    for cls in classes:
        best = max_pattern_value_dp(data, rows, cls.cap_int, values)
        if best is None:
            best = max_value_pattern(items, _class_capacity(rows, cls), CERTIFY_NODES).upper
        bound += len(cls.gpus) * best
    return sum(values) > bound


def max_pattern_value_dp(data: IntegerData, rows: TargetRows, cap_int: int, values: Sequence[int],
                         max_cells: int = DP_MAX_CELLS) -> int | None:
    """Exact ``max Σ values`` over patterns of a GPU with ``cap_int``, by a table over (size, demand).

    ``best[S, D]`` = the largest value of a set with ``Σsint = S`` and ``Σnint = D``
    (0-1 knapsack, one item at a time).  The target row is
    ``q·M·D + p·L·S <= p·L·cint``, so ``S <= cint`` and ``D <= p·L·cint / (q·M)``.
    Returns ``None`` when the table would exceed ``max_cells`` (data with large
    integer scales) or values could overflow int64.
    """
    p, q = rows.target.numerator, rows.target.denominator
    a, b = q * data.mem_scale, p * data.demand_scale
    max_demand = (b * cap_int) // a
    cells = (cap_int + 1) * (max_demand + 1)
    if cells > max_cells or sum(values) >= 2**62:
        return None
    table = np.full((cap_int + 1, max_demand + 1), -1, dtype=np.int64)  # -1: unreachable
    table[0, 0] = 0
    for i, value in enumerate(values):
        size, demand = data.size_int[i], data.demand_int[i]
        if value <= 0 or size > cap_int or demand > max_demand:
            continue
        source = table[: cap_int + 1 - size, : max_demand + 1 - demand]
        shifted = np.where(source >= 0, source + value, -1)
        target = table[size:, demand:]
        np.maximum(target, shifted, out=target)  # source is read before the write: 0-1, not unbounded
    # Row S allows demands D <= b·(cint − S)/a (exact integer division).
    return max(int(table[size, : (b * (cap_int - size)) // a + 1].max()) for size in range(cap_int + 1))


def lp_check(instance: Instance, target: Fraction, *, time_limit_s: float = 60.0,
             max_iterations: int = 500, pool: set | None = None) -> ColgenOutcome:
    """Column generation on the LP at ``target``; ``infeasible`` only with a verified certificate.

    ``pool``: columns ``(class, frozenset(models))`` from earlier targets; those that
    are patterns at ``target`` (re-checked exactly) start the LP, and every column
    generated here is added to it.
    """
    t0 = time.perf_counter()
    data = integer_data(instance)
    rows = target_rows(data, Fraction(target), False)
    classes = capacity_classes(data)
    n = instance.num_models
    for i in range(n):
        if all(rows.weight[i] > _class_capacity(rows, c) for c in classes):
            return ColgenOutcome("infeasible", math.inf, 0, 0)  # model i fits no GPU alone
    master = _new_master(data, [len(c.gpus) for c in classes])
    for c, cls in enumerate(classes):
        for i in range(n):
            if rows.weight[i] <= _class_capacity(rows, cls):
                _add_pattern(master, c, [i])
    for c, models in sorted(pool or (), key=lambda col: (col[0], sorted(col[1]))):
        if sum(rows.weight[i] for i in models) <= _class_capacity(rows, classes[c]):
            _add_pattern(master, c, sorted(models))
    try:
        return _generate(master, rows, classes, t0, time_limit_s, max_iterations)
    finally:
        if pool is not None:
            pool.update(master.columns)


def _generate(master: _Master, rows: TargetRows, classes: Sequence[CapacityClass], t0: float,
              time_limit_s: float, max_iterations: int) -> ColgenOutcome:
    """Price and re-solve until the LP is feasible, optimal over all patterns, or out of budget."""
    lp_value, iterations, pi = math.inf, 0, []
    while iterations < max_iterations and time.perf_counter() - t0 < time_limit_s:
        iterations += 1
        lp_value, pi, u = _solve_master(master)
        if lp_value <= 1 + PRICING_TOL:
            return ColgenOutcome("lp-feasible", lp_value, iterations, len(master.columns))
        if iterations % CERTIFY_EVERY == 0 and verify_certificate(master.data, rows, classes, pi):
            # Any duals give a valid certificate once verified: no need to wait for the LP tail.
            return ColgenOutcome("infeasible", lp_value, iterations, len(master.columns))
        if _price(master, rows, classes, pi, u, PRICING_NODES):
            continue
        # Budgeted pricing found nothing: the LP is (nearly) optimal, try the exact certificate,
        # and if it fails, price once more with the large budget before giving up.
        if verify_certificate(master.data, rows, classes, pi):
            return ColgenOutcome("infeasible", lp_value, iterations, len(master.columns))
        if not _price(master, rows, classes, pi, u, CERTIFY_NODES, greedy=False):
            return ColgenOutcome("unknown", lp_value, iterations, len(master.columns))
    status = "infeasible" if pi and verify_certificate(master.data, rows, classes, pi) else "unknown"
    return ColgenOutcome(status, lp_value, iterations, len(master.columns))


def _price(master: _Master, rows: TargetRows, classes: Sequence[CapacityClass], pi: Sequence[float],
           u: Sequence[float], budget: int, greedy: bool = True) -> int:
    """Add improving patterns (``π(P) > u_c``); return how many were added.

    First a cheap greedy pricing (``_greedy_columns``: one pattern per seed model,
    filled by value/weight); only when it finds nothing, the knapsack branch and
    bound (values ``floor(D·π)``, integers) per class with ``budget`` bound
    evaluations.  "Nothing added" with a complete search means the LP is optimal
    over *all* patterns, up to the LP tolerance.
    """
    values = [max(0, math.floor(p * DUAL_SCALE)) for p in pi]
    items = knapsack_items(values, rows.weight)
    fill_order = sorted(range(len(pi)), key=lambda i: (-pi[i], rows.weight[i], i))
    added = 0
    for c, cls in enumerate(classes if greedy else ()):
        threshold = (u[c] + PRICING_TOL) * DUAL_SCALE
        for models in _greedy_columns(items, _class_capacity(rows, cls), threshold,
                                      max(GREEDY_SEEDS, len(pi) // 4)):
            added += _add_pattern(master, c, _extend(models, rows, _class_capacity(rows, cls), fill_order))
    if added:
        return added
    for c, cls in enumerate(classes):
        found = max_value_pattern(items, _class_capacity(rows, cls), budget)
        if found.value > (u[c] + PRICING_TOL) * DUAL_SCALE:
            added += _add_pattern(master, c, _extend(found.models, rows, _class_capacity(rows, cls), fill_order))
    return added


def _greedy_columns(items: KnapsackItems, capacity: int, threshold: float, max_seeds: int) -> list[list[int]]:
    """For the ``max_seeds`` most valuable models: that model, then others by ratio while they fit.

    Returns the patterns (model indices) whose value exceeds ``threshold``.
    """
    num = len(items.value)
    min_weight_after = [math.inf] * (num + 1)  # min weight among items k.. (early stop of the fill)
    for k in range(num - 1, -1, -1):
        min_weight_after[k] = min(items.weight[k], min_weight_after[k + 1])
    seeds = sorted(range(num), key=lambda k: -items.value[k])[:max_seeds]
    found = []
    for seed in seeds:
        slack = capacity - items.weight[seed]
        if slack < 0:
            continue
        value, chosen = items.value[seed], [seed]
        for k in range(num):
            if slack < min_weight_after[k]:
                break
            if k != seed and items.weight[k] <= slack:
                chosen.append(k)
                slack -= items.weight[k]
                value += items.value[k]
        if value > threshold:
            found.append([items.model[k] for k in chosen])
    return found


def _extend(models: Sequence[int], rows: TargetRows, capacity: int, fill_order: Sequence[int]) -> list[int]:
    """Fill a pattern up with further models (in ``fill_order``) that still fit: a larger column covers more."""
    chosen = list(models)
    load = sum(rows.weight[i] for i in chosen)
    taken = set(chosen)
    for i in fill_order:
        if i not in taken and load + rows.weight[i] <= capacity:
            chosen.append(i)
            taken.add(i)
            load += rows.weight[i]
    return chosen


# -- the bound ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColgenBound:
    """A proven lower bound (``bound``: no placement has peak ``<= bound``, unless it is the mediant)."""

    bound: Fraction
    mediant: Fraction
    upper: Fraction
    checks: int
    seconds: float
    certified: bool  # True if ``bound`` comes from a verified certificate (peak > bound)


def colgen_lower_bound(instance: Instance, *, upper: Fraction | None = None, time_limit_s: float = 60.0,
                       rel_tol: float = 1e-3, check_share: float = 0.25) -> ColgenBound:
    """Bisect on ``T`` in ``[mediant, upper]`` with ``lp_check``; return the best proven bound.

    ``upper`` defaults to the peak of ``kvopt.heuristics.start``'s placement.  Every ``T`` with an exact
    certificate is a valid bound (the optimum is ``> T``); a ``T`` where the LP is
    feasible (or undecided) moves the upper end of the search, not the bound.
    One LP check gets at most ``check_share`` of the time left (the LP tails off
    near its threshold; an undecided check just ends the search higher).
    """
    t0 = time.perf_counter()
    mediant = mediant_bound(instance)
    if upper is None:
        start, _ = start_placement(instance)
        upper = exact_peak_kvpr(instance, start) if start is not None else None
        if upper is None:
            raise KvoptError(f"instance {instance.name!r}: no start placement with a finite peak; give `upper`")
    lo, hi, checks, certified = mediant, Fraction(upper), 0, False
    pool: set = set()  # columns carried between targets (re-checked at each)
    while hi > lo * (1 + Fraction(rel_tol)) and time.perf_counter() - t0 < time_limit_s:
        mid = simple_fraction_between(lo, hi)
        remaining = time_limit_s - (time.perf_counter() - t0)
        outcome = lp_check(instance, mid, time_limit_s=remaining * check_share, pool=pool)
        checks += 1
        if outcome.status == "infeasible":
            lo, certified = mid, True
        else:
            hi = mid
    return ColgenBound(lo, mediant, Fraction(upper), checks, time.perf_counter() - t0, certified)
