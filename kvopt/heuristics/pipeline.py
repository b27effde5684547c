"""The pipeline: several constructions, local search on each, the best, refine_peak, polish.

1. ``construct_candidates``: greedy (Prism Algorithm 1), parametric packing
   (bisection on ``T`` with items ``n_i + T s_i`` in capacities ``T C_g``),
   regret insertion and memory-balanced packing.
2. ``local_search`` on each distinct candidate (bounded moves and swaps off the worst GPU).
3. ``select_best`` by ``(peak, second peak, mean KVPR)``.
4. ``refine_peak``: donation-first moves of high-demand / large models off the worst GPU.
5. ``local_search`` again, shorter (polish).
6. ``descend_by_repair``: repeatedly ask for peak ``<= P (1 - step)`` and repair the
   overload by moves/swaps that lower the (penalty-weighted) total excess.
7. On small instances, ``tighten_by_search``: a node-bounded exact packing search
   at ``T`` just below the peak, which either proves no better placement exists
   (to ``1e-7``) or finds one, repeatedly.

Budgets live in the frozen ``PipelineConfig``; ``scaled_budgets`` grows the
search budgets with the number of GPUs (the search works on one worst GPU at a
time, so a large cluster needs proportionally more iterations).
Every stage keeps the peak or lowers it; the result is re-checked in exact
arithmetic and the best *valid* placement seen is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from kvopt.evaluate import check_placement
from kvopt.heuristics.construct import memory_balanced, parametric_packing, regret_insertion
from kvopt.heuristics.greedy import greedy
from kvopt.heuristics.local_search import local_search
from kvopt.heuristics.refine import refine_peak
from kvopt.heuristics.repair import descend_by_repair
from kvopt.heuristics.search import tighten_by_search
from kvopt.heuristics.state import NoPlacementError, Score, no_placement, score_placement
from kvopt.model import Instance, KvoptError, Placement


@dataclass(frozen=True)
class PipelineConfig:
    """Budgets of the pipeline stages.

    Search budgets are ``max(base, per_gpu * G)`` (see ``scaled_budgets``);
    bisection uses ``bisection_rel_tol`` up to ``small_models`` models and
    ``large_rel_tol`` above (each round costs a full packing of every model).
    The exact packing search (``search_nodes`` per call, at most ``search_calls``
    calls) runs only up to ``search_max_models`` models: measured, it pays off on
    the 10-40-model suites and costs seconds without gains from ~64 models up.
    ``swap_width`` bounds the swaps per target (GPUs with many small models).
    """

    bisection_rounds: int = 40
    bisection_rel_tol: float = 1e-6
    large_rel_tol: float = 1e-3
    small_models: int = 512
    regret_window: int = 8
    num_targets: int = 16
    swap_width: int = 12
    local_iters: int = 1500
    local_iters_per_gpu: float = 3.0
    refine_passes: int = 4
    refine_top_k: int = 12
    refine_targets: int = 4
    polish_iters: int = 1200
    polish_iters_per_gpu: float = 1.0
    repair_rounds: int = 20
    repair_iters: int = 2000
    repair_iters_per_gpu: float = 2.0
    repair_bumps: int = 8
    repair_first_step: float = 0.02
    repair_min_step: float = 1e-4
    search_max_models: int = 48
    search_nodes: int = 60000
    search_calls: int = 30


@dataclass(frozen=True)
class Budgets:
    """The budgets actually used on one instance."""

    bisection_rel_tol: float
    local_iters: int
    refine_passes: int
    polish_iters: int
    repair_iters: int


def scaled_budgets(instance: Instance, config: PipelineConfig) -> Budgets:
    """Scale the search budgets with the cluster size (see ``PipelineConfig``)."""
    gpus = instance.num_gpus
    return Budgets(
        bisection_rel_tol=config.bisection_rel_tol if instance.num_models <= config.small_models
        else config.large_rel_tol,
        local_iters=max(config.local_iters, int(config.local_iters_per_gpu * gpus)),
        refine_passes=config.refine_passes,
        polish_iters=max(config.polish_iters, int(config.polish_iters_per_gpu * gpus)),
        repair_iters=max(config.repair_iters, int(config.repair_iters_per_gpu * gpus)),
    )


def construct_candidates(instance: Instance, config: PipelineConfig = PipelineConfig()) -> list[tuple[str, Placement]]:
    """Every construction that found a memory-feasible placement, named, duplicates dropped."""
    budgets = scaled_budgets(instance, config)
    found: list[tuple[str, Placement]] = []
    greedy_peak = None
    try:
        greedy_placement = greedy(instance)
        found.append(("greedy", greedy_placement))
        greedy_peak = score_placement(instance, greedy_placement.gpu_of).peak
    except NoPlacementError:
        pass
    packed = parametric_packing(instance, max_rounds=config.bisection_rounds,
                                rel_tol=budgets.bisection_rel_tol, start_target=greedy_peak)
    if packed is not None:
        found.append(("parametric", packed.placement))
    regret = regret_insertion(instance, window=config.regret_window, num_targets=config.num_targets)
    if regret is not None:
        found.append(("regret", regret))
    balanced = memory_balanced(instance, node_limit=config.search_nodes)
    if balanced is not None:
        found.append(("memory_balanced", balanced))
    distinct: list[tuple[str, Placement]] = []
    seen: set[tuple[int, ...]] = set()
    for name, placement in found:
        if placement.gpu_of not in seen:
            seen.add(placement.gpu_of)
            distinct.append((name, placement))
    return distinct


def select_best(instance: Instance, placements: Sequence[Placement]) -> Placement:
    """The placement with the smallest ``(peak, second peak, mean)`` KVPR (first one on ties)."""
    if not placements:
        raise KvoptError("select_best: no placements to choose from")
    scores = [score_placement(instance, p.gpu_of).key() for p in placements]
    return placements[min(range(len(placements)), key=scores.__getitem__)]


def _score(instance: Instance, placement: Placement) -> Score:
    return score_placement(instance, placement.gpu_of)


def first_valid(instance: Instance, placements: Sequence[Placement]) -> Placement | None:
    """The best-scoring placement that passes the exact memory check (float sums can be off by ulps)."""
    ranked = sorted(placements, key=lambda p: _score(instance, p).key())
    for placement in ranked:
        try:
            check_placement(instance, placement)
        except KvoptError:
            continue
        return placement
    return None


def pipeline(instance: Instance, config: PipelineConfig = PipelineConfig()) -> Placement:
    """Run the whole pipeline; raises ``KvoptError`` if no construction fits memory."""
    budgets = scaled_budgets(instance, config)
    candidates = construct_candidates(instance, config)
    if not candidates:
        raise no_placement("pipeline", "greedy, parametric, regret and memory-balanced packing all failed")
    improved = [local_search(instance, placement, max_iters=budgets.local_iters, num_targets=config.num_targets,
                             swap_width=config.swap_width)
                for _, placement in candidates]
    best = select_best(instance, improved)
    refined = refine_peak(instance, best, passes=budgets.refine_passes, top_k=config.refine_top_k,
                          num_targets=config.refine_targets)
    polished = local_search(instance, refined, max_iters=budgets.polish_iters, num_targets=config.num_targets,
                            swap_width=config.swap_width)
    repaired = descend_by_repair(instance, polished, rounds=config.repair_rounds, max_iters=budgets.repair_iters,
                                 num_targets=config.num_targets, first_step=config.repair_first_step,
                                 min_step=config.repair_min_step, max_bumps=config.repair_bumps,
                                 swap_width=config.swap_width)
    final = repaired
    if instance.num_models <= config.search_max_models:
        final = tighten_by_search(instance, repaired, node_limit=config.search_nodes, max_calls=config.search_calls)
    chosen = first_valid(instance, [final, repaired, polished, refined, best, *improved,
                                    *(p for _, p in candidates)])
    if chosen is None:
        raise no_placement("pipeline", "every candidate overflowed a GPU in exact arithmetic")
    return chosen
