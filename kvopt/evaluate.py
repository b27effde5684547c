"""Evaluation and validation of placements: the one place KVPR is computed.

For GPU ``g`` with used memory ``S_g = sum s_i`` and demand ``N_g = sum n_i``::

    KVPR_g = N_g / (C_g - S_g)      (0 if N_g == 0; +inf if N_g > 0 and S_g == C_g)

and the objective is ``peak = max_g KVPR_g``.  ``evaluate`` gives the float
values and, with exact rational inputs, the exact ``Fraction`` peak used by every
optimality proof.

**Infinity.**  kvopt has one encoding of ``+inf``: ``math.inf``, for float and
exact values alike (an exact value is a ``Fraction`` or ``math.inf``: they compare,
sort and take ``max`` together), and the string ``"inf"`` in JSON
(``format_fraction`` / ``parse_fraction``).  ``None`` always means "no value"
(no placement, no bound), never infinity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, Sequence

import numpy as np

from kvopt.model import ExactValue, Instance, Placement, PlacementError

INF = math.inf


def kvpr(demand: float, free_mem: float) -> float:
    """``demand / free_mem``; 0 for no demand; +inf for demand with no free memory."""
    if demand <= 0:
        return 0.0
    if free_mem <= 0:
        return INF
    return demand / free_mem


def kvpr_exact(demand: Fraction, free_mem: Fraction) -> ExactValue:
    """Exact ``demand / free_mem``; ``math.inf`` for demand with no free memory."""
    if demand <= 0:
        return Fraction(0)
    if free_mem <= 0:
        return INF
    return demand / free_mem


def gpu_loads(instance: Instance, gpu_of: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(S_g, N_g)`` per GPU: used memory (GB) and demand."""
    idx = np.asarray(gpu_of, dtype=np.int64)
    used_mem = np.bincount(idx, weights=instance.sizes, minlength=instance.num_gpus)
    demand = np.bincount(idx, weights=instance.demands, minlength=instance.num_gpus)
    return used_mem, demand


def kvpr_vector(demand: np.ndarray, free_mem: np.ndarray) -> np.ndarray:
    """Vectorised ``kvpr`` over GPUs."""
    out = np.zeros_like(demand, dtype=float)
    loaded = demand > 0
    full = loaded & (free_mem <= 0)
    ok = loaded & ~full
    out[ok] = demand[ok] / free_mem[ok]
    out[full] = INF
    return out


@dataclass(frozen=True)
class Evaluation:
    """Per-GPU memory, demand and KVPR of a placement, and its peak."""

    used_mem_gb: tuple[float, ...]
    demand: tuple[float, ...]
    gpu_kvpr: tuple[float, ...]
    peak_kvpr: float
    peak_gpu: int
    peak_kvpr_exact: ExactValue | None  # math.inf when the peak is infinite; None only with exact=False

    @property
    def is_finite(self) -> bool:
        return math.isfinite(self.peak_kvpr)


def evaluate(instance: Instance, placement: Placement | Sequence[int], *, exact: bool = True) -> Evaluation:
    """Evaluate a (valid) placement.  Raises ``PlacementError`` if it is not valid."""
    gpu_of = check_placement(instance, placement)
    used_mem, demand = gpu_loads(instance, gpu_of)
    free_mem = instance.capacities - used_mem
    values = kvpr_vector(demand, free_mem)
    peak_exact: ExactValue | None = None
    if exact:
        exact_values = exact_gpu_kvpr(instance, gpu_of)
        # The exact values decide: a float sum can leave a rounding residue (ten 0.1 GB
        # models on a 1 GB GPU leave 1e-16 GB "free"), turning +inf into a huge finite KVPR.
        values = np.array([float(v) for v in exact_values])
        peak_exact = max(exact_values)
    peak_gpu = int(np.argmax(values))
    return Evaluation(
        used_mem_gb=tuple(float(x) for x in used_mem),
        demand=tuple(float(x) for x in demand),
        gpu_kvpr=tuple(float(x) for x in values),
        peak_kvpr=float(values[peak_gpu]),
        peak_gpu=peak_gpu,
        peak_kvpr_exact=peak_exact,
    )


def peak_kvpr(instance: Instance, gpu_of: Sequence[int]) -> float:
    """Float peak KVPR of a placement (no validation: for hot loops on trusted data)."""
    used_mem, demand = gpu_loads(instance, gpu_of)
    return float(kvpr_vector(demand, instance.capacities - used_mem).max())


def exact_gpu_kvpr(instance: Instance, gpu_of: Sequence[int]) -> list[ExactValue]:
    """Exact KVPR per GPU (``Fraction``, or ``math.inf``)."""
    used = [Fraction(0)] * instance.num_gpus
    dem = [Fraction(0)] * instance.num_gpus
    for i, g in enumerate(gpu_of):
        used[g] += instance.sizes_exact[i]
        dem[g] += instance.demands_exact[i]
    return [kvpr_exact(dem[g], instance.capacities_exact[g] - used[g]) for g in range(instance.num_gpus)]


def exact_peak_kvpr(instance: Instance, gpu_of: Sequence[int]) -> ExactValue:
    """Exact peak KVPR (``Fraction``, or ``math.inf``)."""
    return max(exact_gpu_kvpr(instance, gpu_of))


