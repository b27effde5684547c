"""The one start placement every exact method and the LNS begin from.

``start_placement`` takes a given warm start (checked), else the ``pipeline``
heuristic's placement, else ``first_fit_start`` (memory only); ``None`` when all
of them fail, which proves nothing — the exact methods then ask a backend for a
memory-feasible packing, or for a proof that none exists.
"""

from __future__ import annotations

from typing import Sequence

from kvopt.evaluate import check_placement
from kvopt.heuristics.pipeline import pipeline
from kvopt.heuristics.state import NoPlacementError
from kvopt.model import Instance, Placement


def first_fit_start(instance: Instance) -> tuple[int, ...] | None:
    """Largest model first onto the GPU with the most free memory (exact sizes); ``None`` if that fails."""
    free = list(instance.capacities_exact)
    gpu_of = [0] * instance.num_models
    for i in sorted(range(instance.num_models), key=lambda i: (-instance.sizes_exact[i], i)):
        gpu = max(range(instance.num_gpus), key=lambda g: (free[g], -g))
        if instance.sizes_exact[i] > free[gpu]:
            return None
        free[gpu] -= instance.sizes_exact[i]
        gpu_of[i] = gpu
    return tuple(gpu_of)


def start_placement(instance: Instance, warm_start: Placement | Sequence[int] | None = None
                    ) -> tuple[tuple[int, ...] | None, str]:
    """``(gpu_of, source)``: the warm start (``PlacementError`` if invalid), the pipeline's, first fit, or ``None``."""
    if warm_start is not None:
        return check_placement(instance, warm_start), "warm_start"
    try:
        return check_placement(instance, pipeline(instance)), "pipeline"
    except NoPlacementError:
        pass
    found = first_fit_start(instance)
    return (found, "first_fit") if found is not None else (None, "none")
