"""Exact 0/1 knapsack with conflicts by a dominance dynamic program (numpy), for pricing patterns.

``max Σ_{g∈P} v_g`` over sets ``P`` with ``Σ_{g∈P} w_g <= limit`` and no two
conflicting members, sought only above a ``floor``.  Branch and price asks this
of every LP round (pricing: is a pattern worth more than the class dual?) and of
every certificate (is every pattern worth at most what the Farkas inequality
allows?).  The duals of a bin-packing LP are nearly proportional to the weights,
which makes these *strongly correlated* knapsacks: depth-first branch and bound
in Python needs ~10^5 nodes for 64 items.  This solver is the Nemhauser–Ullmann
list algorithm instead, each step one batch of numpy operations:

* items in decreasing ``v/w``; a *state* is a chosen subset of the items seen so
  far, kept as (weight, value, signature), the signature being the chosen items
  that still conflict with an unseen item;
* step ``k`` extends every state by item ``k`` where it fits (and conflicts allow);
* a state is dropped when another with the same signature weighs no more and is
  worth at least as much (it can do everything the dropped one can), or when its
  Dantzig bound — value plus the fractional fill of the unseen items, conflicts
  ignored (an LP relaxation, so a valid bound) — cannot beat the best set found
  (or the floor).

Every decision is on Python/numpy integers except the Dantzig bound, a float whose
error (< 1e-3 for values below 2**52) is far below the 0.5 margin of the integer
comparison.  The answer is exact unless the state list outgrows ``max_states``;
then the largest bound of the open states is returned as a (still valid) upper
bound.  Deterministic: stable sorts, no randomness.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

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


def ratio_order(values: Sequence[int], weights: Sequence[int], limit: int) -> list[int]:
    """Items worth something that fit alone, by ``v/w`` descending (exact ratios; ties by index)."""
    return sorted((g for g in range(len(values)) if values[g] > 0 and weights[g] <= limit),
                  key=lambda g: (-Fraction(values[g], max(weights[g], 1)), g))


def best_pattern(values: Sequence[int], weights: Sequence[int], conflicts: Sequence[frozenset[int]],
                 limit: int, node_limit: int, floor: int = 0) -> Choice:
    """``max Σ value`` over conflict-free sets with ``Σ weight <= limit``, sought above ``floor``.

    The dominance dynamic program (``dp_knapsack``, at most ``node_limit`` states)
    where it applies, else ``branch_and_bound_knapsack`` (``node_limit`` bound
    evaluations).  Either way ``upper`` is a proven bound on ``max(floor, the maximum)``.
    """
    solved = dp_knapsack(values, weights, conflicts, limit, floor, max_states=max(1_000, node_limit))
    if solved is not None:
        return solved
    return branch_and_bound_knapsack(values, weights, conflicts, limit, node_limit, floor)


def dp_knapsack(values: Sequence[int], weights: Sequence[int], conflicts: Sequence[frozenset[int]],
                limit: int, floor: int = 0, max_states: int = 200_000) -> Choice | None:
    """The best set worth more than ``floor`` (module docstring), or ``None`` when the numbers are too
    large for int64 or more than 63 items carry conflicts (the caller then uses branch and bound)."""
    order = ratio_order(values, weights, limit)
    if not order:
        return Choice(floor, (), floor)
    val = [values[g] for g in order]
    wgt = [weights[g] for g in order]
    if sum(val) >= INT_LIMIT or limit >= INT_LIMIT or sum(wgt) >= INT_LIMIT:
        return None
    position = {g: k for k, g in enumerate(order)}
    neighbours = [sorted(position[h] for h in conflicts[g] if h in position) for g in order]
    conflicted = sorted(k for k in range(len(order)) if neighbours[k])
    if len(conflicted) > 63:
        return None
    bit = {k: np.uint64(1) << np.uint64(b) for b, k in enumerate(conflicted)}
    # Item k may not join a state holding an item it conflicts with: those items' bits.
    clash = [np.uint64(sum(int(bit[h]) for h in neighbours[k])) for k in range(len(order))]
    # A chosen item's bit is dropped from the signature once its last conflicting neighbour is seen.
    last_neighbour = {k: max(neighbours[k]) for k in conflicted}

    n = len(order)
    prefix_w = np.concatenate(([0], np.cumsum(np.array(wgt, dtype=np.int64))))
    prefix_v = np.concatenate(([0], np.cumsum(np.array(val, dtype=np.int64))))
    val_arr = np.array(val + [0], dtype=np.float64)
    wgt_arr = np.array(wgt + [1], dtype=np.float64)

    def bound(start: int, weight: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Value plus the Dantzig fill of items ``start..`` into the room left (float)."""
        room = limit - weight
        stop = np.searchsorted(prefix_w, prefix_w[start] + room, side="right") - 1
        whole = (prefix_v[stop] - prefix_v[start]).astype(np.float64)
        rest = (room - (prefix_w[stop] - prefix_w[start])).astype(np.float64)
        return value + whole + val_arr[stop] * rest / wgt_arr[stop]

    weight = np.zeros(1, dtype=np.int64)
    value = np.zeros(1, dtype=np.int64)
    sign = np.zeros(1, dtype=np.uint64)
    history: list[tuple[np.ndarray, np.ndarray]] = []  # per step: (parent index, took item) of kept states
    best_value, best_state = floor, None  # best_state: (step, parent index, took)
    open_bound = -math.inf
    for k in range(n):
        fits = weight + wgt[k] <= limit
        if k in bit:
            fits &= (sign & clash[k]) == 0
        grown = np.flatnonzero(fits)
        weight = np.concatenate((weight, weight[grown] + wgt[k]))
        value = np.concatenate((value, value[grown] + val[k]))
        new_sign = sign[grown] | bit[k] if k in bit else sign[grown]
        sign = np.concatenate((sign, new_sign))
        parent = np.concatenate((np.arange(len(fits)), grown))
        took = np.concatenate((np.zeros(len(fits), dtype=bool), np.ones(len(grown), dtype=bool)))
        top = int(np.argmax(value))
        if int(value[top]) > best_value:
            best_value, best_state = int(value[top]), (k, int(parent[top]), bool(took[top]))
        for h in conflicted:  # signatures forget items no unseen item conflicts with
            if last_neighbour[h] == k:
                sign &= ~bit[h]
        keep = bound(k + 1, weight, value) >= best_value + 0.5
        weight, value, sign, parent, took = weight[keep], value[keep], sign[keep], parent[keep], took[keep]
        kept = _undominated(weight, value, sign)
        weight, value, sign, parent, took = weight[kept], value[kept], sign[kept], parent[kept], took[kept]
        history.append((parent, took))
        if not len(weight):
            break  # no open state can beat the best set: the search is complete
        if len(weight) > max_states:
            open_bound = float(np.max(bound(k + 1, weight, value)))
            break
    chosen = _trace(history, best_state)
    groups = tuple(order[k] for k in chosen)
    upper = best_value if open_bound == -math.inf else max(best_value, math.ceil(open_bound * (1 + 1e-9) + 1))
    return Choice(best_value, groups, upper)


