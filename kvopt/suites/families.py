"""Hard instance families: seeded generators registered as suites on import.

Every case is built from ``numpy.random.default_rng(SUITE_SEEDS[suite] * 1000 + case)``
(``case_seed``), so cases are independent and reproducible one at a time.  Each case
is *planted*: GPU capacities are drawn first, then each GPU is given models whose
sizes sum to at most its capacity, then the model order is shuffled.  The planted
packing is a memory-feasible placement, so no family contains an instance that
cannot be packed.  Sizes are integer GB, rates integers or one decimal, SLOs from
a few short values, so exact rational arithmetic stays cheap.  Instance names are
``<suite>_<NN>``; ``meta`` holds ``generator`` (the suite), ``seed`` (the case
seed), ``family`` (the recipe used; for ``small`` the trait of that case) and ``case``.

Instance suites
---------------

Besides ``adrs50`` (the 50 ADRS/OpenEvolve cases: 5-9 x 80 GB GPUs, 2 models per
GPU, weights only ~48 % of memory, so almost any sensible heuristic is near the
lower bound), kvopt ships seven seeded families (``kvopt.suites.families``):

| suite    | cases | GPUs               | models/GPU | weights / memory | what it stresses |
|----------|------:|--------------------|-----------:|-----------------:|------------------|
| `tight`  | 20 | 4-8 x 80 GB           | 2-4   | 75-90 %  | packing and balance at once |
| `dense`  | 20 | 3-5 x 80 GB           | 4-8   | 57-80 %  | many small models, Pareto(1.1) request rates |
| `llm`    | 20 | 4-8 x 80 GB           | 1-5   | 65-82 %  | real weight sizes 2-70 GB, size-dependent SLOs |
| `hetero` | 20 | 4-8 of 24/40/48/80/141 GB | 1-5 | 67-80 % | heterogeneous capacities |
| `small`  | 20 | 2-4                   | <= 12 models | 58-89 % | all four traits, for exact solvers and CI |
| `large`  | 6  | 64, 256, 1024         | ~4    | 67-71 %  | scale (up to 4585 models) |
| `medium` | 16 | 8, 16, 24, 32         | 3-5   | 80-90 %  | the exact frontier (2-4 nodes of 8 GPUs) |

* **tight**: the weights use 75-90 % of the total memory, so ``C_g - S_g`` is small
  and KVPR is very sensitive to every GB: a placement must solve a bin-packing
  problem and balance demand over the little free memory that is left.  A greedy
  that places one model at a time without planning the packing gets stuck or
  strands a GPU with almost no free memory: a naive greedy (decreasing
  demand/size, each model on the GPU with the lowest resulting KVPR) finds no
  feasible placement at all on 15 of the 20 cases.
* **dense**: 4-8 models per GPU (12-24 models in all, still in reach of exact
  solvers) with Pareto(alpha=1.1) rates: one or two hot models carry a large share
  of the demand.  The optimum isolates the hot models on GPUs whose weights are
  kept light, and must then push the many cold models elsewhere without
  overfilling; orderings by demand or by size alone can get this badly wrong.
* **llm**: realistic weight sizes (1B/3B/7B/8B/13B/14B fp16 = 2/6/14/16/26/28 GB,
  32B fp16 = 64 GB, 70B int8 = 70 GB), log-normal rates (median 2 req/s) and SLOs
  that loosen with model size.  The size distribution is lumpy: a 64-70 GB model
  leaves at most 16 GB on its GPU, so which small model may join it decides the peak.
* **hetero**: GPUs of 24, 40, 48, 80 and 141 GB (at least two kinds per case).
  The same demand costs different KVPR on different GPUs and some models fit only
  the biggest GPUs; heuristics that assume equal capacities, or balance demand or
  memory instead of the ratio, are caught out.
* **small**: 2-4 GPUs and at most 12 models, cycling the four traits above
  (``meta.family`` says which); small enough for exact solvers to prove optima,
  so it is the CI baseline for optimality gaps.
* **large**: 64, 256 and 1024 GPUs with ~4 LLM-sized models each (2 cases per
  size: all 80 GB, and a random H100/H200 mix of 80 and 141 GB).  It measures how
  heuristics scale and how close they stay to the lower bound when exact
  optimisation is out of reach.
* **medium**: 8, 16, 24 and 32 GPUs (4 cases each: two all-80 GB, two 80/141 GB
  mixes) with ~4 models per GPU of 4-30 GB and ADRS-like uniform traffic, every
  GPU planted 80-90 % full: a production deployment of 1-4 nodes, where exact
  proofs are hardest to get and most wanted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kvopt.model import DEFAULT_GPU_MEM_GB, Instance
from kvopt.suites.registry import Suite, register

CASES_PER_SUITE = 20

# One base seed per suite; case ``c`` of a suite uses ``default_rng(base * 1000 + c)``
# so every case is independent of the others (and of how many cases there are).
SUITE_SEEDS = {"tight": 101, "dense": 202, "llm": 303, "hetero": 404, "small": 505, "large": 606, "medium": 707}

# Weight sizes (GB) of common open LLMs: fp16 = 2 bytes/parameter, 8-bit = 1 byte/parameter.
LLM_SIZES_GB = (2, 6, 14, 16, 26, 28, 64, 70)
LLM_SIZE_LABELS = ("1B fp16", "3B fp16", "7B fp16", "8B fp16", "13B fp16", "14B fp16", "32B fp16", "70B int8")
# How common each size is in a serving fleet: small and mid models dominate.
LLM_SIZE_WEIGHTS = (3, 3, 4, 4, 2, 2, 1, 1)

# GPU memory sizes (GB): L4/A10-class 24, A100-40G 40, L40S/A6000 48, A100/H100 80, H200 141.
HETERO_CAPACITIES_GB = (24, 40, 48, 80, 141)
HETERO_CAPACITY_WEIGHTS = (1, 3, 1, 4, 2)

# Latency SLOs in seconds; demand = req_rate / slo, so these few values keep the
# exact demands' common denominator small (the exact solvers scale to integers).
SLO_SMALL_MODEL = (0.5, 1)
SLO_MID_MODEL = (1, 2)
SLO_LARGE_MODEL = (2, 5)
SLO_GENERIC = (1, 2, 5, 10)


@dataclass(frozen=True)
class Shape:
    """Size limits of one case: GPU count range and per-GPU model count range (inclusive)."""

    min_gpus: int
    max_gpus: int
    min_per_gpu: int
    max_per_gpu: int
    max_models: int


@dataclass(frozen=True)
class PlantedCase:
    """A case before shuffling: GPU capacities and the sizes planted on each GPU.

    By construction ``sum(sizes_by_gpu[g]) <= capacities[g]`` for every GPU, so the
    planted packing is a memory-feasible placement: no generated instance is infeasible.
    """

    capacities: tuple[int, ...]
    sizes_by_gpu: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Traffic:
    """Request rate (req/s) and latency SLO (s) of every model, in planted order."""

    rates: tuple[float | int, ...]
    slos: tuple[float | int, ...]


Planter = Callable[[np.random.Generator, Shape], PlantedCase]
TrafficModel = Callable[[np.random.Generator, tuple[int, ...]], Traffic]


# -- random building blocks ------------------------------------------------------------
def case_seed(suite: str, case: int) -> int:
    """The seed of case ``case`` of suite ``suite``: ``SUITE_SEEDS[suite] * 1000 + case``."""
    return SUITE_SEEDS[suite] * 1000 + case


def split_integer(rng: np.random.Generator, total: int, parts: int, min_part: int,
                  concentration: float) -> list[int]:
    """A random composition ``total = sum(out)`` into ``parts`` integers, each ``>= min_part``.

    The part above ``min_part`` is multinomial with Dirichlet(``concentration``)
    shares: a small concentration gives very unequal parts, a large one nearly equal parts.
    """
    extra = total - parts * min_part
    if extra < 0:
        raise ValueError(f"cannot split {total} into {parts} parts of at least {min_part}")
    shares = rng.dirichlet([concentration] * parts)
    return [min_part + int(c) for c in rng.multinomial(extra, shares)]


def deal_bounded(rng: np.random.Generator, total: int, lower: list[int], upper: list[int],
                 concentration: float) -> list[int]:
    """Random integers ``lower[g] <= x[g] <= upper[g]`` with ``sum(x) == total``.

    Repeatedly deals what is left over the entries that still have room, with
    Dirichlet(``concentration``) shares; every round places at least one unit.
    """
    if not sum(lower) <= total <= sum(upper):
        raise ValueError(f"total {total} outside [{sum(lower)}, {sum(upper)}]")
    alloc = list(lower)
    left = total - sum(lower)
    while left > 0:
        open_slots = [g for g in range(len(alloc)) if alloc[g] < upper[g]]
        draw = rng.multinomial(left, rng.dirichlet([concentration] * len(open_slots)))
        for g, units in zip(open_slots, draw):
            take = min(int(units), upper[g] - alloc[g])
            alloc[g] += take
            left -= take
    return alloc


def cap_model_counts(counts: list[int], max_models: int) -> list[int]:
    """Lower the largest per-GPU counts (never below 1) until ``sum <= max_models``."""
    counts = list(counts)
    while sum(counts) > max_models and max(counts) > 1:
        counts[counts.index(max(counts))] -= 1
    return counts


def draw_menu_fill(rng: np.random.Generator, capacity: int, count: int, low: float, high: float,
                   tries: int = 200) -> tuple[int, ...]:
    """``count`` LLM sizes whose sum is in ``[low, high] * capacity`` (rejection sampling).

    Falls back to fewer models when ``count`` of them cannot hit the band, and
    finally to the largest single menu size that fits the GPU.
    """
    weights = np.array(LLM_SIZE_WEIGHTS, dtype=float) / sum(LLM_SIZE_WEIGHTS)
    for k in range(count, 0, -1):
        for _ in range(tries):
            pick = tuple(LLM_SIZES_GB[int(i)] for i in rng.choice(len(LLM_SIZES_GB), size=k, p=weights))
            if low * capacity <= sum(pick) <= high * capacity:
                return pick
    return (max(s for s in LLM_SIZES_GB if s <= capacity),)


def lognormal_rate(rng: np.random.Generator, median: float, sigma: float, max_rate: float) -> float:
    """A log-normal request rate rounded to 0.1 req/s, in ``[0.1, max_rate]``."""
    value = median * math.exp(sigma * float(rng.standard_normal()))
    return round(min(max(value, 0.1), max_rate), 1)


def pick(rng: np.random.Generator, options: tuple) -> int | float:
    """One of ``options``, keeping its Python type (ints stay ints in the JSON)."""
    return options[int(rng.integers(len(options)))]


def draw_gpu_count(rng: np.random.Generator, shape: Shape) -> int:
    return int(rng.integers(shape.min_gpus, shape.max_gpus + 1))


def draw_model_counts(rng: np.random.Generator, shape: Shape, num_gpus: int) -> list[int]:
    counts = [int(rng.integers(shape.min_per_gpu, shape.max_per_gpu + 1)) for _ in range(num_gpus)]
    return cap_model_counts(counts, shape.max_models)


# -- planters: capacities and a memory-feasible packing ------------------------------------
def plant_tight(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """80 GB GPUs whose weights use 75-90 % of the *total* memory.

    The total weight ``W`` is drawn in ``[0.75, 0.90] * G * 80`` and dealt over the
    GPUs (each GPU at most full), then each GPU's share is split into its models.
    """
    num_gpus = draw_gpu_count(rng, shape)
    counts = draw_model_counts(rng, shape, num_gpus)
    capacities = [DEFAULT_GPU_MEM_GB] * num_gpus
    total_mem = sum(capacities)
    min_size = 4
    total_weight = int(rng.integers(math.ceil(0.75 * total_mem), math.floor(0.90 * total_mem) + 1))
    fills = deal_bounded(rng, total_weight, [k * min_size for k in counts], capacities, concentration=4.0)
    sizes = tuple(tuple(split_integer(rng, f, k, min_size, concentration=1.0)) for f, k in zip(fills, counts))
    return PlantedCase(tuple(capacities), sizes)


def plant_dense(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """80 GB GPUs with 4-8 small models each on average (total capped by ``max_models``)."""
    num_gpus = draw_gpu_count(rng, shape)
    lo = shape.min_per_gpu * num_gpus
    hi = min(shape.max_per_gpu * num_gpus, shape.max_models)
    num_models = int(rng.integers(lo, max(lo, hi) + 1))
    # The planted packing may be uneven (2 to many models per GPU); only the average is fixed.
    counts = split_integer(rng, num_models, num_gpus, min_part=2, concentration=3.0)
    sizes = []
    for k in counts:
        fill = max(k, round(DEFAULT_GPU_MEM_GB * float(rng.uniform(0.50, 0.85))))
        sizes.append(tuple(split_integer(rng, fill, k, min_part=1, concentration=0.8)))
    return PlantedCase(tuple([DEFAULT_GPU_MEM_GB] * num_gpus), tuple(sizes))


def plant_llm(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """80 GB GPUs holding real LLM weight sizes, each GPU 55-92 % full in the planted packing."""
    num_gpus = draw_gpu_count(rng, shape)
    counts = draw_model_counts(rng, shape, num_gpus)
    capacities = [DEFAULT_GPU_MEM_GB] * num_gpus
    sizes = tuple(draw_menu_fill(rng, c, k, 0.55, 0.92) for c, k in zip(capacities, counts))
    return PlantedCase(tuple(capacities), sizes)


def draw_hetero_capacities(rng: np.random.Generator, num_gpus: int) -> list[int]:
    """GPU capacities from ``HETERO_CAPACITIES_GB``, redrawn until at least two differ."""
    weights = np.array(HETERO_CAPACITY_WEIGHTS, dtype=float) / sum(HETERO_CAPACITY_WEIGHTS)
    while True:
        caps = [HETERO_CAPACITIES_GB[int(i)] for i in rng.choice(len(HETERO_CAPACITIES_GB), size=num_gpus, p=weights)]
        if len(set(caps)) >= 2:
            return caps


def hetero_model_count(rng: np.random.Generator, capacity: int, shape: Shape) -> int:
    """Models planted on a GPU of ``capacity`` GB: about one per 40 GB, plus 0-2."""
    base = round(capacity / 40)
    low = min(max(1, base), shape.max_per_gpu)
    high = min(base + 2, shape.max_per_gpu)
    return int(rng.integers(low, high + 1))


def plant_hetero(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """Mixed 24/40/48/80/141 GB GPUs; bigger GPUs get more (and bigger) planted models.

    A GPU of ``C`` GB gets ``max(1, round(C / 40))`` to ``round(C / 40) + 2`` models (capped
    by the shape), filled to 55-90 %; a model planted on a 141 GB GPU can be too big for
    every other GPU.
    """
    num_gpus = draw_gpu_count(rng, shape)
    capacities = draw_hetero_capacities(rng, num_gpus)
    counts = [hetero_model_count(rng, c, shape) for c in capacities]
    counts = cap_model_counts(counts, shape.max_models)
    sizes = []
    for c, k in zip(capacities, counts):
        fill = max(2 * k, round(c * float(rng.uniform(0.55, 0.90))))
        sizes.append(tuple(split_integer(rng, fill, k, min_part=2, concentration=1.0)))
    return PlantedCase(tuple(capacities), tuple(sizes))


def plant_medium(rng: np.random.Generator, shape: Shape, capacities: list[int]) -> PlantedCase:
    """The ``medium`` packing: each GPU filled to 80-90 % (≈ 85 % overall) by its models, sizes >= 4 GB.

    Per-GPU counts are ``shape.min_per_gpu..max_per_gpu`` plus one on a 141 GB GPU;
    the fill is split with Dirichlet(2) shares, so sizes spread like 4-30 GB uniform.
    """
    min_size = 4
    sizes = []
    for cap in capacities:
        count = int(rng.integers(shape.min_per_gpu, shape.max_per_gpu + 1)) + (cap > DEFAULT_GPU_MEM_GB)
        fill = int(rng.integers(math.ceil(0.80 * cap), math.floor(0.90 * cap) + 1))
        sizes.append(tuple(split_integer(rng, fill, count, min_size, concentration=2.0)))
    return PlantedCase(tuple(capacities), tuple(sizes))


def plant_medium_homogeneous(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """``shape.min_gpus`` 80 GB GPUs (``plant_medium``)."""
    return plant_medium(rng, shape, [DEFAULT_GPU_MEM_GB] * shape.min_gpus)


def plant_medium_mixed(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """``shape.min_gpus`` GPUs, each 80 or 141 GB at random (at least one of each)."""
    capacities = [80 if rng.random() < 0.5 else 141 for _ in range(shape.min_gpus)]
    capacities[0], capacities[-1] = 80, 141
    return plant_medium(rng, shape, capacities)


def plant_large_homogeneous(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """``shape.min_gpus`` 80 GB GPUs, ~4 LLM-sized models each, 55-85 % full."""
    counts = draw_model_counts(rng, shape, shape.min_gpus)
    capacities = [DEFAULT_GPU_MEM_GB] * shape.min_gpus
    sizes = tuple(draw_menu_fill(rng, c, k, 0.55, 0.85) for c, k in zip(capacities, counts))
    return PlantedCase(tuple(capacities), sizes)


def plant_large_mixed(rng: np.random.Generator, shape: Shape) -> PlantedCase:
    """``shape.min_gpus`` GPUs, each 80 GB (H100) or 141 GB (H200) at random, ~4-5 models each."""
    capacities = [80 if rng.random() < 0.5 else 141 for _ in range(shape.min_gpus)]
    # A 141 GB GPU holds one model more than an 80 GB one, so both end up similarly full.
    counts = [int(rng.integers(shape.min_per_gpu, shape.max_per_gpu + 1)) + (c > 80) for c in capacities]
    sizes = tuple(draw_menu_fill(rng, c, k, 0.55, 0.85) for c, k in zip(capacities, counts))
    return PlantedCase(tuple(capacities), sizes)


# -- traffic models: request rates and SLOs ------------------------------------------------
def uniform_traffic(rng: np.random.Generator, sizes: tuple[int, ...]) -> Traffic:
    """Integer rates 1-20 req/s and integer SLOs 2-10 s, independent of size (ADRS-like)."""
    rates = tuple(int(rng.integers(1, 21)) for _ in sizes)
    slos = tuple(int(rng.integers(2, 11)) for _ in sizes)
    return Traffic(rates, slos)


def heavy_tailed_traffic(rng: np.random.Generator, sizes: tuple[int, ...]) -> Traffic:
    """Pareto(alpha=1.1) rates: ``0.5 * (1 + Lomax)`` req/s rounded to 0.1, capped at 100.

    With alpha near 1 a few models carry most of the demand, independent of their size.
    """
    rates = tuple(round(min(0.5 * (1.0 + float(rng.pareto(1.1))), 100.0), 1) for _ in sizes)
    slos = tuple(pick(rng, (1, 2, 5)) for _ in sizes)
    return Traffic(rates, slos)


def llm_traffic(rng: np.random.Generator, sizes: tuple[int, ...]) -> Traffic:
    """Log-normal rates (median 2 req/s); SLOs loosen with model size (bigger models are slower)."""
    rates = tuple(lognormal_rate(rng, median=2.0, sigma=1.0, max_rate=60.0) for _ in sizes)
    slos = tuple(pick(rng, slo_options_for(s)) for s in sizes)
    return Traffic(rates, slos)


def slo_options_for(size_gb: int) -> tuple:
    """Latency SLO choices (s) for a model of ``size_gb``: <= 8 GB fast, <= 30 GB medium, else slow."""
    if size_gb <= 8:
        return SLO_SMALL_MODEL
    if size_gb <= 30:
        return SLO_MID_MODEL
    return SLO_LARGE_MODEL


def generic_traffic(rng: np.random.Generator, sizes: tuple[int, ...]) -> Traffic:
    """Log-normal rates (median 3 req/s, sigma 0.8) and SLOs from 1, 2, 5, 10 s."""
    rates = tuple(lognormal_rate(rng, median=3.0, sigma=0.8, max_rate=60.0) for _ in sizes)
    slos = tuple(pick(rng, SLO_GENERIC) for _ in sizes)
    return Traffic(rates, slos)


# -- assembling instances ------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """How one case is made: the family name, its planter, traffic model and shape."""

    family: str
    plant: Planter
    traffic: TrafficModel
    shape: Shape


def build_case(suite: str, case: int, recipe: Recipe) -> Instance:
    """Case ``case`` of ``suite``: plant, draw traffic, shuffle the model order, build.

    Shuffling hides the planted packing (models of one GPU are not adjacent).
    """
    seed = case_seed(suite, case)
    rng = np.random.default_rng(seed)
    planted = recipe.plant(rng, recipe.shape)
    sizes = tuple(s for gpu_sizes in planted.sizes_by_gpu for s in gpu_sizes)
    traffic = recipe.traffic(rng, sizes)
    order = rng.permutation(len(sizes))
    models = [
        {"name": f"model_{j}", "size_gb": sizes[i], "req_rate": traffic.rates[i], "slo": traffic.slos[i]}
        for j, i in enumerate(int(x) for x in order)
    ]
    return Instance.build(
        models, list(planted.capacities), name=f"{suite}_{case:02d}",
        meta={"generator": suite, "seed": seed, "family": recipe.family, "case": case},
    )


TIGHT = Recipe("tight", plant_tight, uniform_traffic, Shape(4, 8, 2, 4, 32))
DENSE = Recipe("dense", plant_dense, heavy_tailed_traffic, Shape(3, 5, 4, 8, 24))
LLM = Recipe("llm", plant_llm, llm_traffic, Shape(4, 8, 1, 5, 40))
HETERO = Recipe("hetero", plant_hetero, generic_traffic, Shape(4, 8, 1, 5, 40))

# ``small`` cycles through the four traits with at most 4 GPUs and 12 models.
SMALL_RECIPES = (
    Recipe("tight", plant_tight, uniform_traffic, Shape(2, 4, 2, 3, 12)),
    Recipe("dense", plant_dense, heavy_tailed_traffic, Shape(2, 3, 4, 6, 12)),
    Recipe("llm", plant_llm, llm_traffic, Shape(2, 4, 1, 3, 12)),
    Recipe("hetero", plant_hetero, generic_traffic, Shape(2, 4, 1, 3, 12)),
)

LARGE_GPU_COUNTS = (64, 256, 1024)


def large_recipe(case: int) -> Recipe:
    """Cases 0-1: 64 GPUs, 2-3: 256, 4-5: 1024; even cases all 80 GB, odd cases 80/141 GB mixed."""
    num_gpus = LARGE_GPU_COUNTS[case // 2]
    shape = Shape(num_gpus, num_gpus, 3, 5, 8 * num_gpus)
    if case % 2 == 0:
        return Recipe("llm", plant_large_homogeneous, llm_traffic, shape)
    return Recipe("llm-mixed", plant_large_mixed, llm_traffic, shape)


MEDIUM_GPU_COUNTS = (8, 16, 24, 32)
MEDIUM_CASES_PER_SIZE = 4  # per GPU count: two all-80 GB cases, then two 80/141 GB mixes


def medium_recipe(case: int) -> Recipe:
    """Cases 4k..4k+3 have ``MEDIUM_GPU_COUNTS[k]`` GPUs; ~4 models per GPU (3-5), uniform traffic
    (rates 1-20, SLO 2-10: the issue's 16 x 64 distribution); cases 4k+2, 4k+3 mix 80/141 GB."""
    num_gpus = MEDIUM_GPU_COUNTS[case // MEDIUM_CASES_PER_SIZE]
    shape = Shape(num_gpus, num_gpus, 3, 5, 6 * num_gpus)
    if case % MEDIUM_CASES_PER_SIZE < 2:
        return Recipe("medium", plant_medium_homogeneous, uniform_traffic, shape)
    return Recipe("medium-mixed", plant_medium_mixed, uniform_traffic, shape)


def recipe_for(suite: str, case: int) -> Recipe:
    """The recipe of case ``case`` of ``suite`` (``small`` cycles its four traits)."""
    if suite == "small":
        return SMALL_RECIPES[case % len(SMALL_RECIPES)]
    if suite == "large":
        return large_recipe(case)
    if suite == "medium":
        return medium_recipe(case)
    return {"tight": TIGHT, "dense": DENSE, "llm": LLM, "hetero": HETERO}[suite]


def num_cases(suite: str) -> int:
    if suite == "medium":
        return MEDIUM_CASES_PER_SIZE * len(MEDIUM_GPU_COUNTS)
    return 2 * len(LARGE_GPU_COUNTS) if suite == "large" else CASES_PER_SUITE


def generate_family(suite: str) -> list[Instance]:
    """All cases of a family suite, in case order (``<suite>_00``, ``<suite>_01``, ...)."""
    return [build_case(suite, c, recipe_for(suite, c)) for c in range(num_cases(suite))]


def generate_tight() -> list[Instance]:
    return generate_family("tight")


def generate_dense() -> list[Instance]:
    return generate_family("dense")


def generate_llm() -> list[Instance]:
    return generate_family("llm")


def generate_hetero() -> list[Instance]:
    return generate_family("hetero")


def generate_small() -> list[Instance]:
    return generate_family("small")


def generate_large() -> list[Instance]:
    return generate_family("large")


def generate_medium() -> list[Instance]:
    return generate_family("medium")


register(Suite("tight", "80 GB GPUs, weights fill 75-90 % of total memory, 2-4 models/GPU (20 cases)",
               generate_tight, small=True))
register(Suite("dense", "3-5 x 80 GB GPUs, 4-8 small models/GPU, Pareto(1.1) request rates, <= 24 models (20 cases)",
               generate_dense, small=True))
register(Suite("llm", "4-8 x 80 GB GPUs, real LLM weight sizes (1B-70B), log-normal rates, size-dependent SLOs (20 cases)",
               generate_llm, small=True))
register(Suite("hetero", "4-8 GPUs mixing 24/40/48/80/141 GB, planted packings up to 90 % full (20 cases)",
               generate_hetero, small=True))
register(Suite("small", "2-4 GPUs, <= 12 models, cycling tight/dense/llm/hetero traits (20 cases)",
               generate_small, small=True))
register(Suite("large", "64, 256 and 1024 GPUs (80 GB, or 80/141 GB mixed), ~4 LLM-sized models/GPU (6 cases)",
               generate_large, small=False))
register(Suite("medium", "8/16/24/32 GPUs (80 GB, or 80/141 GB mixed), ~4 models/GPU, ~85 % memory (16 cases)",
               generate_medium, small=False))
