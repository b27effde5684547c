"""The problem model: models, GPUs, instances, placements and results.

An *instance* is a set of LLMs (``Model``) and a list of GPU memory capacities
``C_g`` (GB).  Model ``i`` has weight size ``s_i`` (GB), request rate ``r_i`` and
latency SLO ``slo_i``; its demand is ``n_i = r_i / slo_i``.

A *placement* puts every model on exactly one GPU with ``S_g = sum s_i <= C_g``.
The KV-cache pressure of GPU ``g`` is ``KVPR_g = N_g / (C_g - S_g)`` with
``N_g = sum n_i``; the objective is ``max_g KVPR_g`` (see ``kvopt.evaluate``).

Everything here is validated once, on construction, and is immutable; every
other module may trust an ``Instance``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from numbers import Real
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

DEFAULT_GPU_MEM_GB = 80

STATUSES = ("optimal", "feasible", "infeasible", "unknown")

# An exact value: a Fraction, or math.inf -- kvopt's one encoding of +inf (see kvopt.evaluate).
ExactValue = Fraction | float


class KvoptError(ValueError):
    """Bad input: the message names the model or field and the reason."""


class PlacementError(KvoptError):
    """A placement that is not valid for its instance."""


def to_fraction(value: int | float | Fraction) -> Fraction:
    """The exact rational an input number stands for.

    Integers are exact.  A float is read as the shortest decimal that round-trips
    to it (``repr``), i.e. ``0.1`` means ``1/10``: JSON and CSV inputs are
    decimals, and this recovers the decimal the user wrote exactly.  This is the
    documented precision of every proof made on float data.
    """
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    return Fraction(repr(float(value)))


# Every input number is 0 or has a magnitude in [1e-12, 1e12]: then demands (<= 1e24),
# their sums and every KVPR stay far inside float range, so no float conversion of an
# exact value overflows (``req_rate: 1e308, slo: 1e-308`` would).
MAX_MAGNITUDE = 1e12
MIN_MAGNITUDE = 1e-12


def _number(value: Any, where: str) -> float | int:
    """Check that ``value`` is a finite real number (not a bool, not a string) in the supported range."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise KvoptError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        raise KvoptError(f"{where}: must be finite, got {value!r}")
    if abs(value) > MAX_MAGNITUDE or (value != 0 and abs(value) < MIN_MAGNITUDE):
        raise KvoptError(f"{where}: {value!r} is out of the supported range (0, or a magnitude from "
                         f"{MIN_MAGNITUDE:g} to {MAX_MAGNITUDE:g})")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise KvoptError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if isinstance(value, Fraction):
        return value  # type: ignore[return-value]
    return int(value) if isinstance(value, int) else float(value)


@dataclass(frozen=True)
class Model:
    """One LLM: weights of ``size_gb`` GB, ``req_rate`` requests/s, latency SLO ``slo``."""

    name: str
    size_gb: float
    req_rate: float
    slo: float
    current_gpu: int | None = None  # GPU the model runs on now (re-placement); None = a new model

    def __post_init__(self) -> None:
        # Validated on construction too (``Model(...)`` directly, not only ``Model.build``): downstream trusts it.
        checked = _model_fields(self.name, self.size_gb, self.req_rate, self.slo, self.current_gpu,
                                f"model {self.name!r}")
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    @property
    def demand(self) -> float:
        """``n_i = req_rate / slo`` (float)."""
        return self.req_rate / self.slo

    @property
    def demand_exact(self) -> Fraction:
        return to_fraction(self.req_rate) / to_fraction(self.slo)

    @property
    def size_exact(self) -> Fraction:
        return to_fraction(self.size_gb)

    @staticmethod
    def build(name: Any, size_gb: Any, req_rate: Any, slo: Any, where: str | None = None,
              current_gpu: Any = None) -> "Model":
        """Validate the fields of one model (GPU-independent checks only; the GPU range is the instance's).

        ``where`` names the model in error messages (e.g. ``models[3]`` when it has no valid name).
        """
        return Model(**_model_fields(name, size_gb, req_rate, slo, current_gpu, where or f"model {name!r}"))


