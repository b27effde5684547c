"""Mutable working state shared by the heuristics: per-GPU sums kept incrementally.

For GPU ``g`` the state holds ``S_g = sum s_i`` (``used_mem``), ``N_g = sum n_i``
(``demand``), the models on it (``members``) and ``KVPR_g`` (``gpu_kvpr``, computed
by ``kvopt.evaluate.kvpr``).  A move or swap touches two GPUs and refreshes only
those (``O(models on the touched GPUs)``), never the whole placement.

Finding the worst GPU, the least-loaded GPUs and the roomiest GPUs is a plain scan
on small clusters and lazy heaps (``O(log G)`` per update) on large ones.

This module is internal to ``kvopt.heuristics``: the public stages take and
return immutable ``Placement`` objects and build a ``LoadState`` inside.
"""

from __future__ import annotations

import heapq
import math
from fractions import Fraction
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from kvopt.evaluate import gpu_loads, kvpr, kvpr_vector
from kvopt.model import Instance, KvoptError, Placement

INF = math.inf

# Float sums of sizes can be off by a few ulps; a relative slack of 1e-12 keeps
# exact fills (e.g. 30 + 50 on an 80 GB GPU) valid.  Every returned placement is
# re-checked in exact arithmetic by ``kvopt.evaluate.check_placement``.
MEM_REL_TOL = 1e-12

# Up to this many GPUs a linear scan beats heap bookkeeping in CPython.
SCAN_LIMIT = 48

UNPLACED = -1


def fits_memory(used_mem: float, size_gb: float, capacity: float) -> bool:
    """``S_g + s_i <= C_g`` up to float rounding of the sums."""
    return used_mem + size_gb <= capacity * (1.0 + MEM_REL_TOL)


def extreme_models(state: "LoadState", models: Sequence[int], count: int, level: float,
                   heaviest: bool) -> Sequence[int]:
    """The ``count`` models with the largest (``heaviest``) or smallest weight ``n_i + level · s_i``.

    ``n_i + T s_i`` is model ``i``'s use of a GPU's budget ``T C_g`` at ``KVPR = T``.  When
    there are at most ``count`` models they are returned as given (no sorting cost).
    """
    if len(models) <= count:
        return models
    demands, sizes = state.demands, state.sizes
    pick = heapq.nlargest if heaviest else heapq.nsmallest
    return pick(count, models, key=lambda m: demands[m] + level * sizes[m])


class NoPlacementError(KvoptError):
    """A heuristic could not fit every model into GPU memory."""


def no_placement(method: str, detail: str = "") -> NoPlacementError:
    """The error every heuristic raises when it finds no memory-feasible placement."""
    extra = f" ({detail})" if detail else ""
    return NoPlacementError(f"{method}: found no placement that fits memory{extra}")


@dataclass(frozen=True)
class Score:
    """How a placement ranks: ``(peak, second peak, mean)`` KVPR, compared as a tuple."""

    peak: float
    second: float
    mean: float

    def key(self) -> tuple[float, float, float]:
        return (self.peak, self.second, self.mean)


def score_from_loads(used_mem: np.ndarray, demand: np.ndarray, capacities: np.ndarray) -> Score:
    """Score of per-GPU sums: peak, second-largest and mean of ``KVPR_g``."""
    values = kvpr_vector(demand, capacities - used_mem)
    if values.size == 1:
        peak = float(values[0])
        return Score(peak, peak, peak)
    top_two = np.partition(values, values.size - 2)[-2:]
    mean = float(values.mean()) if np.all(np.isfinite(values)) else INF
    return Score(float(top_two[1]), float(top_two[0]), mean)


def score_placement(instance: Instance, gpu_of: Sequence[int]) -> Score:
    """Score of a complete placement (numpy, ``O(M + G)``)."""
    used_mem, demand = gpu_loads(instance, gpu_of)
    return score_from_loads(used_mem, demand, instance.capacities)


