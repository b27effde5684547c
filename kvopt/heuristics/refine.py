"""refine_peak: donation-first moves off the worst GPU that lower the global peak.

Each pass looks at the worst GPU ``w`` (peak ``P``) and a short list of its
models: the ``top_k // 2`` with the largest demand ``n_i`` and the largest
models by size ``s_i`` to make ``top_k`` in all (a big demand relieves the
numerator, a big size frees the denominator).  Each is tried as a *donation* to one
of the ``num_targets`` least-loaded GPUs; the new global peak is
``max(KVPR_w', KVPR_t', max of the untouched GPUs)``, and the donation with the
lowest new peak is applied if that is below ``P``.  Only when no donation helps are
swaps with the models on those targets tried.  A pass that finds nothing ends
the refinement; at most ``passes`` changes are made.
"""

from __future__ import annotations

from kvopt.evaluate import kvpr
from kvopt.heuristics.local_search import Change, acceptance_threshold, apply_change
from kvopt.heuristics.state import LoadState
from kvopt.model import Instance, Placement


def candidate_models(state: LoadState, gpu: int, top_k: int) -> list[int]:
    """Up to ``top_k`` models of ``gpu``: the largest demands first, then the largest sizes."""
    members = state.members[gpu]
    by_demand = sorted(members, key=lambda m: (-state.demands[m], m))[:max(1, top_k // 2)]
    chosen = list(by_demand)
    for model in sorted(members, key=lambda m: (-state.sizes[m], m)):
        if len(chosen) >= top_k:
            break
        if model not in chosen:
            chosen.append(model)
    return chosen


def _peak_outside(state: LoadState, top: list[int], worst: int, target: int) -> float:
    """Largest KVPR among the GPUs other than ``worst`` and ``target`` (``top``: the 3 largest)."""
    for gpu in top:
        if gpu != worst and gpu != target:
            return state.gpu_kvpr[gpu]
    return 0.0


def best_donation(state: LoadState, worst: int, models: list[int], targets: list[int],
                  top: list[int], threshold: float) -> Change | None:
    """The move of one of ``models`` to a target with the lowest new global peak below ``threshold``."""
    src_free = state.capacities[worst] - state.used_mem[worst]
    best: Change | None = None
    best_value = threshold
    for model in models:
        size, load = state.sizes[model], state.demands[model]
        src_after = kvpr(state.demand[worst] - load, src_free + size)
        for gpu in targets:
            if not state.fits(model, gpu):
                continue
            value = max(src_after, state.kvpr_after(gpu, load, size), _peak_outside(state, top, worst, gpu))
            if value < best_value:
                best_value = value
                best = Change(value, model, gpu)
    return best


def best_exchange(state: LoadState, worst: int, models: list[int], targets: list[int],
                  top: list[int], threshold: float) -> Change | None:
    """The swap of one of ``models`` with a model on a target with the lowest new global peak."""
    best: Change | None = None
    best_value = threshold
    for model in models:
        size, load = state.sizes[model], state.demands[model]
        for gpu in targets:
            outside = _peak_outside(state, top, worst, gpu)
            if outside >= best_value:
                continue
            for other in state.members[gpu]:
                if not state.fits_swap(model, other):
                    continue
                delta_size = state.sizes[other] - size
                delta_load = state.demands[other] - load
                value = max(state.kvpr_after(worst, delta_load, delta_size),
                            state.kvpr_after(gpu, -delta_load, -delta_size), outside)
                if value < best_value:
                    best_value = value
                    best = Change(value, model, gpu, other)
    return best


def refine_state(state: LoadState, *, passes: int, top_k: int, num_targets: int) -> int:
    """Apply up to ``passes`` peak-lowering donations (or swaps) in place; return how many."""
    for done in range(passes):
        top = state.largest_kvpr(3)
        worst = top[0]
        peak = state.gpu_kvpr[worst]
        if peak <= 0.0 or not state.members[worst]:
            return done
        threshold = acceptance_threshold(peak)
        models = candidate_models(state, worst, top_k)
        targets = state.least_loaded(num_targets, exclude=(worst,))
        change = best_donation(state, worst, models, targets, top, threshold)
        if change is None:
            change = best_exchange(state, worst, models, targets, top, threshold)
        if change is None:
            return done
        apply_change(state, change)
    return passes


def refine_peak(instance: Instance, placement: Placement, *, passes: int = 4, top_k: int = 12,
                num_targets: int = 4) -> Placement:
    """Lower the peak by donating high-demand or large models off the worst GPU (peak never rises)."""
    state = LoadState(instance, placement.gpu_of)
    refine_state(state, passes=passes, top_k=top_k, num_targets=num_targets)
    return state.placement()
