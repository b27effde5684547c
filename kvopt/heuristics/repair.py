"""Descent by repair at a target: push the peak below ``T = P (1 - step)`` by moving overload around.

At a fixed target ``T`` a GPU's *excess* is ``E_g = max(0, N_g - T (C_g - S_g))``:
it is 0 exactly when ``KVPR_g <= T``.  ``repair_at_target`` takes the GPU with the
largest excess and applies the move or swap (with a target GPU) that lowers the
total excess ``sum_g E_g`` most; unlike ``local_search`` a change may leave the
target GPU above ``T`` when that still lowers the total, so overload can travel
along chains of GPUs.  The total excess strictly decreases, so it cannot cycle.
Memory ``S_g <= C_g`` is a hard limit throughout.

``descend_by_repair`` wraps it: from the current peak ``P`` try ``T = P (1 - step)``;
on success the new placement (peak ``<= T``) is kept, on failure the step shrinks.

Targets are every GPU on small clusters, else the GPUs with the most slack
``T (C_g - S_g) - N_g`` (a lazy heap: ``T`` is fixed during one repair) plus the
roomiest ones; swaps pair at most ``swap_width`` heavy models of the source with as many
light models of each target, so one iteration costs
``O((models on the source + swap_width^2) · targets + log G)``.
"""

from __future__ import annotations

import heapq
import math
from typing import Sequence

from kvopt.heuristics.local_search import Change, apply_change
from kvopt.heuristics.state import SCAN_LIMIT, LoadState, LazyHeap, extreme_models
from kvopt.model import Instance, Placement

# A change must lower the total excess by this fraction of the source GPU's excess.
REL_DECREASE = 1e-9


def excess(state: LoadState, gpu: int, target: float) -> float:
    """``max(0, N_g - T (C_g - S_g))``: how far GPU ``gpu`` is above ``KVPR = T``, in demand units."""
    return max(0.0, state.demand[gpu] - target * (state.capacities[gpu] - state.used_mem[gpu]))


def slack(state: LoadState, gpu: int, target: float) -> float:
    """``T (C_g - S_g) - N_g``: demand GPU ``gpu`` can still take at ``KVPR <= T`` (negative if above)."""
    return target * (state.capacities[gpu] - state.used_mem[gpu]) - state.demand[gpu]


class LightModels:
    """The ``swap_width`` lightest models (weight ``n_i + T s_i``) of each GPU at a fixed ``T``,
    cached until the GPU changes (its stamp moves)."""

    def __init__(self, state: LoadState, target: float, swap_width: int) -> None:
        self.state, self.target, self.swap_width = state, target, swap_width
        self.cache: dict[int, tuple[int, Sequence[int]]] = {}

    def of(self, gpu: int) -> Sequence[int]:
        stamp = self.state.stamps[gpu]
        hit = self.cache.get(gpu)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        light = extreme_models(self.state, self.state.members[gpu], self.swap_width, self.target, heaviest=False)
        self.cache[gpu] = (stamp, light)
        return light


def best_repair_change(state: LoadState, gpu: int, targets: list[int], target: float,
                       penalty: dict[int, float] | None = None, swap_width: int = 12,
                       light: LightModels | None = None) -> Change | None:
    """The move or swap off ``gpu`` that lowers the weighted total excess ``sum_g p_g E_g`` most
    (``p_g`` = ``penalty[g]``, default 1; ``value`` = the change, < 0).

    Every model of ``gpu`` is tried as a move; swaps pair its ``swap_width`` heaviest models
    (weight ``n_i + T s_i``) with the ``swap_width`` lightest of each target.
    """
    sizes, demands = state.sizes, state.demands
    penalty = penalty or {}
    src_slack = slack(state, gpu, target)
    src_excess = max(0.0, -src_slack)
    src_penalty = penalty.get(gpu, 1.0)
    best_delta = -REL_DECREASE * src_excess * src_penalty
    best: Change | None = None
    target_state = [(other_gpu, slack(state, other_gpu, target), penalty.get(other_gpu, 1.0))
                    for other_gpu in targets]
    for model in state.members[gpu]:
        weight = demands[model] + target * sizes[model]  # what leaving frees on the source, in demand units
        src_gain = src_penalty * (max(0.0, -(src_slack + weight)) - src_excess)
        for other_gpu, tgt_slack, tgt_penalty in target_state:
            delta = src_gain + tgt_penalty * (max(0.0, weight - tgt_slack) - max(0.0, -tgt_slack))
            if delta < best_delta and state.fits(model, other_gpu):
                best_delta = delta
                best = Change(delta, model, other_gpu)
    if swap_width <= 0:
        return best
    sources = extreme_models(state, state.members[gpu], swap_width, target, heaviest=True)
    for other_gpu, tgt_slack, tgt_penalty in target_state:
        tgt_excess = max(0.0, -tgt_slack)
        partners = light.of(other_gpu) if light is not None else \
            extreme_models(state, state.members[other_gpu], swap_width, target, heaviest=False)
        for model in sources:
            weight = demands[model] + target * sizes[model]
            for other in partners:
                back = demands[other] + target * sizes[other]  # weight coming back to the source
                delta = (src_penalty * (max(0.0, back - weight - src_slack) - src_excess)
                         + tgt_penalty * (max(0.0, weight - back - tgt_slack) - tgt_excess))
                if delta < best_delta and state.fits_swap(model, other):
                    best_delta = delta
                    best = Change(delta, model, other_gpu, other)
    return best