def _undominated(weight: np.ndarray, value: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Indices of the states no other state of the same signature dominates (lighter or equal, worth at
    least as much), ordered by (signature, weight): the order the next step relies on."""
    if len(weight) <= 1:
        return np.arange(len(weight))
    if not sign.any():
        # One signature: the states arrive as two weight-sorted runs (kept, extended), which a stable
        # sort merges in linear time.  Of equal weights the earlier is kept unless the later is worth
        # more (then both stay: harmless, only the dominated one is kept too).
        ranked = np.argsort(weight, kind="stable")
        v = value[ranked]
        before = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(v)[:-1]))
        return ranked[v > before]
    ranked = np.lexsort((-value, weight, sign))  # by signature, then weight up, then value down
    v, s = value[ranked], sign[ranked]
    group = np.cumsum(np.concatenate(([True], s[1:] != s[:-1]))) - 1
    # One running maximum across the blocks: a later block's keys exceed every earlier block's.
    span = int(v.max()) + 1
    if span * (int(group[-1]) + 1) < 2**62:
        key = group.astype(np.int64) * span + v
    else:  # values too large to offset: rank them first
        _, value_rank = np.unique(v, return_inverse=True)
        key = group.astype(np.int64) * (len(v) + 1) + value_rank.reshape(-1)
    before = np.concatenate(([-1], np.maximum.accumulate(key)[:-1]))
    return ranked[key > before]


def _trace(history: list[tuple[np.ndarray, np.ndarray]], best_state: tuple[int, int, bool] | None) -> list[int]:
    """Items (positions in ratio order) of the best state, walked back through the kept parents."""
    if best_state is None:
        return []
    step, index, took = best_state
    chosen = [step] if took else []
    for k in range(step - 1, -1, -1):
        parent, took_k = history[k]
        if took_k[index]:
            chosen.append(k)
        index = int(parent[index])
    return sorted(chosen)


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
