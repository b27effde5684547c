"""The fitness of a program for an evolution loop: one bounded, monotone number from its gaps.

Per case (a record of role ``method``, gaps attached by ``kvopt.bench.scoring``)::

    case_score = 1 / (1 + max(gap, 0) / TAU)      for a valid case with a finite gap
    case_score = 0                                for an invalid case, or an infinite gap

with ``TAU = 1 %``: a case at the proven optimum scores 1, 0.1 % above it 0.909,
1 % above 0.5, 10 % above 0.091.  ``combined_score`` is the mean over the cases
run (skipped cases — heterogeneous GPUs for a program without ``gpu_mem`` — are
not records and do not count).  So the score is in [0, 1], decreases
monotonically in every gap, an invalid case counts as the worst possible
placement (never rewarded), and a program that crashes or times out on every
case scores 0.  ``TAU`` is small on purpose: once the ADRS cases are saturated
(many programs reach the optimum there), programs still differ by tenths of a
percent on the hard families, and the score keeps them apart there.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

TAU = 0.01


def case_score(record: Mapping[str, Any]) -> float:
    """The score of one case (see the module docstring)."""
    gap = record.get("gap")
    if not record.get("valid") or gap is None or not math.isfinite(float(gap)):
        return 0.0
    return 1.0 / (1.0 + max(float(gap), 0.0) / TAU)


def combined_score(records: Sequence[Mapping[str, Any]]) -> float:
    """Mean ``case_score`` over the method records given (0 for none)."""
    chosen = [r for r in records if r.get("role", "method") == "method"]
    return sum(case_score(r) for r in chosen) / len(chosen) if chosen else 0.0
