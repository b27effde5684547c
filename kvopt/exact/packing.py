"""Two exact questions every method may need before it can optimise: does anything fit, and can the peak be finite?

* ``memory_packing``: a placement that fits in memory, or a proof that none
  exists.  With every demand set to 0 (``zero_demand_instance``) the target row
  at ``T = 1`` is the memory row, so the set-partitioning backend's exact search
  (MILP fallback) answers it.
* ``finite_peak_packing``: a placement with a finite peak, or a proof that every
  placement leaves a GPU with demand and no free memory (optimum ``+inf``): the
  query at ``kvopt.bounds.finite_peak_ceiling``, above which no finite peak exists.

Both answer with a ``FeasibilityAnswer``: ``infeasible`` is a proof, ``unknown`` is not.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from kvopt.bounds import finite_peak_ceiling
from kvopt.exact.backend import FeasibilityAnswer, FeasibilityQuery
from kvopt.exact.setpart import SetPartitionBackend
from kvopt.model import Instance, Model


def zero_demand_instance(instance: Instance) -> Instance:
    """The same models and GPUs with every request rate 0: its feasibility at any ``T`` is memory only."""
    models = [Model(m.name, m.size_gb, 0, m.slo) for m in instance.models]
    return Instance(instance.name, tuple(models), instance.gpu_mem_gb, dict(instance.meta))


def memory_packing(instance: Instance, *, time_limit_s: float, seed: int = 0) -> FeasibilityAnswer:
    """A memory-feasible placement (``feasible``), a proof that none exists (``infeasible``), or ``unknown``."""
    query = FeasibilityQuery(zero_demand_instance(instance), Fraction(1), time_limit_s=time_limit_s, seed=seed)
    return SetPartitionBackend().check(query)


def finite_peak_packing(instance: Instance, *, time_limit_s: float, hint: Sequence[int] | None = None,
                        seed: int = 0) -> FeasibilityAnswer:
    """A placement with a finite peak (``feasible``), a proof that the optimum is ``+inf`` (``infeasible``), or ``unknown``."""
    query = FeasibilityQuery(instance, finite_peak_ceiling(instance), hint=tuple(hint) if hint else None,
                             time_limit_s=time_limit_s, seed=seed)
    return SetPartitionBackend().check(query)
