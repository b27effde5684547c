"""Exact integer rows for the feasibility check at a rational target ``T = p/q``.

With ``n_i = nint_i / L`` (``L`` the LCM of the demands' denominators) and
``s_i = sint_i / M``, ``C_g = cint_g / M`` (``M`` the LCM of the sizes' and
capacities' denominators)::

    KVPR_g <= T  <=>  q·N_g <= p·(C_g - S_g)
                 <=>  sum_i x_ig (q·M·nint_i + p·L·sint_i) <= p·L·cint_g

Every coefficient is an integer, so a solver's answer is exact, and the strict
version ``KVPR_g < T`` is the same row with right-hand side ``p·L·cint_g - 1``
(for a GPU that carries demand; a GPU with zero demand has KVPR 0 < T whenever
its memory fits).  Float inputs are read as the decimal they print as
(``kvopt.model.to_fraction``): that is the documented precision of every proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import lcm
from typing import Sequence

from kvopt.model import Instance


@dataclass(frozen=True)
class IntegerData:
    """The instance in integers: ``n_i = demand_int[i] / demand_scale``, ``s_i = size_int[i] / mem_scale``."""

    demand_int: tuple[int, ...]
    size_int: tuple[int, ...]
    cap_int: tuple[int, ...]
    demand_scale: int
    mem_scale: int


def integer_data(instance: Instance) -> IntegerData:
    """Scale demands, sizes and capacities to integers (exactly)."""
    demands = instance.demands_exact
    sizes = instance.sizes_exact
    caps = instance.capacities_exact
    demand_scale = lcm(*(d.denominator for d in demands))
    mem_scale = lcm(*(x.denominator for x in (*sizes, *caps)))
    return IntegerData(
        demand_int=tuple(int(d * demand_scale) for d in demands),
        size_int=tuple(int(s * mem_scale) for s in sizes),
        cap_int=tuple(int(c * mem_scale) for c in caps),
        demand_scale=demand_scale,
        mem_scale=mem_scale,
    )


@dataclass(frozen=True)
class TargetRows:
    """Integer knapsack rows at target ``T``: ``sum_i weight[i] x_ig <= capacity[g]`` (minus 1 if strict).

    ``demand_weight[i] = q·M·nint_i`` and ``mem_weight[i] = p·L·sint_i`` are kept
    apart so a backend can tell loaded GPUs (demand > 0) from idle ones.
    """

    target: Fraction
    strict: bool
    weight: tuple[int, ...]
    demand_weight: tuple[int, ...]
    mem_weight: tuple[int, ...]
    capacity: tuple[int, ...]


def target_rows(data: IntegerData, target: Fraction, strict: bool = False) -> TargetRows:
    """Rows of ``KVPR_g <= T`` (or ``< T``) for ``T = p/q > 0``, all integers."""
    if target <= 0:
        raise ValueError(f"target must be > 0, got {target}")
    p, q = target.numerator, target.denominator
    demand_weight = tuple(q * data.mem_scale * n for n in data.demand_int)
    mem_weight = tuple(p * data.demand_scale * s for s in data.size_int)
    weight = tuple(a + b for a, b in zip(demand_weight, mem_weight))
    capacity = tuple(p * data.demand_scale * c for c in data.cap_int)
    return TargetRows(target, strict, weight, demand_weight, mem_weight, capacity)


def fits_target(rows: TargetRows, models: list[int] | tuple[int, ...], gpu: int) -> bool:
    """Whether the models ``models`` on GPU ``gpu`` satisfy the (strict) target row exactly."""
    if not models:
        return True
    load = sum(rows.weight[i] for i in models)
    has_demand = any(rows.demand_weight[i] > 0 for i in models)
    cap = rows.capacity[gpu]
    if rows.strict and has_demand:
        return load <= cap - 1
    # A GPU without demand only needs its memory to fit: sum p·L·sint <= p·L·cint.
    return load <= cap


def placement_fits_target(data: IntegerData, rows: TargetRows, gpu_of: Sequence[int]) -> bool:
    """Exact re-check of a placement (valid GPU indices assumed): memory and the (strict) target row per GPU."""
    loads: dict[int, list[int]] = {}
    for i, g in enumerate(gpu_of):
        loads.setdefault(g, []).append(i)
    for gpu, models in loads.items():
        if sum(data.size_int[i] for i in models) > data.cap_int[gpu]:
            return False
        if not fits_target(rows, models, gpu):
            return False
    return True


# -- equal GPUs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CapacityClass:
    """GPUs of equal capacity: ``cap_int`` (in ``1/mem_scale`` GB) and their indices, ascending."""

    cap_int: int
    gpus: tuple[int, ...]


def capacity_classes(data: IntegerData) -> tuple[CapacityClass, ...]:
    """Group GPUs by equal (exact) capacity, largest capacity first."""
    by_cap: dict[int, list[int]] = {}
    for gpu, cap in enumerate(data.cap_int):
        by_cap.setdefault(cap, []).append(gpu)
    return tuple(CapacityClass(cap, tuple(gpus)) for cap, gpus in sorted(by_cap.items(), reverse=True))


def canonical_placement(gpu_of: Sequence[int], groups: Sequence[Sequence[int]],
                        order: Sequence[int] | None = None) -> tuple[int, ...]:
    """Relabel equal GPUs so that, within each group, GPUs are used in the order of their first model.

    ``order`` is the model order that decides "first" (default: model index).
    The ``j``-th GPU of a group then holds the ``j``-th distinct group-GPU met in
    ``order``, empty GPUs last; peaks are unchanged because the GPUs are equal.
    This is the form the symmetry cuts of the assignment and McCormick models allow.
    """
    order = range(len(gpu_of)) if order is None else order
    relabel: dict[int, int] = {}
    for group in groups:
        members = set(group)
        first_seen: dict[int, int] = {}
        for rank, i in enumerate(order):
            g = gpu_of[i]
            if g in members and g not in first_seen:
                first_seen[g] = rank
        used = sorted(first_seen, key=first_seen.__getitem__)
        empty = [g for g in group if g not in first_seen]
        for new, old in zip(group, used + empty):
            relabel[old] = new
    return tuple(relabel.get(g, g) for g in gpu_of)
