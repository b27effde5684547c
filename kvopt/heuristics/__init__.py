"""Heuristic placements: Prism's greedy and the multi-stage pipeline.

``HEURISTICS`` maps a method name to ``instance -> Placement``; ``run_heuristic``
wraps one in a ``Result`` whose numbers come from ``kvopt.evaluate.evaluate``.
"""

from __future__ import annotations

import time
from typing import Callable

from kvopt.evaluate import evaluate
from kvopt.heuristics.greedy import greedy
from kvopt.heuristics.pipeline import PipelineConfig, pipeline
from kvopt.heuristics.state import no_placement
from kvopt.model import Instance, KvoptError, Placement, PlacementError, Result


def _pipeline_default(instance: Instance) -> Placement:
    return pipeline(instance)


HEURISTICS: dict[str, Callable[[Instance], Placement]] = {
    "greedy": greedy,
    "pipeline": _pipeline_default,
}


def run_heuristic(name: str, instance: Instance) -> Result:
    """Run heuristic ``name`` on ``instance`` and evaluate its placement (exact peak included).

    ``seconds`` is the heuristic's own wall time (``time.perf_counter``), evaluation excluded.
    Raises ``KvoptError`` for an unknown name or when no memory-feasible placement was found.
    """
    if name not in HEURISTICS:
        raise KvoptError(f"unknown heuristic {name!r}; known heuristics: {', '.join(sorted(HEURISTICS))}")
    start = time.perf_counter()
    placement = HEURISTICS[name](instance)
    seconds = time.perf_counter() - start
    try:
        evaluation = evaluate(instance, placement)
    except PlacementError as exc:
        # Never hand out an invalid placement.
        raise no_placement(name, str(exc)) from None
    return Result(
        instance=instance.name,
        method=name,
        status="feasible",
        placement=placement,
        peak_kvpr=evaluation.peak_kvpr,
        peak_kvpr_exact=evaluation.peak_kvpr_exact,
        lower_bound=None,
        seconds=seconds,
    )


__all__ = ["HEURISTICS", "PipelineConfig", "greedy", "pipeline", "run_heuristic"]
