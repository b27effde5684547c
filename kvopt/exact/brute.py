"""Brute-force optimum for tiny instances (tests): every assignment, exact ``Fraction`` arithmetic.

Deliberately independent of ``kvopt.evaluate`` and of the integer rows: it sums
``Fraction`` sizes and demands itself and computes ``KVPR_g = N_g / (C_g - S_g)``
(0 without demand, ``+inf`` with demand and no free memory), so tests can check
the solvers and the evaluator against it.

Symmetry reduction: GPUs of equal capacity are interchangeable, so within each
capacity group a model may go on a GPU already used by an earlier model or on
the *first* unused GPU of the group (every placement is a relabelling of one of
these).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from kvopt.model import ExactValue, Instance, KvoptError, to_fraction

MAX_ASSIGNMENTS = 2_000_000  # G^m above this is refused (use a real solver)


@dataclass(frozen=True)
class _Tiny:
    sizes: tuple[Fraction, ...]
    demands: tuple[Fraction, ...]
    caps: tuple[Fraction, ...]
    group_of: tuple[int, ...]  # capacity group of each GPU
    groups: tuple[tuple[int, ...], ...]


def _tiny(instance: Instance) -> _Tiny:
    sizes = tuple(to_fraction(m.size_gb) for m in instance.models)
    demands = tuple(to_fraction(m.req_rate) / to_fraction(m.slo) for m in instance.models)
    caps = tuple(to_fraction(c) for c in instance.gpu_mem_gb)
    index: dict[Fraction, int] = {}
    members: list[list[int]] = []
    group_of = []
    for g, c in enumerate(caps):
        if c not in index:
            index[c] = len(members)
            members.append([])
        members[index[c]].append(g)
        group_of.append(index[c])
    return _Tiny(sizes, demands, caps, tuple(group_of), tuple(tuple(m) for m in members))


def _kvpr(demand: Fraction, free: Fraction) -> ExactValue:
    """``demand / free``; ``math.inf`` for demand with no free memory."""
    if demand == 0:
        return Fraction(0)
    if free <= 0:
        return math.inf
    return demand / free


def brute_force_optimum(instance: Instance) -> tuple[ExactValue | None, tuple[int, ...] | None]:
    """``(optimal peak, a placement attaining it)`` by enumerating every assignment.

    Returns ``(None, None)`` if no placement fits in memory, ``(math.inf, placement)``
    if every placement has an infinite peak, else ``(peak, placement)``.  Raises
    ``KvoptError`` when ``G^m`` exceeds ``MAX_ASSIGNMENTS`` (meant for ≲ 8 models, ≲ 3 GPUs).
    """
    if instance.num_gpus ** instance.num_models > MAX_ASSIGNMENTS:
        raise KvoptError(f"instance {instance.name!r}: brute force needs <= {MAX_ASSIGNMENTS} assignments, "
                         f"{instance.num_gpus}^{instance.num_models} is too many")
    tiny = _tiny(instance)
    search = _Search(tiny)
    search.run(0, [0] * len(tiny.sizes))
    if search.best_gpu_of is None:
        return None, None
    return search.best_peak, search.best_gpu_of


class _Search:
    """Depth-first enumeration with running per-GPU sums; keeps the best (finite first) placement."""

    def __init__(self, tiny: _Tiny) -> None:
        self.tiny = tiny
        self.used = [Fraction(0)] * len(tiny.caps)
        self.demand = [Fraction(0)] * len(tiny.caps)
        self.count = [0] * len(tiny.caps)
        self.best_peak: ExactValue = math.inf
        self.best_gpu_of: tuple[int, ...] | None = None

    def run(self, model: int, gpu_of: list[int]) -> None:
        tiny = self.tiny
        if model == len(tiny.sizes):
            self._record(gpu_of)
            return
        for gpu in self._choices():
            if self.used[gpu] + tiny.sizes[model] > tiny.caps[gpu]:
                continue
            self._move(model, gpu, +1)
            gpu_of[model] = gpu
            self.run(model + 1, gpu_of)
            self._move(model, gpu, -1)

    def _choices(self) -> list[int]:
        """Used GPUs, plus the first unused GPU of each capacity group."""
        out = []
        for group in self.tiny.groups:
            fresh_taken = False
            for g in group:
                if self.count[g] > 0:
                    out.append(g)
                elif not fresh_taken:
                    out.append(g)
                    fresh_taken = True
        return out

    def _move(self, model: int, gpu: int, sign: int) -> None:
        self.used[gpu] += sign * self.tiny.sizes[model]
        self.demand[gpu] += sign * self.tiny.demands[model]
        self.count[gpu] += sign

    def _record(self, gpu_of: list[int]) -> None:
        values = [_kvpr(self.demand[g], self.tiny.caps[g] - self.used[g]) for g in range(len(self.tiny.caps))]
        peak = max(values)
        if self.best_gpu_of is None or peak < self.best_peak:
            self.best_peak = peak
            self.best_gpu_of = tuple(gpu_of)
