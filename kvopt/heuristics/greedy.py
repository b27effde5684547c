"""Prism's greedy placement (Algorithm 1 of the Prism paper).

Models are taken by demand ``n_i`` descending (ties: lower model index first);
each goes to the GPU with the lowest *current* ``KVPR_g = N_g / (C_g - S_g)``
among the GPUs where it fits (``S_g + s_i <= C_g``), ties to the lowest GPU index.

The GPUs sit in a heap keyed by ``(KVPR_g, g)``: popping until the first GPU that
fits gives exactly the rule above in ``O(popped · log G)`` instead of ``O(G)``.
"""

from __future__ import annotations

import heapq

from kvopt.evaluate import kvpr
from kvopt.heuristics.state import fits_memory, no_placement
from kvopt.model import Instance, Placement


def demand_order(instance: Instance) -> list[int]:
    """Model indices by demand descending, ties by index (stable)."""
    demands = instance.demands.tolist()
    return sorted(range(instance.num_models), key=lambda i: (-demands[i], i))


def greedy(instance: Instance) -> Placement:
    """Prism Algorithm 1; raises ``KvoptError`` if some model fits on no GPU."""
    sizes = instance.sizes.tolist()
    demands = instance.demands.tolist()
    capacities = instance.capacities.tolist()
    used_mem = [0.0] * instance.num_gpus
    demand = [0.0] * instance.num_gpus
    gpu_of = [0] * instance.num_models
    # Every GPU has exactly one live entry (its current KVPR), so no stale entries.
    heap = [(0.0, g) for g in range(instance.num_gpus)]
    for model in demand_order(instance):
        size = sizes[model]
        rejected = []
        while heap and not fits_memory(used_mem[heap[0][1]], size, capacities[heap[0][1]]):
            rejected.append(heapq.heappop(heap))
        if not heap:
            raise no_placement("greedy", f"model {instance.models[model].name!r} fits on no GPU")
        _, gpu = heapq.heappop(heap)
        gpu_of[model] = gpu
        used_mem[gpu] += size
        demand[gpu] += demands[model]
        heapq.heappush(heap, (kvpr(demand[gpu], capacities[gpu] - used_mem[gpu]), gpu))
        for entry in rejected:
            heapq.heappush(heap, entry)
    return Placement(tuple(gpu_of))