def _model_fields(name: Any, size_gb: Any, req_rate: Any, slo: Any, current_gpu: Any, label: str) -> dict[str, Any]:
    """The checked, normalised fields of a model; ``KvoptError`` naming ``label`` and the field otherwise."""
    if not isinstance(name, str) or not name:
        raise KvoptError(f"{label}: field 'name' must be a non-empty string, got {name!r}")
    size = _number(size_gb, f"{label}: field 'size_gb'")
    rate = _number(req_rate, f"{label}: field 'req_rate'")
    slo_v = _number(slo, f"{label}: field 'slo'")
    if size <= 0:
        raise KvoptError(f"{label}: field 'size_gb' must be > 0, got {size_gb!r}")
    if rate < 0:
        raise KvoptError(f"{label}: field 'req_rate' must be >= 0, got {req_rate!r}")
    if slo_v <= 0:
        raise KvoptError(f"{label}: field 'slo' must be > 0, got {slo!r}")
    if current_gpu is not None and (isinstance(current_gpu, bool) or not isinstance(current_gpu, (int, np.integer))):
        raise KvoptError(f"{label}: field 'current_gpu' must be a GPU index (integer) or absent, got {current_gpu!r}")
    gpu = None if current_gpu is None else int(current_gpu)
    return {"name": name, "size_gb": size, "req_rate": rate, "slo": slo_v, "current_gpu": gpu}


