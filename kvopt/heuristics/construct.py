"""Construction heuristics: parametric packing, regret insertion, memory-balanced packing.

The key fact behind parametric packing: for a target ``T > 0`` and a GPU holding a
set of models with ``S_g <= C_g``::

    KVPR_g <= T   <=>   N_g <= T (C_g - S_g)   <=>   sum_i (n_i + T s_i) <= T C_g

so "is there a placement with peak <= T" is bin packing with item weights
``w_i(T) = n_i + T s_i`` and bin capacities ``T C_g`` (the memory limit is implied
because ``n_i >= 0``).  Bisection on ``T`` with a few packing rules finds a small
``T`` at which some rule packs every item; that placement has peak ``<= T``.

Each constructor returns a ``Placement`` or ``None`` when its rule could not fit
every model into memory (the pipeline then relies on the other candidates).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kvopt.bounds import simple_lower_bound as exact_simple_lower_bound
from kvopt.evaluate import peak_kvpr
from kvopt.heuristics.search import PackingSearch
from kvopt.heuristics.state import MEM_REL_TOL, LoadState, fits_memory
from kvopt.model import Instance, KvoptError, Placement

INF = math.inf

ORDERS = ("weight", "size", "demand")
# Past ~2^20 times the lower bound the weights n_i + T s_i are proportional to the
# sizes (a pure memory packing): doubling further changes nothing.
MAX_DOUBLINGS = 20
RULES = ("worst_fit", "best_fit")


def simple_lower_bound(instance: Instance) -> float:
    """``kvopt.bounds.simple_lower_bound`` as a float: where the parametric packing starts its search."""
    return float(exact_simple_lower_bound(instance))


# -- packing at a fixed target ---------------------------------------------------

def item_order(instance: Instance, order: str, target: float) -> list[int]:
    """Model indices in packing order (all descending, ties by index).

    ``weight``: by ``n_i + T s_i``; ``size``: by ``s_i`` then ``n_i``; ``demand``: by ``n_i`` then ``s_i``.
    """
    sizes, demands = instance.sizes, instance.demands
    index = np.arange(instance.num_models)
    if order == "weight":
        keys: tuple[np.ndarray, ...] = (index, -(demands + target * sizes))
    elif order == "size":
        keys = (index, -demands, -sizes)
    elif order == "demand":
        keys = (index, -sizes, -demands)
    else:
        raise KvoptError(f"order {order!r}: unknown item order; known: {', '.join(ORDERS)}")
    # lexsort sorts by the last key first.
    return np.lexsort(keys).tolist()


def _worst_fit(sizes: list[float], demands: list[float], capacities: list[float], target: float,
               order: Sequence[int]) -> list[int] | None:
    """Each item to the GPU with the most weight slack ``T C_g - sum w``; ``None`` if one does not fit."""
    heap = [(-target * cap, g) for g, cap in enumerate(capacities)]  # (-slack, gpu)
    heapq.heapify(heap)
    used_mem = [0.0] * len(capacities)
    gpu_of = [0] * len(sizes)
    for model in order:
        size = sizes[model]
        weight = demands[model] + target * size
        neg_slack, gpu = heap[0]
        if weight > -neg_slack or not fits_memory(used_mem[gpu], size, capacities[gpu]):
            return None
        heapq.heapreplace(heap, (neg_slack + weight, gpu))
        used_mem[gpu] += size
        gpu_of[model] = gpu
    return gpu_of


def _best_fit(sizes: list[float], demands: list[float], capacities: list[float], target: float,
              order: Sequence[int]) -> list[int] | None:
    """Each item to the GPU with the least weight slack that still holds it; ``None`` if none does."""
    slots = sorted((target * cap, g) for g, cap in enumerate(capacities))  # (slack, gpu), ascending
    used_mem = [0.0] * len(capacities)
    gpu_of = [0] * len(sizes)
    for model in order:
        size = sizes[model]
        weight = demands[model] + target * size
        pos = bisect_left(slots, (weight, -1))
        if pos == len(slots):
            return None
        slack, gpu = slots.pop(pos)
        if not fits_memory(used_mem[gpu], size, capacities[gpu]):
            return None
        insort(slots, (slack - weight, gpu))
        used_mem[gpu] += size
        gpu_of[model] = gpu
    return gpu_of


_PACKERS = {"worst_fit": _worst_fit, "best_fit": _best_fit}


def pack_at_target(instance: Instance, target: float, order: str = "weight",
                   rule: str = "worst_fit") -> Placement | None:
    """Pack items ``n_i + T s_i`` into capacities ``T C_g`` (``T > 0``) with one order and rule.

    On success every GPU has ``N_g <= T (C_g - S_g)``, i.e. ``KVPR_g <= T`` (float rounding aside).
    """
    if not target > 0:
        raise KvoptError(f"target: must be > 0, got {target!r}")
    if rule not in _PACKERS:
        raise KvoptError(f"rule {rule!r}: unknown packing rule; known: {', '.join(RULES)}")
    gpu_of = _PACKERS[rule](instance.sizes.tolist(), instance.demands.tolist(), instance.capacities.tolist(),
                            target, item_order(instance, order, target))
    return None if gpu_of is None else Placement(tuple(gpu_of))


# -- bisection on the target -------------------------------------------------------

@dataclass(frozen=True)
class PackingOutcome:
    """Best packing found: its placement, its real peak, and the bracket ``[lower, peak]`` reached."""

    placement: Placement
    peak: float
    lower: float
    rounds: int


class _TargetPacker:
    """Tries every (order, rule) at a target and keeps the lowest real peak."""

    def __init__(self, instance: Instance, orders: Sequence[str], rules: Sequence[str]) -> None:
        self.instance = instance
        self.sizes = instance.sizes.tolist()
        self.demands = instance.demands.tolist()
        self.capacities = instance.capacities.tolist()
        self.orders = tuple(orders)
        self.rules = tuple(rules)
        # Orders that do not depend on T are sorted once.
        self.fixed_orders = {o: item_order(instance, o, 0.0) for o in self.orders if o != "weight"}

    def best_at(self, target: float) -> tuple[list[int], float] | None:
        best: tuple[list[int], float] | None = None
        for order_name in self.orders:
            order = self.fixed_orders.get(order_name)
            if order is None:
                order = item_order(self.instance, order_name, target)
            for rule in self.rules:
                gpu_of = _PACKERS[rule](self.sizes, self.demands, self.capacities, target, order)
                if gpu_of is None:
                    continue
                peak = peak_kvpr(self.instance, gpu_of)
                if best is None or peak < best[1]:
                    best = (gpu_of, peak)
        return best


def parametric_packing(instance: Instance, *, max_rounds: int = 40, rel_tol: float = 1e-6,
                       orders: Sequence[str] = ORDERS, rules: Sequence[str] = RULES,
                       start_target: float | None = None) -> PackingOutcome | None:
    """Bisection on ``T`` (geometric midpoints) between the simple lower bound and the best packing.

    A target where no rule packs raises the lower end (heuristically: the packing
    rules are not exact); a success lowers the upper end to the packing's real peak.
    Stops after ``max_rounds`` packing targets or when ``peak <= lower (1 + rel_tol)``.
    ``start_target`` (e.g. a known placement's peak) is where the search for a
    first packing starts; without it, at twice the lower bound.
    Returns ``None`` when no target up to ``2^MAX_DOUBLINGS`` times the start packs.
    """
    packer = _TargetPacker(instance, orders, rules)
    lower = simple_lower_bound(instance)
    if lower == 0.0:
        # No demand: any memory packing has peak 0; T only scales the capacities.
        found = packer.best_at(1.0)
        return None if found is None else PackingOutcome(Placement(tuple(found[0])), found[1], 0.0, 1)
    if not math.isfinite(lower):
        return None  # every placement has an infinite peak; memory packing handles it
    target = start_target if start_target is not None and math.isfinite(start_target) and start_target > lower \
        else 2.0 * lower
    rounds = 0
    found = None
    for _ in range(MAX_DOUBLINGS):
        rounds += 1
        found = packer.best_at(target)
        if found is not None:
            break
        lower = max(lower, target)
        target *= 2.0
    if found is None:
        return None
    best_gpu_of, best_peak = found
    while rounds < max_rounds and best_peak > lower * (1.0 + rel_tol):
        rounds += 1
        target = math.sqrt(lower * best_peak)
        found = packer.best_at(target)
        if found is not None and found[1] < best_peak:
            best_gpu_of, best_peak = found
        else:
            lower = target
    return PackingOutcome(Placement(tuple(best_gpu_of)), best_peak, lower, rounds)


# -- regret insertion ----------------------------------------------------------------

def _best_two(state: LoadState, model: int, candidates: Sequence[int]) -> tuple[float, int, float]:
    """Lowest and second-lowest KVPR after adding ``model`` to a candidate GPU: ``(best, gpu, second)``."""
    size, demand = state.sizes[model], state.demands[model]
    best, best_gpu, second = INF, -1, INF
    for gpu in candidates:
        if not state.fits(model, gpu):
            continue
        value = state.kvpr_after(gpu, demand, size)
        if best_gpu < 0 or value < best:
            best, best_gpu, second = value, gpu, best
        elif value < second:
            second = value
    return best, best_gpu, second


def regret_insertion(instance: Instance, *, window: int = 8, num_targets: int = 16) -> Placement | None:
    """Insert models by largest regret: among the next ``window`` models (by ``n_i + T0 s_i``
    descending, ``T0`` the lower bound), place the one whose best GPU beats its second-best
    by most (a model with a single feasible GPU first), on its best GPU (lowest KVPR after).

    GPU candidates are all GPUs on small clusters, else the least-loaded and roomiest
    ``num_targets`` each.  Returns ``None`` if some model fits on no candidate.
    """
    target0 = simple_lower_bound(instance)
    target0 = target0 if math.isfinite(target0) else 0.0
    order = item_order(instance, "weight", target0)
    state = LoadState(instance)
    pending: list[int] = []
    next_pos = 0
    while pending or next_pos < len(order):
        while len(pending) < window and next_pos < len(order):
            pending.append(order[next_pos])
            next_pos += 1
        candidates = state.targets(num_targets)
        chosen_pos, chosen_gpu, chosen_regret = -1, -1, -INF
        for pos, model in enumerate(pending):
            best, gpu, second = _best_two(state, model, candidates)
            if gpu < 0:
                # Retry on every GPU before giving up (the candidate list is a shortlist).
                best, gpu, second = _best_two(state, model, range(state.num_gpus))
                if gpu < 0:
                    return None
            regret = second - best if math.isfinite(second) else INF
            if regret > chosen_regret:
                chosen_pos, chosen_gpu, chosen_regret = pos, gpu, regret
        state.place(pending.pop(chosen_pos), chosen_gpu)
    return state.placement()


# -- memory-balanced packing ------------------------------------------------------------

def memory_balanced(instance: Instance, *, node_limit: int = 20000) -> Placement | None:
    """Models by size descending (then demand, index) onto the GPU with the most free memory.

    Balancing free memory leaves room everywhere for the local search.  If that
    rule runs out of room, best-fit decreasing on memory (tighter packing) is tried,
    then a depth-first memory packing of at most ``node_limit`` nodes (exact on
    small instances, so a memory-feasible instance is rarely reported as unpackable).
    Returns ``None`` if none fits every model.
    """
    sizes = instance.sizes.tolist()
    capacities = instance.capacities.tolist()
    order = item_order(instance, "size", 0.0)
    gpu_of = _memory_worst_fit(sizes, capacities, order)
    if gpu_of is None:
        gpu_of = _memory_best_fit(sizes, capacities, order)
    if gpu_of is None and node_limit > 0:
        # Items s_i in slacks C_g (the same float slack as ``fits_memory``).
        answer = PackingSearch(sizes, capacities, 1.0 + MEM_REL_TOL, node_limit).run()
        gpu_of = None if answer.gpu_of is None else list(answer.gpu_of)
    return None if gpu_of is None else Placement(tuple(gpu_of))


def _memory_worst_fit(sizes: list[float], capacities: list[float], order: Sequence[int]) -> list[int] | None:
    heap = [(-cap, g) for g, cap in enumerate(capacities)]  # (-free memory, gpu)
    heapq.heapify(heap)
    used_mem = [0.0] * len(capacities)
    gpu_of = [0] * len(sizes)
    for model in order:
        _, gpu = heap[0]
        if not fits_memory(used_mem[gpu], sizes[model], capacities[gpu]):
            return None
        used_mem[gpu] += sizes[model]
        heapq.heapreplace(heap, (used_mem[gpu] - capacities[gpu], gpu))
        gpu_of[model] = gpu
    return gpu_of


def _memory_best_fit(sizes: list[float], capacities: list[float], order: Sequence[int]) -> list[int] | None:
    slots = sorted((cap, g) for g, cap in enumerate(capacities))  # (free memory, gpu), ascending
    used_mem = [0.0] * len(capacities)
    gpu_of = [0] * len(sizes)
    for model in order:
        size = sizes[model]
        # Shave the float tolerance so an exact fill is still found by bisect.
        pos = bisect_left(slots, (size - abs(size) * 1e-12, -1))
        while pos < len(slots) and not fits_memory(used_mem[slots[pos][1]], size, capacities[slots[pos][1]]):
            pos += 1
        if pos == len(slots):
            return None
        _, gpu = slots.pop(pos)
        used_mem[gpu] += size
        insort(slots, (capacities[gpu] - used_mem[gpu], gpu))
        gpu_of[model] = gpu
    return gpu_of
