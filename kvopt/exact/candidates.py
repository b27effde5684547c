"""An exact minimiser by binary search over candidate peak values (a cross-check of ``solve_exact``).

The optimum is the KVPR of the peak GPU's load, and that load is a pattern of
the set-partitioning model (``kvopt.exact.setpart``) at any target above it.  So
listing the KVPR of every pattern feasible at a known peak and binary-searching
the smallest feasible one with ``SetPartitionBackend.check`` finds the optimum
with a different argument from the bisection driver's — which is why tests and
benchmarks use it to check the driver.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from fractions import Fraction
from typing import Sequence

from kvopt.bounds import mediant_bound
from kvopt.evaluate import exact_peak_kvpr
from kvopt.exact.backend import FeasibilityQuery
from kvopt.exact.setpart import DEFAULT_PATTERN_CAP, PatternCapExceeded, SetPartitionBackend, class_patterns
from kvopt.heuristics.start import start_placement
from kvopt.model import Instance, KvoptError, Placement, Result, relative_gap
from kvopt.scaling import IntegerData, capacity_classes, integer_data, target_rows


def pattern_kvpr(data: IntegerData, models: Sequence[int], cap_int: int) -> Fraction | None:
    """Exact KVPR of ``models`` on a GPU of capacity ``cap_int``: ``M·Σnint / (L·(cint − Σsint))``.

    ``None`` when the load does not fit in memory or has demand and fills it (+inf).
    """
    demand = sum(data.demand_int[i] for i in models)
    free = cap_int - sum(data.size_int[i] for i in models)
    if free < 0:
        return None
    if demand == 0:
        return Fraction(0)
    if free == 0:
        return None
    return Fraction(data.mem_scale * demand, data.demand_scale * free)


def candidate_peaks(instance: Instance, upper: Fraction, cap: int = DEFAULT_PATTERN_CAP) -> list[Fraction]:
    """Sorted distinct KVPRs ``<= upper`` of every pattern feasible at ``upper``.

    The optimum is one of them: if ``T* <= upper``, the peak GPU of an optimal
    placement carries a pattern feasible at ``upper`` whose KVPR is ``T*``.
    Raises ``PatternCapExceeded``.
    """
    data = integer_data(instance)
    rows = target_rows(data, upper, False)
    values: set[Fraction] = set()
    for cp in class_patterns(rows, capacity_classes(data), maximal=False, cap=cap):
        for pat in cp.patterns:
            value = pattern_kvpr(data, pat, cp.cls.cap_int)
            if value is not None and value <= upper:
                values.add(value)
    return sorted(values)


def minimize_peak_setpart(instance: Instance, *, start: Sequence[int] | None = None,
                          backend: SetPartitionBackend | None = None, time_limit_s: float = 60.0,
                          pattern_cap: int = DEFAULT_PATTERN_CAP) -> Result:
    """Exact minimum peak by binary search over the candidate peaks (each step one ``check``).

    Start from ``start`` (or ``kvopt.heuristics.start``'s placement), list every candidate value
    ``<= `` its peak (``candidate_peaks``), then binary-search the smallest
    feasible candidate.  Invariant: ``cand[hi]`` has a placement; every candidate
    below ``cand[lo]`` is infeasible.  A feasible check at ``cand[mid]`` returns a
    placement whose peak is itself a candidate ``<= cand[mid]``.  At ``lo == hi``
    the next smaller candidate is infeasible and no peak lies strictly between
    two consecutive candidates, so ``cand[hi]`` is optimal.
    """
    t0 = time.perf_counter()
    backend = backend or SetPartitionBackend(pattern_cap=pattern_cap)
    gpu_of, _ = start_placement(instance, start)
    if gpu_of is None:
        raise KvoptError(f"instance {instance.name!r}: no start placement found")
    best = exact_peak_kvpr(instance, gpu_of)
    if best == math.inf:
        raise KvoptError(f"instance {instance.name!r}: the start placement has infinite peak")
    lower = mediant_bound(instance)
    details: dict = {"checks": 0}
    if best == 0:
        return _optimal_result(instance, gpu_of, best, t0, details)
    try:
        cands = candidate_peaks(instance, best, pattern_cap)
    except PatternCapExceeded:
        return _feasible_result(instance, gpu_of, best, lower, t0, {"reason": "pattern cap"})
    details["candidates"] = len(cands)
    lo, hi = bisect_left(cands, lower), cands.index(best)
    deadline = t0 + time_limit_s
    while lo < hi:
        mid = (lo + hi) // 2
        answer = backend.check(FeasibilityQuery(instance, cands[mid], hint=gpu_of,
                                                time_limit_s=max(0.01, deadline - time.perf_counter())))
        details["checks"] += 1
        if answer.status == "feasible":
            gpu_of = answer.gpu_of
            best = exact_peak_kvpr(instance, gpu_of)
            hi = cands.index(best)
        elif answer.status == "infeasible":
            lo = mid + 1
        else:
            bound = cands[lo] if lo > 0 else lower
            return _feasible_result(instance, gpu_of, best, bound, t0, {**details, "reason": "unknown check"})
    return _optimal_result(instance, gpu_of, best, t0, details)


def _optimal_result(instance: Instance, gpu_of: Sequence[int], peak: Fraction, t0: float, details: dict) -> Result:
    return Result(instance.name, "setpart", "optimal", Placement(tuple(gpu_of)), float(peak), peak,
                  float(peak), peak, 0.0, time.perf_counter() - t0, details)


def _feasible_result(instance: Instance, gpu_of: Sequence[int], peak: Fraction, lower: Fraction, t0: float,
                     details: dict) -> Result:
    return Result(instance.name, "setpart", "feasible", Placement(tuple(gpu_of)), float(peak), peak,
                  float(lower), lower, relative_gap(peak, lower), time.perf_counter() - t0, details)


