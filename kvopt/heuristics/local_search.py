"""Bounded local search off the worst GPU: single-model moves and pairwise swaps.

Each iteration takes the GPU ``w`` with the peak ``P = KVPR_w`` and looks at
every move of a model ``i`` from ``w`` to a target GPU ``t`` and the swaps of
``i`` with a model ``j`` on ``t`` (the heaviest models of ``w`` with the lightest of
``t``, at most ``swap_width`` of each).  A change is accepted when both touched GPUs end
strictly below ``P``; among those, the one with the smallest
``max(KVPR_w', KVPR_t')`` wins.  The sorted vector of KVPRs then decreases
lexicographically, so the peak never increases and the search cannot cycle.

Targets are every GPU on small clusters, else the least-loaded and the roomiest
``num_targets`` GPUs (heaps in ``LoadState``), so an iteration costs
``O((models on the touched GPUs + swap_width^2) · num_targets + log G)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kvopt.evaluate import kvpr
from kvopt.heuristics.state import LoadState, extreme_models
from kvopt.model import Instance, Placement

# A change must lower the worst GPU by more than this relative amount (no float ping-pong).
REL_IMPROVEMENT = 1e-12


@dataclass(frozen=True)
class Change:
    """Move ``model`` to ``gpu`` (``partner < 0``) or swap ``model`` with ``partner``."""

    value: float  # max KVPR of the two touched GPUs after the change
    model: int
    gpu: int
    partner: int = -1


def acceptance_threshold(peak: float) -> float:
    """Values strictly below this count as an improvement over ``peak``."""
    return peak if math.isinf(peak) else peak * (1.0 - REL_IMPROVEMENT)


def best_change_off(state: LoadState, worst: int, targets: list[int], threshold: float,
                    swap_width: int = 12) -> Change | None:
    """The best move or swap of a model on ``worst`` with a target, if both touched GPUs end below ``threshold``.

    Every model of ``worst`` is tried as a move.  Swaps pair the ``swap_width`` models of
    ``worst`` with the largest ``n_i + P s_i`` (``P`` = ``threshold``: the model's share of the
    GPU's budget at that level) with the ``swap_width`` lightest models of each target, so a
    GPU with hundreds of small models costs ``O(models + swap_width^2)`` per target, not
    ``O(models^2)``.
    """
    sizes, demands, capacities = state.sizes, state.demands, state.capacities
    used_mem, demand = state.used_mem, state.demand
    src_free, src_demand = capacities[worst] - used_mem[worst], demand[worst]
    best: Change | None = None
    best_value = threshold
    # Moving a model off is the best a swap of that model can do on the source side
    # (a swap adds demand back and takes memory): models that fail this are skipped.
    useful = []
    for model in state.members[worst]:
        size, load = sizes[model], demands[model]
        src_after_move = kvpr(src_demand - load, src_free + size)
        if src_after_move >= best_value:
            continue
        useful.append(model)
        for gpu in targets:
            if state.fits(model, gpu):
                value = max(src_after_move, state.kvpr_after(gpu, load, size))
                if value < best_value:
                    best_value = value
                    best = Change(value, model, gpu)
    if swap_width <= 0 or not useful:
        return best
    level = threshold if math.isfinite(threshold) else 1.0
    sources = extreme_models(state, useful, swap_width, level, heaviest=True)
    for gpu in targets:
        tgt_free, tgt_demand = capacities[gpu] - used_mem[gpu], demand[gpu]
        partners = extreme_models(state, state.members[gpu], swap_width, level, heaviest=False)
        for model in sources:
            size, load = sizes[model], demands[model]
            for other in partners:
                if not state.fits_swap(model, other):
                    continue
                delta_size = sizes[other] - size  # memory the swap adds to the source
                delta_load = demands[other] - load
                value = max(kvpr(src_demand + delta_load, src_free - delta_size),
                            kvpr(tgt_demand - delta_load, tgt_free + delta_size))
                if value < best_value:
                    best_value = value
                    best = Change(value, model, gpu, other)
    return best


def apply_change(state: LoadState, change: Change) -> None:
    if change.partner < 0:
        state.move(change.model, change.gpu)
    else:
        state.swap(change.model, change.partner)


def improve_state(state: LoadState, *, max_iters: int, num_targets: int, swap_width: int = 12) -> int:
    """Run the search on ``state`` in place for at most ``max_iters`` changes; return how many were made."""
    for iteration in range(max_iters):
        worst = state.peak_gpu()
        peak = state.gpu_kvpr[worst]
        if peak <= 0.0:
            return iteration
        targets = state.targets(num_targets, exclude=(worst,))
        change = best_change_off(state, worst, targets, acceptance_threshold(peak), swap_width)
        if change is None:
            return iteration
        apply_change(state, change)
    return max_iters


def local_search(instance: Instance, placement: Placement, *, max_iters: int = 1500,
                 num_targets: int = 16, swap_width: int = 12) -> Placement:
    """Improve ``placement`` with at most ``max_iters`` moves/swaps off the worst GPU (peak never rises)."""
    state = LoadState(instance, placement.gpu_of)
    improve_state(state, max_iters=max_iters, num_targets=num_targets, swap_width=swap_width)
    return state.placement()
