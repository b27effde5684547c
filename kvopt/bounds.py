"""Lower bounds on the optimal peak KVPR, as exact ``Fraction`` values.

Notation: ``n_i`` demand and ``s_i`` size of model ``i``; ``C_g`` capacity of GPU
``g`` (``C_max`` the largest); ``G`` GPUs.  A placement has peak ``<= T`` iff every
GPU satisfies ``N_g <= T·(C_g - S_g)`` (with ``S_g <= C_g``), i.e. iff every GPU
load satisfies the *row* ``sum_{i on g} w_i(T) <= T·C_g`` with ``w_i(T) = n_i + T·s_i``
(``kvopt.scaling`` gives the same rows in integers).  Every bound here is an
argument that no placement has peak ``< B`` (or ``<= B``), so ``B <= optimum``.

* ``mediant_bound``: ``sum n / (sum C - sum s)``.  Summing the rows over all GPUs
  gives ``sum n <= T·(sum C - sum s)`` for any placement of peak ``T``.
* ``single_model_bound``: ``max_i n_i / (C_max - s_i)``: the GPU of model ``i``
  has ``N_g >= n_i`` and ``C_g - S_g <= C_max - s_i``.
* ``relaxation_bound`` (the LP relaxation of the assignment model with the
  variables ``x_ig`` fixed to 0 when model ``i`` alone breaks the row of GPU ``g``):
  for a capacity level ``c`` let ``H`` be the GPUs with ``C_g >= c`` and ``R(T)``
  the models that do not fit alone at ``T`` on any GPU below ``c``.  Those models
  are all on ``H``, so ``sum_{R} w_i(T) <= T·sum_{H} C_g``; when that fails for
  some level, no placement has peak ``<= T``.  (The allowed GPU sets are nested,
  so these level inequalities are exactly Hall's condition of the fractional
  assignment: this *is* the LP relaxation's feasibility.)  With all GPUs as the
  level it is the mediant bound; a model fitting no GPU alone gives the single bound.
* ``pigeonhole_bound`` (``pair_bound`` is ``k = 1``, ``triplet_bound`` ``k = 2``):
  take ``h`` GPUs of a level ``H`` and ``k·h + 1`` models of ``R(T)``; by the
  pigeonhole principle some GPU of ``H`` holds ``k + 1`` of them, ``P``, and its
  peak is at least ``kvpr(P) = sum_P n / (C_max - sum_P s)``.  So if *no*
  ``(k+1)``-subset of the chosen models fits one GPU at ``T``, no placement has
  peak ``<= T``.  The best choice of the ``k·h + 1`` models at a given ``T`` is the
  ``k·h + 1`` largest weights ``w_i(T)``: the cheapest ``(k+1)``-subset of a set
  is its ``k + 1`` smallest weights, and taking the largest weights maximises
  each order statistic.  For ``k = 1`` this is the classic "of the ``G + 1``
  heaviest models two share a GPU" argument, optimised over the choice of models.

The last two arguments are checks at a given ``T`` that are monotone in ``T``
(``w_i(T)/T = n_i/T + s_i`` decreases with ``T``); the bound is the supremum of the
``T`` at which they prove infeasibility.  ``_raise_bound`` finds it exactly in
most cases: from a proven value ``T`` it jumps to the KVPR of the set that binds
at ``T`` (a Newton step; at the supremum the binding set's KVPR equals it) and
accepts the jump only if the argument proves it (*strict* check: no placement
with peak ``< T'``, so ``optimum >= T'``), else bisects.  Every returned value is
proven by an exact integer check, never by floating point.

**Infinite optimum.**  When every placement leaves some GPU with demand and no
free memory, the optimum is ``+inf``; a bound that proves this returns
``math.inf`` (kvopt's one encoding of +inf; every bound is a ``Fraction`` or
``math.inf``).  Any finite peak is at most ``finite_peak_ceiling = sum n · M``: free
memory is a multiple of ``1/M`` (``M`` the memory scale of ``kvopt.scaling``), so
``C_g - S_g >= 1/M``; proving that no placement has peak ``<= finite_peak_ceiling``
proves the infinite optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from kvopt.scaling import IntegerData, integer_data
from kvopt.model import ExactValue, Instance

ZERO = Fraction(0)

# Limits of the exact bound search (each step is one O(m log m) integer check).
NEWTON_ROUNDS = 12
BISECTION_STEPS = 24
MAX_PIGEONHOLE_K = 64


# -- infinity ------------------------------------------------------------------------
def finite_peak_ceiling(instance: Instance) -> Fraction:
    """``sum n · M``: no placement has a finite peak above this (see the module docstring)."""
    data = integer_data(instance)
    return Fraction(sum(data.demand_int) * data.mem_scale, data.demand_scale)


def is_infinite_bound(bound: ExactValue) -> bool:
    """Whether ``bound`` proves the optimum is ``+inf``."""
    return bound == math.inf


# -- closed-form bounds ------------------------------------------------------------------
def mediant_bound(instance: Instance) -> ExactValue:
    """``sum_i n_i / (sum_g C_g - sum_i s_i)``.

    For a placement of peak ``T``: ``N_g <= T·(C_g - S_g)`` on every GPU (also when
    ``N_g = 0``, as ``S_g <= C_g``); summing, ``sum n <= T·(sum C - sum s)``.  When the
    weights fill the memory exactly and there is demand, every GPU is full and one
    carries demand: infinite optimum.
    """
    total_demand = sum(instance.demands_exact, ZERO)
    if total_demand == 0:
        return ZERO
    free_mem = sum(instance.capacities_exact, ZERO) - sum(instance.sizes_exact, ZERO)
    if free_mem <= 0:
        return math.inf
    return total_demand / free_mem


def single_model_bound(instance: Instance) -> ExactValue:
    """``max_i n_i / (C_max - s_i)``.

    The GPU ``g`` of model ``i`` has ``N_g >= n_i`` and ``C_g - S_g <= C_max - s_i``.
    A model with demand that fills the largest GPU alone forces an infinite peak.
    """
    largest = max(instance.capacities_exact)
    best = ZERO
    for demand, size in zip(instance.demands_exact, instance.sizes_exact):
        if demand == 0:
            continue
        if size >= largest:
            return math.inf
        best = max(best, demand / (largest - size))
    return best


def simple_lower_bound(instance: Instance) -> ExactValue:
    """``max(mediant_bound, single_model_bound)``."""
    return max(mediant_bound(instance), single_model_bound(instance))


# -- the capacity-level arguments (integer checks at a target T) -----------------------
@dataclass(frozen=True)
class CapacityLevel:
    """GPUs with capacity ``>= cap_int`` (``num_gpus`` of them, ``total_cap_int`` in all).

    ``below_cap_int`` is the next smaller capacity (``None`` for the smallest
    level): the models that fit no GPU of that capacity alone must be on this level.
    """

    cap_int: int
    num_gpus: int
    total_cap_int: int
    below_cap_int: int | None


def capacity_levels(data: IntegerData) -> tuple[CapacityLevel, ...]:
    """One level per distinct capacity, largest capacity first."""
    caps = sorted(set(data.cap_int), reverse=True)
    levels = []
    for k, cap in enumerate(caps):
        members = [c for c in data.cap_int if c >= cap]
        below = caps[k + 1] if k + 1 < len(caps) else None
        levels.append(CapacityLevel(cap, len(members), sum(members), below))
    return tuple(levels)


@dataclass(frozen=True)
class Arguments:
    """Which arguments a check may use: the LP relaxation, and pigeonhole with these ``k``."""

    relaxation: bool = True
    pigeonhole_ks: tuple[int, ...] = tuple(range(1, MAX_PIGEONHOLE_K + 1))


ALL_ARGUMENTS = Arguments()


@dataclass(frozen=True)
class _LevelModels:
    """The models forced onto a level at ``T``, heaviest first, as plain integers."""

    level: CapacityLevel
    models: tuple[int, ...]
    weight: tuple[int, ...]
    has_demand: tuple[bool, ...]


def _row_cap(data: IntegerData, target: Fraction, cap_int: int) -> int:
    """Right-hand side ``p·L·cint`` of the row of a GPU with capacity ``cap_int / M``."""
    return target.numerator * data.demand_scale * cap_int


def _weights(data: IntegerData, target: Fraction) -> list[int]:
    """``w_i = q·M·nint_i + p·L·sint_i``: the integer row weights of ``kvopt.scaling``."""
    p, q = target.numerator, target.denominator
    return [q * data.mem_scale * n + p * data.demand_scale * s for n, s in zip(data.demand_int, data.size_int)]


def _fits(load: int, has_demand: bool, row_cap: int, strict: bool) -> bool:
    """The (strict) row: a load with demand needs ``<= cap - 1`` when strict."""
    return load <= row_cap - (1 if strict and has_demand else 0)


def _forced_models(data: IntegerData, weights: Sequence[int], target: Fraction, strict: bool,
                   level: CapacityLevel) -> _LevelModels:
    """Models that fit no GPU below ``level`` alone (all models for the smallest level)."""
    if level.below_cap_int is None:
        forced = list(range(len(weights)))
    else:
        below = _row_cap(data, target, level.below_cap_int)
        forced = [i for i, w in enumerate(weights) if not _fits(w, data.demand_int[i] > 0, below, strict)]
    forced.sort(key=lambda i: (-weights[i], i))
    return _LevelModels(level, tuple(forced), tuple(weights[i] for i in forced),
                        tuple(data.demand_int[i] > 0 for i in forced))


def _relaxation_fails(data: IntegerData, lm: _LevelModels, target: Fraction, strict: bool) -> bool:
    """``sum_R w > sum_H rowcap`` (minus 1 when strict and R carries demand: one GPU has demand)."""
    total_cap = _row_cap(data, target, lm.level.total_cap_int)
    return not _fits(sum(lm.weight), any(lm.has_demand), total_cap, strict)


def _pigeonhole_fails(data: IntegerData, lm: _LevelModels, target: Fraction, strict: bool, k: int,
                      largest_cap_int: int) -> bool:
    """No ``(k+1)``-subset of the ``k·h + 1`` heaviest forced models fits one GPU.

    The cheapest subset is the ``k + 1`` lightest of them; in the strict case a
    subset without demand may use the full row, so the lightest demand-free
    ``k + 1`` are checked too.
    """
    size = k * lm.level.num_gpus + 1
    if len(lm.models) < size:
        return False
    chosen = range(size - (k + 1), size)
    row_cap = _row_cap(data, target, largest_cap_int)
    lightest = sum(lm.weight[j] for j in chosen)
    if lightest <= row_cap - (1 if strict else 0):
        return False
    if strict:
        idle = [lm.weight[j] for j in range(size) if not lm.has_demand[j]]
        if len(idle) >= k + 1 and sum(idle[-(k + 1):]) <= row_cap:
            return False
    return True


def _level_models(data: IntegerData, target: Fraction, strict: bool) -> list[_LevelModels]:
    weights = _weights(data, target)
    return [_forced_models(data, weights, target, strict, level) for level in capacity_levels(data)]


def _useful_ks(lm: _LevelModels, args: Arguments) -> list[int]:
    """The pigeonhole ``k`` that can apply: ``k·h + 1`` forced models must exist."""
    top = (len(lm.models) - 1) // lm.level.num_gpus
    return [k for k in args.pigeonhole_ks if 1 <= k <= top]


def infeasibility_argument(instance: Instance, target: Fraction, strict: bool = False,
                           args: Arguments = ALL_ARGUMENTS) -> str | None:
    """Name of a cheap argument proving that no placement has peak ``<= target`` (``< target`` if strict).

    ``None`` when none of the arguments applies (which proves nothing).  A
    ``strict`` proof shows ``optimum >= target``; a non-strict one ``optimum > target``.
    """
    return _argument_at(integer_data(instance), Fraction(target), strict, args)


def _argument_at(data: IntegerData, target: Fraction, strict: bool, args: Arguments) -> str | None:
    if target <= 0:
        # No peak is negative; peak 0 needs every model to be without demand.
        if target < 0 or strict:
            return "negative target" if target < 0 else "peak >= 0"
        return "positive demand" if any(n > 0 for n in data.demand_int) else None
    largest = max(data.cap_int)
    if _single_fails(data, target, strict, largest):
        return "single model"
    for lm in _level_models(data, target, strict):
        if args.relaxation and _relaxation_fails(data, lm, target, strict):
            return f"relaxation(level {lm.level.num_gpus} GPUs)"
        for k in _useful_ks(lm, args):
            if _pigeonhole_fails(data, lm, target, strict, k, largest):
                return f"pigeonhole(k={k}, level {lm.level.num_gpus} GPUs)"
    return None


def _single_fails(data: IntegerData, target: Fraction, strict: bool, largest_cap_int: int) -> bool:
    """Some model fits no GPU alone at ``target``."""
    row_cap = _row_cap(data, target, largest_cap_int)
    return any(not _fits(w, data.demand_int[i] > 0, row_cap, strict)
               for i, w in enumerate(_weights(data, target)))


def lp_relaxation_feasible(instance: Instance, target: Fraction, strict: bool = False) -> bool:
    """Whether the LP relaxation of the assignment model at ``target`` is feasible (exact).

    Relaxation: ``0 <= x_ig <= 1``, ``sum_g x_ig = 1``, rows ``sum_i w_i x_ig <= T·C_g``,
    with ``x_ig = 0`` fixed when model ``i`` alone breaks GPU ``g``'s row.  With
    nested allowed sets this is feasible iff every capacity level passes the
    ``relaxation`` check and every model fits some GPU alone.  ``False`` proves
    that no placement has peak ``<= target`` (``< target`` if strict).
    """
    return infeasibility_argument(instance, target, strict, Arguments(relaxation=True, pigeonhole_ks=())) is None


# -- candidate values: the KVPR of the set that binds at T ------------------------------
def _set_kvpr(data: IntegerData, models: Sequence[int], total_cap_int: int) -> Fraction | None:
    """``sum n / (C - sum s)`` of ``models`` on memory ``total_cap_int / M``; ``None`` if no free memory."""
    free_int = total_cap_int - sum(data.size_int[i] for i in models)
    if free_int <= 0:
        return None
    return Fraction(sum(data.demand_int[i] for i in models) * data.mem_scale, data.demand_scale * free_int)


def _candidates(data: IntegerData, target: Fraction, args: Arguments) -> list[Fraction]:
    """KVPR of each argument's binding set at ``target`` (the Newton step of ``_raise_bound``)."""
    out = []
    largest = max(data.cap_int)
    for lm in _level_models(data, target, False):
        if args.relaxation:
            out.append(_set_kvpr(data, lm.models, lm.level.total_cap_int))
        for k in _useful_ks(lm, args):
            size = k * lm.level.num_gpus + 1
            out.append(_set_kvpr(data, lm.models[size - (k + 1):size], largest))
    return [c for c in out if c is not None]