class LazyHeap:
    """Heap of ``(key, gpu, stamp)``; entries whose stamp is outdated are skipped."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[tuple[float, int, int]]) -> None:
        heapq.heapify(entries)
        self.entries = entries

    def push(self, key: float, gpu: int, stamp: int) -> None:
        heapq.heappush(self.entries, (key, gpu, stamp))

    def smallest(self, count: int, stamps: list[int], exclude: Iterable[int] = ()) -> list[int]:
        """The ``count`` GPUs with the smallest live keys (ties: lowest index), not in ``exclude``."""
        skip = set(exclude)
        taken: list[tuple[float, int, int]] = []
        found: list[int] = []
        entries = self.entries
        while entries and len(found) < count:
            entry = heapq.heappop(entries)
            if entry[2] != stamps[entry[1]]:
                continue  # outdated: drop for good
            taken.append(entry)
            if entry[1] not in skip:
                found.append(entry[1])
        for entry in taken:
            heapq.heappush(entries, entry)
        return found


class LoadState:
    """Per-GPU memory, demand, members and KVPR of a (partial) placement.

    ``gpu_of[i] == UNPLACED`` marks a model not placed yet (construction).
    """

    def __init__(self, instance: Instance, gpu_of: Sequence[int] | None = None, *, exact: bool = False) -> None:
        self.num_gpus = instance.num_gpus
        # Exact sums S_g, N_g (Fractions) kept in step when asked: the LNS decides peaks on them.
        self.exact = exact
        self._sizes_exact = instance.sizes_exact if exact else ()
        self._demands_exact = instance.demands_exact if exact else ()
        self.used_exact: list[Fraction] = [Fraction(0)] * instance.num_gpus if exact else []
        self.demand_exact: list[Fraction] = [Fraction(0)] * instance.num_gpus if exact else []
        self.num_models = instance.num_models
        self.sizes: list[float] = instance.sizes.tolist()
        self.demands: list[float] = instance.demands.tolist()
        self.capacities: list[float] = instance.capacities.tolist()
        self.gpu_of: list[int] = [UNPLACED] * self.num_models if gpu_of is None else [int(g) for g in gpu_of]
        self.members: list[list[int]] = [[] for _ in range(self.num_gpus)]
        for model, gpu in enumerate(self.gpu_of):
            if gpu != UNPLACED:
                self.members[gpu].append(model)
        self.used_mem: list[float] = [0.0] * self.num_gpus
        self.demand: list[float] = [0.0] * self.num_gpus
        self.gpu_kvpr: list[float] = [0.0] * self.num_gpus
        self.stamps: list[int] = [0] * self.num_gpus
        self.use_heaps = self.num_gpus > SCAN_LIMIT
        for gpu in range(self.num_gpus):
            self._refresh_sums(gpu)
        if self.use_heaps:
            self._rebuild_heaps()

    # -- bookkeeping -----------------------------------------------------------
    def _refresh_sums(self, gpu: int) -> None:
        """Recompute the sums of one GPU from its members (``fsum``: no drift over many moves)."""
        members = self.members[gpu]
        self.used_mem[gpu] = math.fsum(self.sizes[m] for m in members)
        self.demand[gpu] = math.fsum(self.demands[m] for m in members)
        self.gpu_kvpr[gpu] = kvpr(self.demand[gpu], self.capacities[gpu] - self.used_mem[gpu])
        if self.exact:
            self.used_exact[gpu] = sum((self._sizes_exact[m] for m in members), Fraction(0))
            self.demand_exact[gpu] = sum((self._demands_exact[m] for m in members), Fraction(0))

    def _rebuild_heaps(self) -> None:
        gpus = range(self.num_gpus)
        self._max_kvpr = LazyHeap([(-self.gpu_kvpr[g], g, self.stamps[g]) for g in gpus])
        self._min_kvpr = LazyHeap([(self.gpu_kvpr[g], g, self.stamps[g]) for g in gpus])
        self._max_free = LazyHeap([(self.used_mem[g] - self.capacities[g], g, self.stamps[g]) for g in gpus])

    def _touched(self, gpu: int) -> None:
        self._refresh_sums(gpu)
        # Stamps always advance: callers keep their own lazy heaps keyed by other quantities.
        self.stamps[gpu] += 1
        if not self.use_heaps:
            return
        stamp = self.stamps[gpu]
        self._max_kvpr.push(-self.gpu_kvpr[gpu], gpu, stamp)
        self._min_kvpr.push(self.gpu_kvpr[gpu], gpu, stamp)
        self._max_free.push(self.used_mem[gpu] - self.capacities[gpu], gpu, stamp)
        # Outdated entries pile up; rebuild once they dominate.
        if len(self._max_kvpr.entries) > 4 * self.num_gpus + 64:
            self._rebuild_heaps()

    def copy(self) -> "LoadState":
        """An independent copy (``O(M + G)``): for trying a sequence of changes that may be dropped."""
        twin = LoadState.__new__(LoadState)
        twin.num_gpus, twin.num_models = self.num_gpus, self.num_models
        twin.sizes, twin.demands, twin.capacities = self.sizes, self.demands, self.capacities  # read-only
        twin.gpu_of = list(self.gpu_of)
        twin.members = [list(m) for m in self.members]
        twin.used_mem, twin.demand = list(self.used_mem), list(self.demand)
        twin.gpu_kvpr, twin.stamps = list(self.gpu_kvpr), list(self.stamps)
        twin.use_heaps = self.use_heaps
        twin.exact, twin._sizes_exact, twin._demands_exact = self.exact, self._sizes_exact, self._demands_exact
        twin.used_exact, twin.demand_exact = list(self.used_exact), list(self.demand_exact)
        if twin.use_heaps:
            twin._rebuild_heaps()
        return twin

    # -- queries -----------------------------------------------------------------
    def fits(self, model: int, gpu: int) -> bool:
        return fits_memory(self.used_mem[gpu], self.sizes[model], self.capacities[gpu])

    def fits_swap(self, model_a: int, model_b: int) -> bool:
        """Whether exchanging the GPUs of two placed models keeps both GPUs within memory."""
        gpu_a, gpu_b = self.gpu_of[model_a], self.gpu_of[model_b]
        size_a, size_b = self.sizes[model_a], self.sizes[model_b]
        return (fits_memory(self.used_mem[gpu_a] - size_a, size_b, self.capacities[gpu_a])
                and fits_memory(self.used_mem[gpu_b] - size_b, size_a, self.capacities[gpu_b]))

    def kvpr_after(self, gpu: int, add_demand: float, add_size: float) -> float:
        """``KVPR_g`` after adding (or, with negative numbers, removing) demand and memory."""
        return kvpr(self.demand[gpu] + add_demand, self.capacities[gpu] - self.used_mem[gpu] - add_size)

    def peak_gpu(self) -> int:
        """The GPU with the largest KVPR (ties: lowest index)."""
        if not self.use_heaps:
            values = self.gpu_kvpr
            return max(range(self.num_gpus), key=values.__getitem__)
        return self.largest_kvpr(1)[0]

    def peak(self) -> float:
        return self.gpu_kvpr[self.peak_gpu()]

    def largest_kvpr(self, count: int, exclude: Iterable[int] = ()) -> list[int]:
        """The ``count`` GPUs with the largest KVPR, largest first, not in ``exclude``."""
        if not self.use_heaps:
            skip = set(exclude)
            order = sorted((g for g in range(self.num_gpus) if g not in skip),
                           key=lambda g: (-self.gpu_kvpr[g], g))
            return order[:count]
        return self._max_kvpr.smallest(count, self.stamps, exclude)

    def max_kvpr_excluding(self, exclude: Iterable[int]) -> float:
        """``max KVPR_g`` over the GPUs not in ``exclude`` (0 if none)."""
        rest = self.largest_kvpr(1, exclude)
        return self.gpu_kvpr[rest[0]] if rest else 0.0

    def least_loaded(self, count: int, exclude: Iterable[int] = ()) -> list[int]:
        """The ``count`` GPUs with the smallest KVPR (ties: lowest index), not in ``exclude``."""
        if not self.use_heaps:
            skip = set(exclude)
            order = sorted((g for g in range(self.num_gpus) if g not in skip),
                           key=lambda g: (self.gpu_kvpr[g], g))
            return order[:count]
        return self._min_kvpr.smallest(count, self.stamps, exclude)

    def roomiest(self, count: int, exclude: Iterable[int] = ()) -> list[int]:
        """The ``count`` GPUs with the most free memory ``C_g - S_g``, not in ``exclude``."""
        if not self.use_heaps:
            skip = set(exclude)
            order = sorted((g for g in range(self.num_gpus) if g not in skip),
                           key=lambda g: (self.used_mem[g] - self.capacities[g], g))
            return order[:count]
        return self._max_free.smallest(count, self.stamps, exclude)

    def targets(self, count: int, exclude: Iterable[int] = ()) -> list[int]:
        """Where to send models: every GPU on small clusters, else the ``count`` least-loaded
        plus the ``count`` roomiest (big models need free memory, not just low pressure)."""
        skip = set(exclude)
        if self.num_gpus <= max(count, SCAN_LIMIT):
            return [g for g in range(self.num_gpus) if g not in skip]
        chosen = self.least_loaded(count, skip)
        seen = set(chosen)
        for g in self.roomiest(count, skip):
            if g not in seen:
                chosen.append(g)
                seen.add(g)
        return chosen

    # -- changes -----------------------------------------------------------------
    def place(self, model: int, gpu: int) -> None:
        """Put an unplaced model on ``gpu`` (memory is the caller's check)."""
        self.gpu_of[model] = gpu
        self.members[gpu].append(model)
        self._touched(gpu)

    def move(self, model: int, gpu: int) -> None:
        """Move a placed model to ``gpu``."""
        source = self.gpu_of[model]
        self.members[source].remove(model)
        self.gpu_of[model] = gpu
        self.members[gpu].append(model)
        self._touched(source)
        self._touched(gpu)

    def swap(self, model_a: int, model_b: int) -> None:
        """Exchange the GPUs of two placed models."""
        gpu_a, gpu_b = self.gpu_of[model_a], self.gpu_of[model_b]
        members_a, members_b = self.members[gpu_a], self.members[gpu_b]
        members_a[members_a.index(model_a)] = model_b
        members_b[members_b.index(model_b)] = model_a
        self.gpu_of[model_a], self.gpu_of[model_b] = gpu_b, gpu_a
        self._touched(gpu_a)
        self._touched(gpu_b)

    # -- results -----------------------------------------------------------------
    def is_complete(self) -> bool:
        return UNPLACED not in self.gpu_of

    def placement(self) -> Placement:
        if not self.is_complete():
            raise KvoptError("internal: placement requested before every model is placed")
        return Placement(tuple(self.gpu_of))
