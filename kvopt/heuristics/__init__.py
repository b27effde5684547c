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
from kvopt.heuristics.state import NoPlacementError
from kvopt.model import Instance, KvoptError, Placement, PlacementError, Result


HEURISTICS: dict[str, Callable[..., Placement]] = {
    "greedy": lambda instance, config: greedy(instance),
    "pipeline": lambda instance, config: pipeline(instance, config or PipelineConfig()),
}


def run_heuristic(name: str, instance: Instance, *, config: PipelineConfig | None = None) -> Result:
    """Run heuristic ``name`` on ``instance`` and evaluate its placement (exact peak included).

    ``seconds`` is the heuristic's own wall time (``time.perf_counter``), evaluation excluded.
    No memory-feasible placement found: status ``unknown``, no placement, ``details["reason"]``
    (a heuristic proves nothing).  Raises ``KvoptError`` for an unknown name.
    """
    if name not in HEURISTICS:
        raise KvoptError(f"unknown heuristic {name!r}; known heuristics: {', '.join(sorted(HEURISTICS))}")
    start = time.perf_counter()
    try:
        placement = HEURISTICS[name](instance, config)
        seconds = time.perf_counter() - start
        evaluation = evaluate(instance, placement)  # never hand out an invalid placement
    except (NoPlacementError, PlacementError) as exc:
        return Result(instance.name, name, "unknown", None, None, seconds=time.perf_counter() - start,
                      details={"reason": str(exc)})
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
