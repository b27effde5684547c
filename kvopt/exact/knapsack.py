"""Exact 0/1 knapsack with conflicts by a dominance dynamic program (compiled), for pricing patterns.

``max Σ_{g∈P} v_g`` over sets ``P`` with ``Σ_{g∈P} w_g <= limit`` and no two
conflicting members, sought only above a ``floor``.  Branch and price asks this
of every LP round (pricing: is a pattern worth more than the class dual?) and of
every certificate (is every pattern worth at most what the Farkas inequality
allows?).  The duals of a bin-packing LP are nearly proportional to the weights,
which makes these *strongly correlated* knapsacks: depth-first branch and bound
in Python needs ~10^5 nodes for 64 items.  This solver is the Nemhauser–Ullmann
list algorithm instead:

* items in decreasing ``v/w``; a *state* is a chosen subset of the items seen so
  far, kept as (weight, value, signature), the signature being the chosen items
  that still conflict with an unseen item;
* step ``k`` extends every state by item ``k`` where it fits (and conflicts allow);
* a state is dropped when another with the same signature weighs no more and is
  worth at least as much (it can do everything the dropped one can), or when its
  Dantzig bound — value plus the fractional fill of the unseen items, conflicts
  ignored (an LP relaxation, so a valid bound) — cannot beat the best set found
  (or the floor).

The state loop is compiled with numba (``_dp_states``): it runs ~10^4 states
through ~70 steps per call, thousands of calls per proof, and a numpy version
spent most of its time in per-step array overhead (measured: the compiled loop
halves the time to prove the 16-GPU optima medium_05 and medium_07).  Every
decision is on int64 integers except the Dantzig bound, a float whose error
(< 1e-3 for values below 2**52) is far below the 0.5 margin of the integer
comparison.  The answer is exact unless the state list outgrows ``max_states``;
then the search goes on as a beam and the largest bound it dropped makes a (still
valid) upper bound.  Deterministic: stable sorts, no randomness.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
from numba import njit

INT_LIMIT = 2**52  # sums stay exact in int64 and the float bound stays within 1e-3 below this


@dataclass(frozen=True)
class Choice:
    """Best knapsack value found above ``floor`` (``floor`` and no groups if none) and an upper bound.

    ``upper`` is a proven bound on ``max(floor, the true maximum)``: a complete search
    that finds nothing above ``floor`` returns ``upper == floor``.
    """

    value: int
    groups: tuple[int, ...]
    upper: int
    others: tuple[tuple[int, ...], ...] = ()  # further sets above ``floor`` met on the way (best first)


def ratio_order(values: Sequence[int], weights: Sequence[int], limit: int) -> list[int]:
    """Items worth something that fit alone, by ``v/w`` descending (exact ratios; ties by index)."""
    return sorted((g for g in range(len(values)) if values[g] > 0 and weights[g] <= limit),
                  key=lambda g: (-Fraction(values[g], max(weights[g], 1)), g))


def best_pattern(values: Sequence[int], weights: Sequence[int], conflicts: Sequence[frozenset[int]],
                 limit: int, node_limit: int, floor: int = 0, keep_sets: int = 1) -> Choice:
    """``max Σ value`` over conflict-free sets with ``Σ weight <= limit``, sought above ``floor``.

    The dominance dynamic program (``dp_knapsack``, at most ``node_limit`` states)
    where it applies, else ``branch_and_bound_knapsack`` (``node_limit`` bound
    evaluations; it returns no ``others``).  Either way ``upper`` is a proven bound on
    ``max(floor, the maximum)``.
    """
    solved = dp_knapsack(values, weights, conflicts, limit, floor, max(1_000, node_limit), keep_sets)
    if solved is not None:
        return solved
    return branch_and_bound_knapsack(values, weights, conflicts, limit, node_limit, floor)


def dp_knapsack(values: Sequence[int], weights: Sequence[int], conflicts: Sequence[frozenset[int]],
                limit: int, floor: int = 0, max_states: int = 200_000, keep_sets: int = 1) -> Choice | None:
    """The best set worth more than ``floor`` (module docstring), or ``None`` when the numbers are too
    large for int64 or more than 63 items carry conflicts (the caller then uses branch and bound).

    With more than ``max_states`` open states the search goes on as a *beam*: the
    ``max_states`` states of the largest Dantzig bound are kept, and the largest bound
    dropped makes ``upper`` (so a small ``max_states`` is a fast heuristic that still
    says how far it may be from the maximum).  Up to ``keep_sets − 1`` further sets worth
    more than ``floor`` met on the way come back in ``others`` (pricing adds them as columns too).
    """
    order = ratio_order(values, weights, limit)
    if not order:
        return Choice(floor, (), floor)
    val = [values[g] for g in order]
    wgt = [weights[g] for g in order]
    if sum(val) >= INT_LIMIT or limit >= INT_LIMIT or sum(wgt) >= INT_LIMIT:
        return None
    position = {g: k for k, g in enumerate(order)}
    neighbours = [sorted(position[h] for h in conflicts[g] if h in position) for g in order]
    conflicted = [k for k in range(len(order)) if neighbours[k]]
    if len(conflicted) > 63:
        return None
    bit_of = {k: 1 << b for b, k in enumerate(conflicted)}
    n = len(order)
    bit = np.zeros(n, dtype=np.uint64)
    clash = np.zeros(n, dtype=np.uint64)  # item k may not join a state holding any of these bits
    forget = np.zeros(n, dtype=np.uint64)  # bits dropped from signatures after step k (no unseen neighbour)
    for k in conflicted:
        bit[k] = bit_of[k]
        clash[k] = sum(bit_of[h] for h in neighbours[k])
        forget[max(neighbours[k])] |= np.uint64(bit_of[k])
    found, chosen, dropped = _dp_states(np.array(val, dtype=np.int64), np.array(wgt, dtype=np.int64), bit, clash,
                                        forget, limit, floor, max(1, max_states), max(1, keep_sets))
    sets = [tuple(order[k] for k in np.flatnonzero(row)) for row, v in zip(chosen, found) if v > floor]
    best = int(found[0])
    upper = best if dropped == -math.inf else max(best, math.ceil(dropped * (1 + 1e-9) + 1))
    return Choice(best, sets[0] if sets else (), upper, tuple(sets[1:]))


@njit(cache=True)
def _dantzig(start, weight, value, limit, prefix_w, prefix_v, val_f, wgt_f):  # pragma: no cover (compiled)
    """``value`` plus the fractional fill of items ``start..`` into ``limit − weight`` (float)."""
    room = limit - weight
    target = prefix_w[start] + room
    lo, hi = start, len(prefix_w) - 1  # the last ``stop`` with prefix_w[stop] <= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if prefix_w[mid] <= target:
            lo = mid
        else:
            hi = mid - 1
    whole = float(prefix_v[lo] - prefix_v[start])
    rest = float(room - (prefix_w[lo] - prefix_w[start]))
    return value + whole + val_f[lo] * rest / wgt_f[lo]


@njit(cache=True)
def _precedes(sig_a, weight_a, value_a, sig_b, weight_b, value_b):  # pragma: no cover (compiled)
    """State order: signature, then weight up, then value down (the dominance sweep relies on it)."""
    if sig_a != sig_b:
        return sig_a < sig_b
    if weight_a != weight_b:
        return weight_a < weight_b
    return value_a > value_b


@njit(cache=True)
def _merge_runs(index, sig, weight, value, out, lo, mid, hi):  # pragma: no cover (compiled)
    """Stable merge of the sorted runs ``index[lo:mid]`` and ``index[mid:hi]`` into ``out[lo:hi]``."""
    a, b, o = lo, mid, lo
    while a < mid and b < hi:
        ia, ib = index[a], index[b]
        if _precedes(sig[ib], weight[ib], value[ib], sig[ia], weight[ia], value[ia]):
            out[o] = ib
            b += 1
        else:
            out[o] = ia
            a += 1
        o += 1
    while a < mid:
        out[o] = index[a]
        a += 1
        o += 1
    while b < hi:
        out[o] = index[b]
        b += 1
        o += 1


@njit(cache=True)
def _sorted_states(index, sig, weight, value):  # pragma: no cover (compiled)
    """``index`` ordered by ``_precedes`` (bottom-up merge sort, stable); numba's own sorts take seconds
    to compile."""
    m = len(index)
    current = index.copy()
    spare = np.empty(m, dtype=np.int64)
    width = 1
    while width < m:
        for lo in range(0, m, 2 * width):
            _merge_runs(current, sig, weight, value, spare, lo, min(lo + width, m), min(lo + 2 * width, m))
        current, spare = spare, current
        width *= 2
    return current


@njit(cache=True)
def _ranked_descending(keys):  # pragma: no cover (compiled)
    """Indices by ``keys`` descending, ties by index: the state order with one signature and one weight."""
    m = len(keys)
    return _sorted_states(np.arange(m), np.zeros(m, dtype=np.uint64), np.zeros(m, dtype=np.int64), keys)


@njit(cache=True)
def _dp_states(val, wgt, bit, clash, forget, limit, floor, max_states, keep_sets):  # pragma: no cover (compiled)
    """The list algorithm of the module docstring, compiled: (best value, chosen items, largest dropped bound).

    States live in arrays ordered by (signature, weight); each step appends the
    extensions by item ``k`` — adding a bit no state holds keeps that order, so the
    two runs merge in linear time (a full sort only where signatures forget bits) —
    drops states whose bound cannot beat the best, and sweeps each signature for
    dominance.  ``hist_*`` keep (parent, took) per kept state for the trace back.
    """
    n = len(val)
    prefix_w = np.zeros(n + 1, dtype=np.int64)
    prefix_v = np.zeros(n + 1, dtype=np.int64)
    val_f = np.zeros(n + 1)
    wgt_f = np.ones(n + 1)
    for k in range(n):
        prefix_w[k + 1] = prefix_w[k] + wgt[k]
        prefix_v[k + 1] = prefix_v[k] + val[k]
        val_f[k] = val[k]
        wgt_f[k] = wgt[k]
    weight = np.zeros(1, dtype=np.int64)
    value = np.zeros(1, dtype=np.int64)
    sig = np.zeros(1, dtype=np.uint64)
    count = 1
    hist_parent = np.empty(1024, dtype=np.int64)
    hist_took = np.empty(1024, dtype=np.bool_)
    hist_start = np.zeros(n + 1, dtype=np.int64)
    hist_len = 0
    best_value = floor
    # The ``keep_sets`` most valuable sets above ``floor`` seen (slot 0 is not special): value, step, parent.
    top_value = np.full(keep_sets, floor, dtype=np.int64)
    top_step = np.full(keep_sets, -1, dtype=np.int64)
    top_parent = np.full(keep_sets, -1, dtype=np.int64)
    weakest = 0
    dropped = -np.inf
    for k in range(n):
        size = 2 * count
        c_weight = np.empty(size, dtype=np.int64)
        c_value = np.empty(size, dtype=np.int64)
        c_sig = np.empty(size, dtype=np.uint64)
        c_parent = np.empty(size, dtype=np.int64)
        c_took = np.empty(size, dtype=np.bool_)
        for j in range(count):
            c_weight[j], c_value[j], c_sig[j], c_parent[j], c_took[j] = weight[j], value[j], sig[j], j, False
        total = count
        for j in range(count):
            if weight[j] + wgt[k] <= limit and (sig[j] & clash[k]) == 0:
                c_weight[total] = weight[j] + wgt[k]
                c_value[total] = value[j] + val[k]
                c_sig[total] = sig[j] | bit[k]
                c_parent[total], c_took[total] = j, True
                if c_value[total] > top_value[weakest]:
                    top_value[weakest], top_step[weakest], top_parent[weakest] = c_value[total], k, j
                    weakest = np.argmin(top_value)
                    best_value = max(best_value, c_value[total])
                total += 1
        if forget[k] != 0:
            mask = ~forget[k]
            for j in range(total):
                c_sig[j] = c_sig[j] & mask
        # Integer values: a float bound below best + 0.5 cannot reach best + 1.
        keep = np.empty(total, dtype=np.int64)
        kept = 0
        split = 0
        for j in range(total):
            if _dantzig(k + 1, c_weight[j], float(c_value[j]), limit, prefix_w, prefix_v, val_f, wgt_f) \
                    >= best_value + 0.5:
                keep[kept] = j
                kept += 1
                if j < count:
                    split = kept
        keep = keep[:kept]
        if forget[k] != 0:
            order = _sorted_states(keep, c_sig, c_weight, c_value)
        else:
            order = np.empty(kept, dtype=np.int64)
            _merge_runs(keep, c_sig, c_weight, c_value, order, 0, split, kept)
        if hist_len + kept > len(hist_parent):
            grown = max(2 * len(hist_parent), hist_len + kept)
            hist_parent = np.concatenate((hist_parent[:hist_len], np.empty(grown - hist_len, dtype=np.int64)))
            hist_took = np.concatenate((hist_took[:hist_len], np.empty(grown - hist_len, dtype=np.bool_)))
        hist_start[k] = hist_len
        weight = np.empty(kept, dtype=np.int64)
        value = np.empty(kept, dtype=np.int64)
        sig = np.empty(kept, dtype=np.uint64)
        count = 0
        for t in range(kept):
            j = order[t]
            # Dominated: an earlier state of the same signature weighs no more and is worth as much.
            if count > 0 and c_sig[j] == sig[count - 1] and c_value[j] <= value[count - 1]:
                continue
            weight[count], value[count], sig[count] = c_weight[j], c_value[j], c_sig[j]
            hist_parent[hist_len + count], hist_took[hist_len + count] = c_parent[j], c_took[j]
            count += 1
        if count > max_states:
            # Beam: keep the states of the largest bound (in their order), remember the largest dropped.
            bounds = np.empty(count)
            for j in range(count):
                bounds[j] = _dantzig(k + 1, weight[j], float(value[j]), limit, prefix_w, prefix_v, val_f, wgt_f)
            ranked = _ranked_descending(bounds)
            dropped = max(dropped, bounds[ranked[max_states]])
            chosen = np.zeros(count, dtype=np.bool_)
            chosen[ranked[:max_states]] = True
            t = 0
            for j in range(count):  # the kept states in their (signature, weight) order
                if chosen[j]:
                    weight[t], value[t], sig[t] = weight[j], value[j], sig[j]
                    hist_parent[hist_len + t] = hist_parent[hist_len + j]
                    hist_took[hist_len + t] = hist_took[hist_len + j]
                    t += 1
            count = max_states
        weight, value, sig = weight[:count], value[:count], sig[:count]
        hist_len += count
        hist_start[k + 1] = hist_len
        if count == 0:
            break  # no open state can beat the best set: the search is complete
    ranked = _ranked_descending(top_value)
    chosen_items = np.zeros((keep_sets, n), dtype=np.bool_)
    for r in range(keep_sets):
        slot = ranked[r]
        if top_step[slot] < 0:
            continue
        chosen_items[r, top_step[slot]] = True
        index = top_parent[slot]
        for k in range(top_step[slot] - 1, -1, -1):
            position = hist_start[k] + index
            if hist_took[position]:
                chosen_items[r, k] = True
            index = hist_parent[position]
    return top_value[ranked], chosen_items, dropped


def branch_and_bound_knapsack(values: Sequence[int], weights: Sequence[int], conflicts: Sequence[frozenset[int]],
                              limit: int, node_limit: int, floor: int = 0) -> Choice:
    """``max Σ value`` over conflict-free group sets with ``Σ weight <= limit`` (branch and bound).

    Groups in value/weight order; a node's bound is the Dantzig (fractional) fill of
    the remaining groups *ignoring conflicts* — an LP relaxation, so a valid bound
    (computed in O(log n) from prefix sums).  Only sets worth more than ``floor`` are
    sought, which prunes hard when the floor is high (pricing: the class dual;
    certificate: what the inequality allows).  Past ``node_limit`` bound evaluations the largest
    open bound (rounded up, with a margin) is returned as ``upper``: still valid.

    Slow on strongly correlated items (see the module docstring); the fallback of
    ``best_pattern`` where the dynamic program does not apply.
    """
    order = ratio_order(values, weights, limit)
    val = [values[g] for g in order]
    wgt = [weights[g] for g in order]
    prefix_w, prefix_v = [0], [0]
    for v, w in zip(val, wgt):
        prefix_w.append(prefix_w[-1] + w)
        prefix_v.append(prefix_v[-1] + v)
    position = {g: k for k, g in enumerate(order)}
    blocked_by = [frozenset(position[h] for h in conflicts[g] if h in position) for g in order]
    best: list = [floor, ()]
    nodes = [node_limit]
    open_bound = [0.0]

    def dantzig(start: int, slack: int) -> float:
        # Fractional fill of items start.. in ratio order (conflicts ignored: a relaxation), by bisection.
        stop = bisect_right(prefix_w, prefix_w[start] + slack) - 1
        bound = float(prefix_v[stop] - prefix_v[start])
        if stop < len(val):
            bound += val[stop] * ((slack - (prefix_w[stop] - prefix_w[start])) / wgt[stop])
        return bound

    def visit(start: int, slack: int, value: int, chosen: tuple[int, ...], banned: frozenset[int]) -> None:
        if value > best[0]:
            best[0], best[1] = value, chosen
        for k in range(start, len(val)):
            nodes[0] -= 1
            bound = value + dantzig(k, slack)
            if nodes[0] < 0:
                open_bound[0] = max(open_bound[0], bound)
                return
            if bound < best[0] + 0.5:  # integer values: float error is far below 0.5
                return
            if k in banned or wgt[k] > slack:
                continue
            visit(k + 1, slack - wgt[k], value + val[k], chosen + (k,), banned | blocked_by[k])

    visit(0, limit, 0, (), frozenset())
    upper = best[0] if nodes[0] >= 0 else max(best[0], math.ceil(open_bound[0] * (1 + 1e-9) + 1))
    return Choice(best[0], tuple(order[k] for k in best[1]), upper)
