"""Budget-aware local search for re-placement (float search; results are re-evaluated exactly).

Objective: the worst peak over the demand scenarios (the base demands when there
are none), ``max_s max_g N_g^s / (C_g - S_g)``, under a move budget
``sum cost_i [g(i) != cur(i)] <= B``.  A placement is scored by
``(peak, sum_g w_g^2)`` with ``w_g = max_s KVPR_g^s``: the second term breaks
ties between placements with the same peak (fewer GPUs near the peak).

Changes tried from a GPU at the peak, best first (best-improvement descent):
relocate one of its models; swap one with a model elsewhere (a swap counts as two
moves); an ejection chain (a model of the target GPU moves on to a third GPU to
make room); and, when the budget is spent, relocate one of its models while
sending an already-moved model back to its current GPU (budget-neutral).  Then
``PERTURB_ROUNDS`` seeded kicks (one or two random relocations within the budget,
then descent) keep the best state.  Starts: the
current placement (new models inserted greedily), and the unconstrained
pipeline placement aligned to the current GPUs with moves undone until the
budget holds.  The best descent wins.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kvopt.evaluate import scenario_demand_matrix
from kvopt.model import Instance, Model
from kvopt.replan.moves import align_to_current, cost_vector

EPS = 1e-12
PERTURB_ROUNDS = 30
UNPLACED = -1  # a new model not inserted yet


@dataclass(frozen=True)
class Change:
    """Models to put on new GPUs, applied in order: ``((model, gpu), ...)``."""

    steps: tuple[tuple[int, int], ...]


class ReplanState:
    """A placement with per-GPU memory, per-scenario demand and worst KVPR ``w_g``, kept incrementally."""

    def __init__(self, instance: Instance, gpu_of: Sequence[int], costs: Sequence[float]) -> None:
        self.sizes = instance.sizes
        self.caps = instance.capacities
        self.demands = scenario_demand_matrix(instance)  # S x m
        self.current = [m.current_gpu for m in instance.models]
        self.costs = list(costs)
        self.gpu_of = [int(g) for g in gpu_of]
        num_gpus = instance.num_gpus
        self.used = np.zeros(num_gpus)
        self.load = np.zeros((self.demands.shape[0], num_gpus))
        for i, g in enumerate(self.gpu_of):
            if g == UNPLACED:
                continue
            self.used[g] += self.sizes[i]
            self.load[:, g] += self.demands[:, i]
        self.worst = np.array([self._worst(g) for g in range(num_gpus)])
        self.spent = sum(c for c, cur, g in zip(self.costs, self.current, self.gpu_of) if cur is not None and cur != g)

    def _worst(self, gpu: int) -> float:
        free = self.caps[gpu] - self.used[gpu]
        demand = float(self.load[:, gpu].max())
        if demand <= 0:
            return 0.0
        return math.inf if free <= 1e-9 else demand / free

    def move_cost(self, model: int, gpu: int) -> float:
        cur = self.current[model]
        return 0.0 if cur is None or cur == gpu or gpu == UNPLACED else self.costs[model]

    def put(self, model: int, gpu: int) -> None:
        old = self.gpu_of[model]
        if old == gpu:
            return
        self.spent += self.move_cost(model, gpu) - self.move_cost(model, old)
        for g, sign in ((old, -1.0), (gpu, 1.0)):
            if g == UNPLACED:
                continue
            self.used[g] += sign * self.sizes[model]
            self.load[:, g] += sign * self.demands[:, model]
        self.gpu_of[model] = gpu
        for g in (old, gpu):
            if g != UNPLACED:
                self.worst[g] = self._worst(g)

    def memory_ok(self, gpus: Sequence[int]) -> bool:
        return all(self.used[g] <= self.caps[g] + 1e-9 for g in gpus)

    def key(self) -> tuple[float, float]:
        finite = self.worst[np.isfinite(self.worst)]
        return float(self.worst.max()), float((finite ** 2).sum())

    def try_change(self, change: Change, budget: float) -> tuple[float, float] | None:
        """The key after ``change`` (then undone), or ``None`` if it breaks memory or the budget."""
        undo = [(i, self.gpu_of[i]) for i, _ in change.steps]
        touched = {g for i, g in change.steps} | {self.gpu_of[i] for i, _ in change.steps} - {UNPLACED}
        for i, g in change.steps:
            self.put(i, g)
        ok = self.spent <= budget + EPS and self.memory_ok(sorted(touched))
        key = self.key() if ok else None
        for i, g in reversed(undo):
            self.put(i, g)
        return key

    def apply(self, change: Change) -> None:
        for i, g in change.steps:
            self.put(i, g)


def candidate_changes(state: ReplanState, budget: float) -> list[Change]:
    """Relocations and swaps off the peak GPUs, and budget-neutral relocate-and-return pairs."""
    num_gpus = len(state.caps)
    peak = state.worst.max()
    level = peak if math.isinf(peak) else peak - 1e-12 * max(1.0, peak)
    peak_gpus = [g for g in range(num_gpus) if state.worst[g] >= level]
    members: list[list[int]] = [[] for _ in range(num_gpus)]
    for i, g in enumerate(state.gpu_of):
        members[g].append(i)
    moved = [i for i, (cur, g) in enumerate(zip(state.current, state.gpu_of)) if cur is not None and cur != g]
    changes: list[Change] = []
    for p in peak_gpus:
        for i in members[p]:
            for g in range(num_gpus):
                if g == p:
                    continue
                changes.append(Change(((i, g),)))
                for j in members[g]:
                    changes.append(Change(((i, g), (j, p))))
                    # ejection chain: j makes room for i on g by going to a third GPU
                    changes.extend(Change(((j, h), (i, g))) for h in range(num_gpus) if h not in (p, g))
                if state.spent + state.move_cost(i, g) - state.move_cost(i, p) > budget + EPS:
                    for k in moved:
                        if k != i and state.current[k] is not None:
                            changes.append(Change(((i, g), (k, state.current[k]))))
    return changes


def descend(state: ReplanState, budget: float, max_rounds: int = 10_000) -> None:
    """Best-improvement descent on ``(peak, sum w^2)`` until no change improves it."""
    for _ in range(max_rounds):
        best_key = state.key()
        best: Change | None = None
        for change in candidate_changes(state, budget):
            key = state.try_change(change, budget)
            if key is not None and _better(key, best_key):
                best_key, best = key, change
        if best is None:
            return
        state.apply(best)


def _better(new: tuple[float, float], old: tuple[float, float]) -> bool:
    if new[0] < old[0] - 1e-12 * max(1.0, old[0]):
        return True
    return new[0] <= old[0] + 1e-12 * max(1.0, old[0]) and new[1] < old[1] - 1e-9 * max(1.0, old[1])


def envelope_instance(instance: Instance) -> Instance:
    """Per model the largest demand over the scenarios (its peak bounds every scenario's): for constructions."""
    if not instance.scenarios:
        return instance
    demands = scenario_demand_matrix(instance).max(axis=0)
    models = tuple(Model(m.name, m.size_gb, float(d) * m.slo, m.slo, m.current_gpu)
                   for m, d in zip(instance.models, demands))
    return Instance(instance.name, models, instance.gpu_mem_gb, dict(instance.meta))


def _start_from_current(instance: Instance, costs: Sequence[float]) -> ReplanState | None:
    """The current placement with the new models inserted greedily (largest first, smallest key); ``None`` if one fits nowhere."""
    state = ReplanState(instance, [UNPLACED if m.current_gpu is None else m.current_gpu for m in instance.models],
                        costs)
    new = [i for i, m in enumerate(instance.models) if m.current_gpu is None]
    for i in sorted(new, key=lambda i: (-state.sizes[i], i)):
        options = []
        for g in range(instance.num_gpus):
            key = state.try_change(Change(((i, g),)), math.inf)
            if key is not None:
                options.append((key, g))
        if not options:
            return None
        state.apply(Change(((i, min(options)[1]),)))
    return state


def _start_from_target(instance: Instance, costs: Sequence[float], budget: float,
                       target: Sequence[int]) -> ReplanState | None:
    """The unconstrained placement aligned to the current GPUs, moves undone (best key first) within budget."""
    state = ReplanState(instance, align_to_current(instance, target), costs)
    while state.spent > budget + EPS:
        moved = [i for i, (cur, g) in enumerate(zip(state.current, state.gpu_of)) if cur is not None and cur != g]
        options = []
        for i in moved:
            key = state.try_change(Change(((i, state.current[i]),)), math.inf)
            if key is not None:
                options.append((key, i))
        if not options:
            return None
        i = min(options)[1]
        state.apply(Change(((i, state.current[i]),)))
    return state


def budget_local_search(instance: Instance, budget: float, cost: str = "count",
                        starts: Sequence[Sequence[int]] = (), seed: int = 0) -> tuple[int, ...] | None:
    """The best placement found within ``budget`` (in ``cost`` units), or ``None`` if no start fits.

    ``starts``: extra placements to descend from (e.g. the unconstrained
    optimum, or the answer for a smaller budget); each is trimmed to the budget.
    """
    from kvopt.heuristics import run_heuristic

    costs = cost_vector(instance, cost)
    states = []
    current = _start_from_current(instance, costs)
    if current is not None:
        states.append(current)
    targets = list(starts)
    unconstrained = run_heuristic("pipeline", envelope_instance(instance).without_scenarios()).placement
    if unconstrained is not None:
        targets.append(unconstrained.gpu_of)
    for target in targets:
        trimmed = _start_from_target(instance, costs, budget, target)
        if trimmed is not None:
            states.append(trimmed)
    best: ReplanState | None = None
    for state in states:
        descend(state, budget)
        if best is None or _better(state.key(), best.key()):
            best = state
    if best is None:
        return None
    return tuple(perturb_and_descend(instance, best, budget, seed))


def perturb_and_descend(instance: Instance, best: ReplanState, budget: float, seed: int,
                        rounds: int = PERTURB_ROUNDS) -> list[int]:
    """Iterated local search: kick the best state with 1-2 random relocations (memory and budget
    respected), descend, keep the result when it is better.  Seeded: deterministic."""
    rng = random.Random(seed)
    best_gpu_of = list(best.gpu_of)
    costs = best.costs
    for _ in range(rounds):
        state = ReplanState(instance, best_gpu_of, costs)
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(instance.num_models)
            g = rng.randrange(instance.num_gpus)
            if state.try_change(Change(((i, g),)), budget) is not None:
                state.apply(Change(((i, g),)))
        descend(state, budget)
        if _better(state.key(), best.key()):
            best, best_gpu_of = state, list(state.gpu_of)
    return best_gpu_of