def _proves(data: IntegerData, target: Fraction, strict: bool, args: Arguments) -> bool:
    return _argument_at(data, target, strict, args) is not None


def _raise_bound(data: IntegerData, start: Fraction, args: Arguments) -> Fraction:
    """The largest ``T >= start`` the arguments prove (``optimum >= T``); ``start`` must be a valid bound.

    Newton steps to the binding set's KVPR, each accepted only with a strict
    proof; an overshooting step is replaced by bisection with non-strict proofs.
    """
    lower = start
    for _ in range(NEWTON_ROUNDS):
        jumps = [c for c in _candidates(data, lower, args) if c > lower]
        if not jumps:
            break
        step = max(jumps)
        if _proves(data, step, True, args):
            lower = step
            continue
        improved = _bisect_proven(data, lower, step, args)
        if improved == lower:
            break
        lower = improved
    return lower


def _bisect_proven(data: IntegerData, lower: Fraction, upper: Fraction, args: Arguments) -> Fraction:
    """Bisect ``(lower, upper)``: a midpoint with a non-strict proof (``optimum > mid``) raises ``lower``."""
    for _ in range(BISECTION_STEPS):
        mid = simple_fraction_between(lower, upper)
        if mid is None:
            break
        if _proves(data, mid, False, args):
            lower = mid
        else:
            upper = mid
    return lower