class _RepairQueues:
    """Overloaded GPUs by excess (largest first) and, on large clusters, GPUs by slack."""

    def __init__(self, state: LoadState, target: float) -> None:
        self.state = state
        self.target = target
        self.overloaded = {g for g in range(state.num_gpus) if excess(state, g, target) > 0.0}
        self.by_excess = self._excess_heap()
        self.by_slack = LazyHeap([(-slack(state, g, target), g, state.stamps[g]) for g in range(state.num_gpus)]) \
            if state.num_gpus > SCAN_LIMIT else None

    def _excess_heap(self) -> list[tuple[float, int, int]]:
        entries = [(-excess(self.state, g, self.target), g, self.state.stamps[g]) for g in self.overloaded]
        heapq.heapify(entries)
        return entries

    def refill(self) -> None:
        self.by_excess = self._excess_heap()

    def pop_worst(self, stuck: dict[int, int]) -> int | None:
        """The overloaded GPU with the largest excess that is not stuck since its last change."""
        stamps = self.state.stamps
        while self.by_excess:
            _, gpu, stamp = heapq.heappop(self.by_excess)
            if stamp == stamps[gpu] and gpu in self.overloaded and stuck.get(gpu) != stamp:
                return gpu
        return None

    def touched(self, gpu: int) -> None:
        value = excess(self.state, gpu, self.target)
        stamp = self.state.stamps[gpu]
        if value > 0.0:
            self.overloaded.add(gpu)
            heapq.heappush(self.by_excess, (-value, gpu, stamp))
        else:
            self.overloaded.discard(gpu)
        if self.by_slack is not None:
            self.by_slack.push(-slack(self.state, gpu, self.target), gpu, stamp)

    def targets(self, gpu: int, count: int) -> list[int]:
        state = self.state
        if self.by_slack is None:
            return [g for g in range(state.num_gpus) if g != gpu]
        chosen = self.by_slack.smallest(count, state.stamps, (gpu,))
        seen = set(chosen)
        chosen += [g for g in state.roomiest(count, (gpu,)) if g not in seen]
        return chosen


def repair_at_target(state: LoadState, target: float, *, max_iters: int, num_targets: int,
                     max_bumps: int = 0, swap_width: int = 12) -> bool:
    """Change ``state`` in place until every ``KVPR_g <= T`` (returns True) or no change helps / budget ends.

    With ``max_bumps > 0``, a dead end raises the penalty of every overloaded GPU by 1
    (breakout): the weighted excess then lets overload move off GPUs that stay stuck.
    """
    queues = _RepairQueues(state, target)
    light = LightModels(state, target, swap_width)
    stuck: dict[int, int] = {}  # GPU -> stamp at which no change helped
    penalty: dict[int, float] = {}
    bumps = 0
    changed_since_sweep = False
    iterations = 0
    while iterations < max_iters:
        if not queues.overloaded:
            return True
        gpu = queues.pop_worst(stuck)
        if gpu is None:
            if not changed_since_sweep:
                if bumps >= max_bumps:
                    return False
                bumps += 1
                for overloaded in queues.overloaded:
                    penalty[overloaded] = penalty.get(overloaded, 1.0) + 1.0
            # Targets have changed since those GPUs got stuck: give them another try.
            stuck.clear()
            changed_since_sweep = False
            queues.refill()
            continue
        iterations += 1
        change = best_repair_change(state, gpu, queues.targets(gpu, num_targets), target, penalty, swap_width,
                                    light)
        if change is None:
            stuck[gpu] = state.stamps[gpu]
            continue
        other_gpu = change.gpu
        apply_change(state, change)
        queues.touched(gpu)
        queues.touched(other_gpu)
        changed_since_sweep = True
    return not queues.overloaded


def descend_state(state: LoadState, *, rounds: int, max_iters: int, num_targets: int,
                  first_step: float = 0.02, min_step: float = 1e-4, max_bumps: int = 0,
                  swap_width: int = 12) -> LoadState:
    """Repeatedly repair at ``T = P (1 - step)``; keep successes, shrink ``step`` by 4 on failure."""
    best = state
    peak = best.peak()
    step = first_step
    for _ in range(rounds):
        if not (math.isfinite(peak) and peak > 0.0) or step < min_step:
            break
        trial = best.copy()
        if repair_at_target(trial, peak * (1.0 - step), max_iters=max_iters, num_targets=num_targets,
                            max_bumps=max_bumps, swap_width=swap_width):
            new_peak = trial.peak()
            if new_peak < peak:
                best, peak = trial, new_peak
                continue
        step /= 4.0
    return best


def descend_by_repair(instance: Instance, placement: Placement, *, rounds: int = 12, max_iters: int = 400,
                      num_targets: int = 16, first_step: float = 0.02, min_step: float = 1e-4,
                      max_bumps: int = 0, swap_width: int = 12) -> Placement:
    """Lower the peak by repairs at decreasing targets (never returns a higher peak)."""
    state = LoadState(instance, placement.gpu_of)
    return descend_state(state, rounds=rounds, max_iters=max_iters, num_targets=num_targets,
                         first_step=first_step, min_step=min_step, max_bumps=max_bumps,
                         swap_width=swap_width).placement()
