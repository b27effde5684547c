"""Budget-aware large-neighbourhood search: re-placement for clusters too large to solve whole.

The move budget is global, but a neighbourhood (a few GPUs, ``kvopt.lns``) only
decides the models on its GPUs.  With the rest fixed, the cost already spent is
known exactly, so each neighbourhood is an exact re-placement of its own:

* a model *outside* the neighbourhood keeps its GPU: it costs what it costs now
  (``cost_i`` if it sits elsewhere than its current GPU);
* a model *inside* whose current GPU is outside the neighbourhood is moved
  whatever happens there: its cost is spent, and inside it counts as new;
* a model inside whose current GPU is inside keeps that GPU as its current one.

So the neighbourhood's budget is ``B − spent`` and its optimum (``solve_exact``
with the budget as one integer row) merged back never exceeds ``B``.  A neighbourhood's answer is accepted when its GPUs'
KVPR values improve in the leximax order (``kvopt.lns.accept_move``): the global
peak cannot rise and the search cannot cycle.  Every accepted placement is
re-checked against the whole budget in exact arithmetic.
"""

from __future__ import annotations

import time
from dataclasses import replace
from fractions import Fraction
from typing import Sequence

import numpy as np

from kvopt.evaluate import exact_gpu_kvpr
from kvopt.lns import SubProblem, accept_move, extract_subproblem, merge_back, select_neighbourhood
from kvopt.model import Instance, KvoptError
from kvopt.replan.moves import Budget, budget_row, within_budget

RULES = ("least_loaded", "random", "most_free_memory")


def neighbourhood_instance(instance: Instance, gpu_of: Sequence[int], gpus: Sequence[int],
                           budget: Budget) -> tuple[SubProblem, Budget] | None:
    """The neighbourhood as a re-placement of its own and its budget, or ``None`` when it holds no model.

    The sub-instance's ``current_gpu`` values follow the module docstring; its
    budget is what the rest of the placement leaves of ``budget``.
    """
    try:
        sub = extract_subproblem(instance, gpu_of, gpus)
    except KvoptError:  # no model on these GPUs: nothing to re-place here
        return None
    local_of = {g: j for j, g in enumerate(sub.gpus)}
    inside = set(sub.models)
    unit = (lambda i: Fraction(1)) if budget.cost == "count" else (lambda i: instance.sizes_exact[i])
    spent = Fraction(0)
    for i, model in enumerate(instance.models):
        moved_away = model.current_gpu is not None and model.current_gpu != gpu_of[i]
        if i not in inside and moved_away:
            spent += unit(i)
        elif i in inside and model.current_gpu is not None and model.current_gpu not in local_of:
            spent += unit(i)
    models = [replace(instance.models[i], current_gpu=local_of.get(instance.models[i].current_gpu))
              for i in sub.models]
    return replace(sub, instance=replace(sub.instance, models=tuple(models))), Budget(budget.cost, budget.limit - spent)


def budget_lns(instance: Instance, budget: Budget, start: Sequence[int], *, time_limit_s: float,
               neighbourhood_gpus: int = 4, sub_time_limit_s: float = 5.0, seed: int = 0,
               max_iterations: int | None = None) -> tuple[int, ...]:
    """Improve ``start`` (within ``budget``) by exact neighbourhood re-placements until the time is up."""
    from kvopt.exact import solve_exact

    clock = time.perf_counter()
    gpu_of = tuple(start)
    if not within_budget(instance, gpu_of, budget) or instance.scenarios:
        return gpu_of
    rng = np.random.default_rng(seed)
    failures = {rule: 0 for rule in RULES}
    iteration = 0
    while time.perf_counter() - clock < time_limit_s and (max_iterations is None or iteration < max_iterations):
        rule = RULES[iteration % len(RULES)]
        iteration += 1
        kvpr = exact_gpu_kvpr(instance, gpu_of)
        floats = np.array([float(v) for v in kvpr])
        peak = max(kvpr)
        used = np.zeros(instance.num_gpus)
        np.add.at(used, np.asarray(gpu_of), instance.sizes)
        gpus = select_neighbourhood(rule, peak_gpus=[g for g, v in enumerate(kvpr) if v == peak], gpu_kvpr=floats,
                                    free_mem=instance.capacities - used, neighbourhood_gpus=neighbourhood_gpus,
                                    attempt=failures[rule], rng=rng)
        cut = neighbourhood_instance(instance, gpu_of, gpus, budget)
        if cut is None or cut[1].limit < 0:
            failures[rule] += 1
            continue
        sub, sub_budget = cut
        remaining = time_limit_s - (time.perf_counter() - clock)
        # The incumbent's part is within the neighbourhood's budget, so it is a valid warm start.
        result = solve_exact(sub.instance, time_limit_s=max(0.5, min(sub_time_limit_s, remaining)), seed=seed,
                             warm_start=sub.start, move_budget=budget_row(sub.instance, sub_budget))
        if result.placement is None:
            failures[rule] += 1
            continue
        sub_gpu_of = result.placement.gpu_of
        old = exact_gpu_kvpr(sub.instance, sub.start.gpu_of)
        new = exact_gpu_kvpr(sub.instance, sub_gpu_of)
        candidate = merge_back(gpu_of, sub, sub_gpu_of)
        if accept_move(old, new) and within_budget(instance, candidate, budget):
            gpu_of = candidate
            failures = {r: 0 for r in RULES}
        else:
            failures[rule] += 1
        if all(count >= instance.num_gpus for count in failures.values()):
            break
    return gpu_of

