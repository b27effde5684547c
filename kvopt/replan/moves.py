"""Moves between the current placement and a new one: their cost, the budget, and its integer row.

A model with a current GPU ``cur(i)`` is *moved* when its new GPU differs; a new
model (no current GPU) is placed for free.  The cost of a move is 1 (``count``)
or the model's size in GB (``size``: the weights reloaded).  A budget bounds the
total: ``sum_i cost_i · [g(i) != cur(i)] <= B``.  For the exact backends the
budget becomes the integer row ``MoveBudget`` (sizes scaled by the instance's
memory scale, so GB budgets are exact too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from kvopt.exact.backend import MoveBudget
from kvopt.model import Instance, KvoptError, to_fraction
from kvopt.scaling import integer_data

MOVE_COSTS = ("count", "size")


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` of move cost, in ``cost`` units (``count``: moves, ``size``: GB)."""

    cost: str
    limit: Fraction

    def describe(self) -> str:
        unit = "moves" if self.cost == "count" else "GB moved"
        return f"<= {_fmt(self.limit)} {unit}"


def _fmt(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def make_budget(*, max_moves: Any = None, max_moved_gb: Any = None, move_cost: str = "count") -> Budget | None:
    """Validate the budget options (``None``: no budget).  ``max_moved_gb`` implies ``size`` cost.

    A move count must be a non-negative integer and a GB budget a non-negative
    finite number; ``--move-cost size`` with ``--max-moves`` is contradictory.
    """
    if move_cost not in MOVE_COSTS:
        raise KvoptError(f"--move-cost: expected one of {', '.join(MOVE_COSTS)}, got {move_cost!r}")
    if max_moves is not None and max_moved_gb is not None:
        raise KvoptError("give one budget: --max-moves or --max-moved-gb, not both")
    if max_moves is not None:
        if isinstance(max_moves, bool) or not isinstance(max_moves, int) or max_moves < 0:
            raise KvoptError(f"--max-moves: must be a non-negative integer, got {max_moves!r}")
        if move_cost == "size":
            raise KvoptError("--max-moves counts moves; with --move-cost size give --max-moved-gb instead")
        return Budget("count", Fraction(max_moves))
    if max_moved_gb is not None:
        if isinstance(max_moved_gb, bool) or not isinstance(max_moved_gb, (int, float, Fraction)) \
                or not math.isfinite(float(max_moved_gb)) or max_moved_gb < 0:
            raise KvoptError(f"--max-moved-gb: must be a non-negative number of GB, got {max_moved_gb!r}")
        return Budget("size", to_fraction(max_moved_gb))
    return None


def parse_budget_option(text: str, option: str, integer: bool) -> int | float:
    """A budget option given as text (``--max-moves 2``, ``--max-moved-gb 40``): non-negative, finite,
    an integer when ``integer``; ``KvoptError`` naming the option otherwise."""
    kind = "integer" if integer else "number of GB"
    try:
        value: int | float = int(text) if integer else float(text)
    except ValueError:
        raise KvoptError(f"{option}: must be a non-negative {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise KvoptError(f"{option}: must be a non-negative {kind}, got {text!r}")
    return value


def require_current(instance: Instance) -> None:
    if not instance.has_current:
        raise KvoptError(f"instance {instance.name!r}: no model has a field 'current_gpu' "
                         "(re-placement needs the current placement)")


@dataclass(frozen=True)
class Move:
    """Model ``model`` goes from GPU ``source`` to GPU ``target``."""

    model: str
    source: int
    target: int
    size_gb: float

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "from": self.source, "to": self.target, "size_gb": self.size_gb}


def moves_between(instance: Instance, gpu_of: Sequence[int]) -> list[Move]:
    """The models whose GPU differs from their current one (new models are not moves)."""
    return [Move(m.name, m.current_gpu, int(g), m.size_gb)
            for m, g in zip(instance.models, gpu_of) if m.current_gpu is not None and m.current_gpu != g]


def move_cost(instance: Instance, gpu_of: Sequence[int], cost: str) -> Fraction:
    """Total cost of the moves (exact): their number, or their size in GB."""
    moved = [i for i, (m, g) in enumerate(zip(instance.models, gpu_of))
             if m.current_gpu is not None and m.current_gpu != g]
    if cost == "count":
        return Fraction(len(moved))
    return sum((instance.sizes_exact[i] for i in moved), Fraction(0))


def within_budget(instance: Instance, gpu_of: Sequence[int], budget: Budget | None) -> bool:
    return budget is None or move_cost(instance, gpu_of, budget.cost) <= budget.limit


def cost_vector(instance: Instance, cost: str) -> list[float]:
    """Float cost of moving each model (for the heuristics)."""
    return [1.0 if cost == "count" else m.size_gb for m in instance.models]


def budget_row(instance: Instance, budget: Budget) -> MoveBudget:
    """The budget as an integer row: counts as they are, GB scaled by the memory scale ``M`` (floor of ``B·M``)."""
    current = instance.current_gpu_of
    if budget.cost == "count":
        return MoveBudget(current, tuple(1 for _ in current), math.floor(budget.limit))
    data = integer_data(instance)
    return MoveBudget(current, data.size_int, math.floor(budget.limit * data.mem_scale))


def align_to_current(instance: Instance, gpu_of: Sequence[int]) -> tuple[int, ...]:
    """Relabel GPUs of equal capacity so that as many models as possible stay where they are.

    A placement computed from scratch names GPUs arbitrarily; interchangeable
    GPUs (same capacity) are matched to the current ones greedily by the number
    of models they share (largest overlap first).  The peak is unchanged.
    """
    groups: dict[Fraction, list[int]] = {}
    for g, cap in enumerate(instance.capacities_exact):
        groups.setdefault(cap, []).append(g)
    relabel: dict[int, int] = {}
    for members in groups.values():
        overlap = {(new, old): 0 for new in members for old in members}
        for m, g in zip(instance.models, gpu_of):
            if g in members and m.current_gpu in members:
                overlap[g, m.current_gpu] += 1
        free_new, free_old = set(members), set(members)
        for (new, old), count in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
            if new in free_new and old in free_old:
                relabel[new] = old
                free_new.discard(new)
                free_old.discard(old)
    return tuple(relabel.get(int(g), int(g)) for g in gpu_of)