def simple_fraction_between(lower: Fraction, upper: Fraction) -> Fraction | None:
    """A fraction with a small denominator strictly inside ``(lower, upper)``, near the midpoint.

    Small denominators keep the integer rows short.  ``None`` if ``lower >= upper``.
    """
    if lower >= upper:
        return None
    mid = (lower + upper) / 2
    width = upper - lower
    # Denominators up to ~8/width leave room for a fraction within width/4 of the midpoint.
    bound = max(1, int(8 / width) + 1)
    while True:
        candidate = mid.limit_denominator(bound)
        if lower < candidate < upper:
            return candidate
        if bound > mid.denominator:
            return mid
        bound *= 4


def _argument_bound(instance: Instance, args: Arguments) -> ExactValue:
    """``max(simple_lower_bound, sup of T the arguments prove)``; infinite when they prove it."""
    base = simple_lower_bound(instance)
    if base == 0 or is_infinite_bound(base):
        return base
    data = integer_data(instance)
    if _proves(data, finite_peak_ceiling(instance), False, args):
        return math.inf
    return _raise_bound(data, base, args)


def relaxation_bound(instance: Instance) -> ExactValue:
    """The smallest ``T`` at which the LP relaxation (``lp_relaxation_feasible``) holds, at least the simple bound."""
    return _argument_bound(instance, Arguments(relaxation=True, pigeonhole_ks=()))


