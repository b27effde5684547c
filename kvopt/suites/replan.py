"""Re-placement suites: a running cluster whose rates shifted (``replan``) and a day of demand (``scenarios``).

``replan`` (10 cases, 4-6 x 80 GB GPUs, 2-3 LLM-sized models per GPU): yesterday's
rates are drawn log-normal; yesterday's placement (``current_gpu``) is the
demand-balancing greedy below for those rates (largest demand first, each model on
the GPU with the lowest resulting KVPR that has room: what a running cluster was
placed with).  Then the rates shift: a quarter of the models get hot (x2-x4), a
quarter cold (x0.3-x0.6), the rest drift (x0.8-x1.25), and one new model arrives
that fits in the free memory as it is (so ``K = 0`` is feasible).

``scenarios`` (8 cases, 4-6 x 80 GB GPUs, 2-3 models per GPU, no current
placement): 24 hourly snapshots of a diurnal pattern
``r_i(h) = r_i · (1 + a_i · sin(2π (h - φ_i) / 24))`` with per-model amplitude
``a_i ∈ [0.3, 0.9]`` and phase ``φ_i`` (hours); the base rate ``r_i`` is the daily
average.  Rates are rounded to 0.1 req/s.

Seeds: ``numpy.random.default_rng(SEED * 1000 + case)``.
"""

from __future__ import annotations

import math

import numpy as np

from kvopt.model import Instance
from kvopt.suites.families import LLM_SIZES_GB, LLM_SIZE_WEIGHTS, lognormal_rate, pick, slo_options_for
from kvopt.suites.registry import Suite, register

REPLAN_SEED = 71
SCENARIOS_SEED = 72
REPLAN_CASES = 10
SCENARIO_CASES = 8
HOURS = 24


def _draw_sizes(rng: np.random.Generator, num_gpus: int, per_gpu: tuple[int, int], fill: tuple[float, float],
                capacity: int = 80) -> list[int]:
    """LLM weight sizes whose total is ``fill`` of the cluster's memory, ``per_gpu`` models per GPU on average."""
    weights = np.array(LLM_SIZE_WEIGHTS, dtype=float) / sum(LLM_SIZE_WEIGHTS)
    for _ in range(1000):
        count = int(rng.integers(per_gpu[0] * num_gpus, per_gpu[1] * num_gpus + 1))
        sizes = [LLM_SIZES_GB[int(i)] for i in rng.choice(len(LLM_SIZES_GB), size=count, p=weights)]
        if fill[0] * capacity * num_gpus <= sum(sizes) <= fill[1] * capacity * num_gpus:
            return sizes
    raise RuntimeError("could not draw sizes")  # pragma: no cover - the ranges above always succeed


def balanced_greedy(sizes: list[int], demands: list[float], capacity: int, num_gpus: int) -> list[int] | None:
    """Largest demand first onto the GPU with the lowest resulting KVPR among those with room (``None``: stuck)."""
    used, load = [0] * num_gpus, [0.0] * num_gpus
    gpu_of = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-demands[i], -sizes[i], i)):
        options = [((load[g] + demands[i]) / (capacity - used[g] - sizes[i]), g) for g in range(num_gpus)
                   if used[g] + sizes[i] < capacity]
        if not options:
            return None
        g = min(options)[1]
        used[g] += sizes[i]
        load[g] += demands[i]
        gpu_of[i] = g
    return gpu_of


def replan_case(case: int) -> Instance:
    rng = np.random.default_rng(REPLAN_SEED * 1000 + case)
    num_gpus = int(rng.integers(4, 7))
    while True:
        sizes = _draw_sizes(rng, num_gpus, (2, 3), (0.6, 0.75))
        rates = [lognormal_rate(rng, 2.0, 1.0, 60.0) for _ in sizes]
        slos = [pick(rng, slo_options_for(s)) for s in sizes]
        current = balanced_greedy(sizes, [r / s for r, s in zip(rates, slos)], 80, num_gpus)
        if current is not None:
            break
    free = [80 - sum(s for s, g in zip(sizes, current) if g == gpu) for gpu in range(num_gpus)]
    shift = rng.permutation(len(sizes))
    hot, cold = set(shift[: len(sizes) // 4].tolist()), set(shift[len(sizes) // 4: len(sizes) // 2].tolist())
    models = []
    for i, (size, rate, slo) in enumerate(zip(sizes, rates, slos)):
        factor = rng.uniform(2, 4) if i in hot else rng.uniform(0.3, 0.6) if i in cold else rng.uniform(0.8, 1.25)
        models.append({"name": f"model_{i}", "size_gb": size, "req_rate": round(max(0.1, rate * factor), 1),
                       "slo": slo, "current_gpu": current[i]})
    new_size = max([s for s in LLM_SIZES_GB if s < max(free)] or [min(LLM_SIZES_GB)])
    new_size = int(rng.choice([s for s in LLM_SIZES_GB if s <= new_size]))
    models.append({"name": "model_new", "size_gb": new_size, "req_rate": lognormal_rate(rng, 2.0, 1.0, 60.0),
                   "slo": pick(rng, slo_options_for(new_size))})
    return Instance.build(models, [80] * num_gpus, name=f"replan_{case:02d}",
                          meta={"generator": "replan", "seed": REPLAN_SEED * 1000 + case, "case": case,
                                "yesterday_req_rate": {f"model_{i}": r for i, r in enumerate(rates)}})


def scenarios_case(case: int) -> Instance:
    rng = np.random.default_rng(SCENARIOS_SEED * 1000 + case)
    num_gpus = int(rng.integers(4, 7))
    sizes = _draw_sizes(rng, num_gpus, (2, 3), (0.6, 0.8))
    rates = [lognormal_rate(rng, 2.0, 1.0, 40.0) for _ in sizes]
    slos = [pick(rng, slo_options_for(s)) for s in sizes]
    amplitude = rng.uniform(0.3, 0.9, size=len(sizes))
    phase = rng.uniform(0, HOURS, size=len(sizes))
    names = [f"model_{i}" for i in range(len(sizes))]
    scenarios = [{"name": f"{h:02d}:00",
                  "req_rate": {n: round(max(0.1, r * (1 + a * math.sin(2 * math.pi * (h - p) / HOURS))), 1)
                               for n, r, a, p in zip(names, rates, amplitude, phase)}}
                 for h in range(HOURS)]
    models = [{"name": n, "size_gb": s, "req_rate": r, "slo": slo} for n, s, r, slo in zip(names, sizes, rates, slos)]
    return Instance.build(models, [80] * num_gpus, name=f"scenarios_{case:02d}", scenarios=scenarios,
                          meta={"generator": "scenarios", "seed": SCENARIOS_SEED * 1000 + case, "case": case})


def generate_replan() -> list[Instance]:
    return [replan_case(c) for c in range(REPLAN_CASES)]


def generate_scenarios() -> list[Instance]:
    return [scenarios_case(c) for c in range(SCENARIO_CASES)]


register(Suite("replan", "4-6 x 80 GB running clusters (current_gpu) after a rate shift, one new model "
                         f"({REPLAN_CASES} cases; frontier references)", generate_replan, small=False))
register(Suite("scenarios", f"4-6 x 80 GB GPUs, 24 hourly diurnal demand snapshots ({SCENARIO_CASES} cases)",
               generate_scenarios, small=False))