@dataclass(frozen=True)
class Scenario:
    """A demand snapshot: ``req_rate`` overrides per model name (a model not listed keeps its base rate)."""

    name: str
    req_rate: tuple[tuple[str, float], ...]

    @staticmethod
    def build(data: Any, where: str) -> "Scenario":
        """Validate ``{"name": str, "req_rate": {model: rate}}`` (model names are checked by the instance)."""
        if not isinstance(data, Mapping):
            raise KvoptError(f"{where}: expected an object with 'name' and 'req_rate', got {data!r}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise KvoptError(f"{where}: field 'name' must be a non-empty string, got {name!r}")
        rates = data.get("req_rate", {})
        if not isinstance(rates, Mapping):
            raise KvoptError(f"scenario {name!r}: field 'req_rate' must be an object {{model: rate}}")
        checked = []
        for model, rate in rates.items():
            value = _number(rate, f"scenario {name!r}: model {model!r}: field 'req_rate'")
            if value < 0:
                raise KvoptError(f"scenario {name!r}: model {model!r}: field 'req_rate' must be >= 0, got {rate!r}")
            checked.append((str(model), value))
        return Scenario(name, tuple(checked))


@dataclass(frozen=True)
class Instance:
    """Models and GPU capacities; validated on construction (use ``Instance.build``)."""

    name: str
    models: tuple[Model, ...]
    gpu_mem_gb: tuple[float, ...]
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    scenarios: tuple[Scenario, ...] = ()  # demand snapshots: the objective is the worst peak over them

    def __post_init__(self) -> None:
        _validate_instance(self)
        _validate_replan_fields(self)

    @staticmethod
    def build(
        models: Iterable[Model | Mapping[str, Any]],
        gpu_mem_gb: Sequence[Any] | None = None,
        *,
        gpus: int | None = None,
        name: str = "instance",
        meta: Mapping[str, Any] | None = None,
        scenarios: Sequence[Any] | None = None,
    ) -> "Instance":
        """Build an instance from models (``Model`` or dicts) and capacities.

        Give either ``gpu_mem_gb`` (one capacity per GPU, heterogeneous allowed) or
        ``gpus`` (that many 80 GB GPUs).
        """
        if gpu_mem_gb is None:
            if gpus is None:
                raise KvoptError("field 'gpu_mem_gb': missing (give the GPU capacities or a GPU count)")
            if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
                raise KvoptError(f"field 'gpus': must be an integer >= 1, got {gpus!r}")
            gpu_mem_gb = [DEFAULT_GPU_MEM_GB] * gpus
        built: list[Model] = []
        for idx, m in enumerate(models):
            if isinstance(m, Model):
                built.append(Model.build(m.name, m.size_gb, m.req_rate, m.slo))
                continue
            if not isinstance(m, Mapping):
                raise KvoptError(f"models[{idx}]: expected an object with name, size_gb, req_rate, slo; got {m!r}")
            label = f"model {m.get('name')!r}" if isinstance(m.get("name"), str) else f"models[{idx}]"
            for key in ("name", "size_gb", "req_rate", "slo"):
                if key not in m:
                    raise KvoptError(f"{label}: missing field '{key}'")
            built.append(Model.build(m["name"], m["size_gb"], m["req_rate"], m["slo"], where=label,
                                     current_gpu=m.get("current_gpu")))
        built_scenarios = tuple(s if isinstance(s, Scenario) else Scenario.build(s, f"scenarios[{k}]")
                                for k, s in enumerate(scenarios or ()))
        return Instance(name=name, models=tuple(built), gpu_mem_gb=tuple(gpu_mem_gb), meta=dict(meta or {}),
                        scenarios=built_scenarios)

    # -- derived arrays (computed once; the dataclass is immutable) ---------------
    @property
    def num_gpus(self) -> int:
        return len(self.gpu_mem_gb)

    @property
    def num_models(self) -> int:
        return len(self.models)

    @cached_property
    def sizes(self) -> np.ndarray:
        """``s_i`` as float64, in model order."""
        return np.array([m.size_gb for m in self.models], dtype=float)

    @cached_property
    def demands(self) -> np.ndarray:
        """``n_i = r_i / slo_i`` as float64, in model order."""
        return np.array([m.demand for m in self.models], dtype=float)

    @cached_property
    def capacities(self) -> np.ndarray:
        """``C_g`` as float64, in GPU order."""
        return np.array(self.gpu_mem_gb, dtype=float)

    @cached_property
    def sizes_exact(self) -> tuple[Fraction, ...]:
        return tuple(m.size_exact for m in self.models)

    @cached_property
    def demands_exact(self) -> tuple[Fraction, ...]:
        return tuple(m.demand_exact for m in self.models)

    @cached_property
    def capacities_exact(self) -> tuple[Fraction, ...]:
        return tuple(to_fraction(c) for c in self.gpu_mem_gb)

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {m.name: i for i, m in enumerate(self.models)}

    @property
    def is_homogeneous(self) -> bool:
        return len(set(self.gpu_mem_gb)) == 1

    def with_gpus(self, gpu_mem_gb: Sequence[float]) -> "Instance":
        return Instance(self.name, self.models, tuple(gpu_mem_gb), dict(self.meta), self.scenarios)

    @property
    def current_gpu_of(self) -> tuple[int | None, ...]:
        """Each model's current GPU (``None`` = new model), in model order."""
        return tuple(m.current_gpu for m in self.models)

    @property
    def has_current(self) -> bool:
        return any(m.current_gpu is not None for m in self.models)

    def for_scenario(self, scenario: Scenario) -> "Instance":
        """The same models and GPUs with the scenario's request rates (and no scenarios)."""
        rates = dict(scenario.req_rate)
        models = tuple(Model(m.name, m.size_gb, rates.get(m.name, m.req_rate), m.slo, m.current_gpu)
                       for m in self.models)
        return Instance(f"{self.name}@{scenario.name}", models, self.gpu_mem_gb, dict(self.meta))

    def without_scenarios(self) -> "Instance":
        return Instance(self.name, self.models, self.gpu_mem_gb, dict(self.meta))


def _validate_replan_fields(inst: Instance) -> None:
    """Current GPUs in range and within memory (exact); scenario rates name known models."""
    used: dict[int, Fraction] = {}
    for m in inst.models:
        if m.current_gpu is None:
            continue
        if not 0 <= m.current_gpu < len(inst.gpu_mem_gb):
            raise KvoptError(f"model {m.name!r}: field 'current_gpu' = {m.current_gpu} is out of range "
                             f"0..{len(inst.gpu_mem_gb) - 1}")
        used[m.current_gpu] = used.get(m.current_gpu, Fraction(0)) + to_fraction(m.size_gb)
    for m in inst.models:
        g = m.current_gpu
        if g is not None and used[g] > to_fraction(inst.gpu_mem_gb[g]):
            names = [x.name for x in inst.models if x.current_gpu == g]
            raise KvoptError(f"model {m.name!r}: field 'current_gpu' = {g}: the current placement overflows "
                             f"GPU {g} (models {names} need {_fmt(used[g])} GB, it has {inst.gpu_mem_gb[g]} GB)")
    known = {m.name for m in inst.models}
    seen: set[str] = set()
    for scenario in inst.scenarios:
        if not isinstance(scenario, Scenario):
            raise KvoptError(f"field 'scenarios': expected Scenario objects, got {scenario!r}")
        if scenario.name in seen:
            raise KvoptError(f"scenario {scenario.name!r}: duplicate scenario name")
        seen.add(scenario.name)
        for model, _ in scenario.req_rate:
            if model not in known:
                raise KvoptError(f"scenario {scenario.name!r}: field 'req_rate' names unknown model {model!r}")


def _validate_instance(inst: Instance) -> None:
    if not isinstance(inst.name, str):
        raise KvoptError(f"field 'name': must be a string, got {inst.name!r}")
    if len(inst.gpu_mem_gb) == 0:
        raise KvoptError("field 'gpu_mem_gb': the cluster has no GPUs")
    caps = []
    for g, c in enumerate(inst.gpu_mem_gb):
        value = _number(c, f"field 'gpu_mem_gb'[{g}]")
        if value <= 0:
            raise KvoptError(f"field 'gpu_mem_gb'[{g}]: GPU memory must be > 0, got {c!r}")
        caps.append(value)
    if len(inst.models) == 0:
        raise KvoptError("field 'models': the instance has no models")
    seen: set[str] = set()
    for m in inst.models:
        if not isinstance(m, Model):
            raise KvoptError(f"field 'models': expected Model objects, got {m!r}")
        if m.name in seen:
            raise KvoptError(f"model {m.name!r}: duplicate model name")
        seen.add(m.name)


def infeasibility_reason(inst: Instance) -> str | None:
    """Why no placement can fit in memory, when one of two cheap proofs shows it; ``None`` otherwise.

    A model larger than every GPU, or total model size above total GPU memory.
    An instance like that is valid input: every method answers it with status
    ``infeasible`` and this reason (``kvopt.solve``), never with an input error.
    """
    largest = max(inst.capacities_exact)
    for m in inst.models:
        if m.size_exact > largest:
            return (f"model {m.name!r}: field 'size_gb' = {m.size_gb} GB is larger than every GPU "
                    f"(largest is {_fmt(largest)} GB); the instance is infeasible")
    total_size = sum(inst.sizes_exact)
    total_mem = sum(inst.capacities_exact)
    if total_size > total_mem:
        return (f"infeasible: total model size {_fmt(total_size)} GB exceeds total GPU memory "
                f"{_fmt(total_mem)} GB by {_fmt(total_size - total_mem)} GB")
    return None


def _fmt(x: Fraction) -> str:
    return str(int(x)) if x.denominator == 1 else f"{float(x):g}"


@dataclass(frozen=True)
class Placement:
    """GPU index of every model, in the instance's model order."""

    gpu_of: tuple[int, ...]

    def as_mapping(self, instance: Instance) -> dict[str, int]:
        return {m.name: int(g) for m, g in zip(instance.models, self.gpu_of)}

    def models_on(self, gpu: int) -> list[int]:
        return [i for i, g in enumerate(self.gpu_of) if g == gpu]


@dataclass(frozen=True)
class Result:
    """One shape for every method's answer, heuristic or exact.

    ``status``: ``optimal`` (proven, exact arithmetic), ``feasible`` (a valid
    placement, not proven optimal), ``infeasible`` (proven: no valid placement),
    ``unknown`` (no placement and no proof).  ``gap = peak / lower_bound - 1``.
    """

    instance: str
    method: str
    status: str
    placement: Placement | None
    peak_kvpr: float | None
    peak_kvpr_exact: Fraction | None = None
    lower_bound: float | None = None
    lower_bound_exact: Fraction | None = None
    gap: float | None = None
    seconds: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def success(self) -> bool:
        """A valid placement came back (``optimal`` or ``feasible``), like scipy's ``OptimizeResult.success``."""
        return self.status in ("optimal", "feasible")

    @property
    def message(self) -> str:
        """One line saying what the status means for this run (the reason, when there is one)."""
        reason = self.details.get("reason") if self.details else None
        text = {"optimal": "optimal (proven in exact arithmetic)",
                "feasible": "valid placement, not proven optimal",
                "infeasible": "no placement fits (proven)",
                "unknown": "no placement found, and no proof that none exists"}[self.status]
        return f"{text}: {reason}" if reason else text


def relative_gap(value: ExactValue | None, reference: ExactValue | None) -> float | None:
    """The one gap formula: ``value / reference - 1`` (floats or exact values), as a float.

    0 when the two are equal (also both 0, or both +inf); +inf when ``value`` is
    +inf or ``reference`` is 0 under a positive value; ``None`` when either is missing.
    """
    if value is None or reference is None:
        return None
    if value == reference:
        return 0.0
    if math.isinf(value):
        return math.inf
    if reference == 0:
        return math.inf
    return float(value / reference - 1)