def pigeonhole_bound(instance: Instance, k: int = 1) -> ExactValue:
    """Pigeonhole with ``k + 1`` models per GPU (see the module docstring), at least the simple bound."""
    return _argument_bound(instance, Arguments(relaxation=False, pigeonhole_ks=(k,)))


def pair_bound(instance: Instance) -> ExactValue:
    """Of the ``h·1 + 1`` heaviest models forced onto ``h`` GPUs two share a GPU (``k = 1``)."""
    return pigeonhole_bound(instance, 1)


def triplet_bound(instance: Instance) -> ExactValue:
    """Of the ``2h + 1`` heaviest models forced onto ``h`` GPUs three share a GPU (``k = 2``)."""
    return pigeonhole_bound(instance, 2)


def root_lower_bound(instance: Instance) -> ExactValue:
    """The best cheap bound: mediant, single model, LP relaxation and pigeonhole (all ``k``) together.

    The arguments are combined at every ``T`` (any one proving infeasibility is
    enough), so the supremum searched for is at least each separate bound's; the
    search (``_raise_bound``) reaches it exactly or up to its bisection precision.
    """
    return _argument_bound(instance, ALL_ARGUMENTS)


__all__ = [
    "Arguments", "CapacityLevel", "capacity_levels", "finite_peak_ceiling", "infeasibility_argument",
    "is_infinite_bound", "lp_relaxation_feasible", "mediant_bound", "pair_bound",
    "pigeonhole_bound", "relaxation_bound", "root_lower_bound", "simple_fraction_between",
    "simple_lower_bound", "single_model_bound", "triplet_bound",
]