def check_placement(instance: Instance, placement: Placement | Sequence[int]) -> tuple[int, ...]:
    """Check a placement given as GPU indices in model order; return them as a tuple.

    Checks: one GPU per model, indices in ``0..G-1``, and per-GPU memory
    ``S_g <= C_g`` (exact arithmetic, so a placement that fills a GPU exactly is valid).
    """
    gpu_of = placement.gpu_of if isinstance(placement, Placement) else tuple(placement)
    if len(gpu_of) != instance.num_models:
        raise PlacementError(
            f"placement has {len(gpu_of)} entries for {instance.num_models} models"
        )
    out = []
    for m, g in zip(instance.models, gpu_of):
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)):
            raise PlacementError(f"model {m.name!r}: GPU index must be an integer, got {g!r}")
        if not 0 <= int(g) < instance.num_gpus:
            raise PlacementError(
                f"model {m.name!r}: GPU index {g} out of range 0..{instance.num_gpus - 1}"
            )
        out.append(int(g))
    _check_memory(instance, out)
    return tuple(out)


def _check_memory(instance: Instance, gpu_of: Sequence[int]) -> None:
    used_mem, _ = gpu_loads(instance, gpu_of)
    # Float screen first; exact arithmetic only for GPUs that are (nearly) full.
    for g in np.nonzero(used_mem > instance.capacities - 1e-6)[0]:
        exact_used = sum(instance.sizes_exact[i] for i, gg in enumerate(gpu_of) if gg == g)
        if exact_used > instance.capacities_exact[g]:
            names = [instance.models[i].name for i, gg in enumerate(gpu_of) if gg == g]
            raise PlacementError(
                f"GPU {g}: memory overflow, models {names} need {float(exact_used):g} GB "
                f"but the GPU has {instance.gpu_mem_gb[g]} GB"
            )


def check_assignment(instance: Instance, assignment: Mapping[str, Any]) -> Placement:
    """Check ``{model_name: gpu_index}``: no unknown or missing model, valid indices, memory."""
    if not isinstance(assignment, Mapping):
        raise PlacementError(f"assignment must be an object {{model_name: gpu_index}}, got {type(assignment).__name__}")
    unknown = [k for k in assignment if k not in instance.index_of]
    if unknown:
        raise PlacementError(f"model {unknown[0]!r}: unknown model (not in instance {instance.name!r})")
    missing = [m.name for m in instance.models if m.name not in assignment]
    if missing:
        raise PlacementError(f"model {missing[0]!r}: missing from the placement" +
                             (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    gpu_of = tuple(assignment[m.name] for m in instance.models)
    return Placement(check_placement(instance, gpu_of))


def check_gpu_lists(instance: Instance, gpu_lists: Mapping[Any, Sequence[str]]) -> Placement:
    """Check ``{gpu_index: [model_name, ...]}``: also catches a model placed twice."""
    assignment: dict[str, Any] = {}
    for gpu, names in gpu_lists.items():
        for name in names:
            if name in assignment:
                raise PlacementError(f"model {name!r}: placed twice (GPU {assignment[name]} and GPU {gpu})")
            assignment[name] = gpu
    return check_assignment(instance, assignment)


def format_fraction(value: ExactValue) -> str:
    """``"p/q"`` (or ``"inf"``) for JSON output of an exact value."""
    if isinstance(value, float) and value == INF:
        return "inf"
    if not isinstance(value, (Fraction, int)) or isinstance(value, bool):
        raise TypeError(f"format_fraction: expected a Fraction or math.inf, got {value!r}")
    value = Fraction(value)
    return f"{value.numerator}/{value.denominator}"


def parse_fraction(text: str) -> ExactValue:
    """The inverse of ``format_fraction``: ``"inf"`` is ``math.inf``."""
    return INF if text == "inf" else Fraction(text)


# -- demand scenarios: the objective is the worst peak over the scenarios --------------
@dataclass(frozen=True)
class ScenarioPeaks:
    """Exact peak of a placement under each scenario (``math.inf`` = +inf) and the binding (worst) one."""

    names: tuple[str, ...]
    peaks_exact: tuple[ExactValue, ...]
    binding: str

    @property
    def worst_exact(self) -> ExactValue:
        return max(self.peaks_exact)

    def as_json(self) -> dict[str, Any]:
        return {"scenario_peaks": {n: ("inf" if p == INF else float(p)) for n, p in zip(self.names, self.peaks_exact)},
                "binding_scenario": self.binding}


def scenario_peaks(instance: Instance, placement: Placement | Sequence[int]) -> ScenarioPeaks | None:
    """``max_g KVPR_g`` under each of the instance's scenarios (``None`` when it has none).

    Scenario ``s`` replaces ``n_i`` by ``r_i^s / slo_i`` (base rate for models it
    does not list); sizes and capacities are unchanged.  The binding scenario is
    the first one attaining the worst peak.
    """
    if not instance.scenarios:
        return None
    gpu_of = check_placement(instance, placement)
    peaks = tuple(exact_peak_kvpr(instance.for_scenario(s), gpu_of) for s in instance.scenarios)
    worst = max(peaks)
    binding = next(s.name for s, p in zip(instance.scenarios, peaks) if p == worst)
    return ScenarioPeaks(tuple(s.name for s in instance.scenarios), peaks, binding)


def objective_peak_exact(instance: Instance, gpu_of: Sequence[int]) -> ExactValue:
    """The objective of a placement, exactly: the worst scenario peak with scenarios, else the peak (+inf: math.inf)."""
    if not instance.scenarios:
        return exact_peak_kvpr(instance, gpu_of)
    peaks = scenario_peaks(instance, gpu_of)
    assert peaks is not None
    return peaks.worst_exact


def scenario_demand_matrix(instance: Instance) -> np.ndarray:
    """Float demands ``n_i^s``, one row per scenario (one row, the base demands, without scenarios)."""
    if not instance.scenarios:
        return instance.demands[None, :]
    return np.array([instance.for_scenario(s).demands for s in instance.scenarios])
