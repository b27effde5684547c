"""The assignment model at a target ``T``, as plain data shared by the CP-SAT and MILP backends.

Binary ``x_ig`` (model ``i`` on GPU ``g``)::

    sum_g x_ig = 1                                   for every model i
    sum_i a_g,i x_ig + e_g·y_g <= b_g                for every GPU g      (target row)
    x_ig <= y_g                                      for models with demand, when e_g = 1

The target row is ``kvopt.scaling``'s integer row ``sum_i w_i x_ig <= p·L·cint_g``
divided by the gcd ``d_g`` of its weights: ``a_g,i = w_i / d_g`` and
``b_g = floor(rhs / d_g)`` (an equivalent integer row, since the left side is a
multiple of ``d_g``).  For the strict target (``KVPR_g < T``) a GPU carrying
demand has ``rhs = p·L·cint_g - 1`` and an idle one ``p·L·cint_g``; after the
reduction the two differ by ``e_g ∈ {0, 1}``, and the binary ``y_g`` ("GPU ``g``
carries demand") subtracts it.  ``y_g`` is only needed when some model without
demand may use GPU ``g``: otherwise every non-empty GPU carries demand and the
row uses the smaller right-hand side directly (an empty GPU has load 0 anyway).

The memory row ``sum_i s_i x_ig <= C_g`` is implied (``w_i >= p·L·sint_i`` and
``rhs <= p·L·cint_g``) and not written.

``x_ig`` exists only if model ``i`` alone satisfies GPU ``g``'s row (exact
variable fixing); a model fitting no GPU alone makes the query infeasible.

**Re-placement.**  With demand scenarios the target rows are written once per
scenario and GPU (scenario demands, same sizes; the base demands are then not a
row), each with its own demand set for the idle bonus.  A move budget
(``MoveBudget``) is one more row ``sum_i cost_i·x_{i,cur(i)} >= sum_i cost_i - B``;
it ties GPUs to their identity, so the symmetry cuts are off when it is present.

**Symmetry.**  GPUs of equal capacity are interchangeable.  With the models in
a fixed order ``pi`` (heaviest weight first) and the GPUs of one capacity group
``g_0, g_1, ...``, every placement can be relabelled within each group so that
the GPUs are ordered by the first model (in ``pi``) they hold, empty GPUs last.
In such a placement model ``pi(t)`` is on ``g_j`` (``j >= 1``) only if an earlier
model is on ``g_{j-1}``::

    x_{pi(t), g_j} <= sum_{u < t} x_{pi(u), g_{j-1}}

and in particular ``x_{pi(t), g_j} = 0`` for ``j > t``.  ``canonical_hint``
performs this relabelling (for hints).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from math import gcd
from typing import Sequence

from kvopt.exact.backend import FeasibilityQuery, MoveBudget
from kvopt.scaling import (IntegerData, TargetRows, canonical_placement, capacity_classes, fits_target, integer_data,
                           placement_fits_target, target_rows)
from kvopt.model import Instance


@dataclass(frozen=True)
class GpuRow:
    """``sum_i coef[i]·x[models[i], gpu] + idle_bonus·y_gpu <= rhs`` (``idle_bonus`` is 0 or 1)."""

    gpu: int
    models: tuple[int, ...]
    coefs: tuple[int, ...]
    rhs: int
    idle_bonus: int
    demand_models: tuple[int, ...] | None = None  # models with demand in this row's scenario (None: the model's)


@dataclass(frozen=True)
class SymmetryCut:
    """``x[model, gpu] <= sum_{m in earlier} x[m, previous_gpu]`` (an empty sum fixes ``x`` to 0)."""

    model: int
    gpu: int
    previous_gpu: int
    earlier: tuple[int, ...]


@dataclass(frozen=True)
class AssignmentData:
    """Everything a backend needs to build the assignment model of one query."""

    num_models: int
    num_gpus: int
    allowed: tuple[tuple[int, ...], ...]  # allowed[i]: GPUs model i fits alone
    rows: tuple[GpuRow, ...]
    demand_models: tuple[int, ...]  # models with n_i > 0
    symmetry: tuple[SymmetryCut, ...]
    groups: tuple[tuple[int, ...], ...]  # GPUs of equal capacity, in index order
    order: tuple[int, ...]  # the symmetry order pi of the models
    max_coef: int  # largest |coefficient| or right-hand side of the reduced rows
    max_row_sum: int  # largest sum of a row's coefficients (for int64 checks)
    budget: "BudgetRow | None" = None

    def row_demand(self, row: GpuRow) -> tuple[int, ...]:
        return self.demand_models if row.demand_models is None else row.demand_models

    @property
    def infeasible_model(self) -> int | None:
        """A model that fits no GPU alone (the query is then infeasible), else ``None``."""
        return next((i for i, gpus in enumerate(self.allowed) if not gpus), None)

    def is_allowed(self, model: int, gpu: int) -> bool:
        return gpu in self.allowed[model]


@dataclass(frozen=True)
class BudgetRow:
    """``sum coef·x[model, gpu] >= need`` over the models' current GPUs (the move budget)."""

    terms: tuple[tuple[int, int, int], ...]  # (model, current gpu, cost)
    need: int

    def holds(self, gpu_of: Sequence[int]) -> bool:
        return sum(c for i, g, c in self.terms if gpu_of[i] == g) >= self.need


def budget_row(budget: MoveBudget, allowed: Sequence[Sequence[int]]) -> BudgetRow:
    """The budget as a row over the ``x_{i,cur(i)}`` that exist (a fixed-out one is a sure move)."""
    total = sum(c for c, g in zip(budget.cost, budget.current) if g is not None)
    terms = tuple((i, g, c) for i, (g, c) in enumerate(zip(budget.current, budget.cost))
                  if g is not None and c > 0 and g in allowed[i])
    return BudgetRow(terms, total - budget.limit)


def _fits_alone(rows: TargetRows, model: int, gpu: int) -> bool:
    return fits_target(rows, [model], gpu)


def _reduced_row(rows: TargetRows, gpu: int, models: Sequence[int], has_idle: bool) -> GpuRow:
    """The gcd-reduced row of ``gpu`` over ``models`` (see the module docstring)."""
    cap = rows.capacity[gpu]
    loaded_rhs = cap - 1 if rows.strict else cap
    coefs = [rows.weight[i] for i in models]
    divisor = 0
    for c in coefs:
        divisor = gcd(divisor, c)
    divisor = max(divisor, 1)
    reduced_loaded = loaded_rhs // divisor
    reduced_idle = cap // divisor
    bonus = reduced_idle - reduced_loaded if has_idle else 0
    rhs = reduced_loaded + bonus
    return GpuRow(gpu, tuple(models), tuple(c // divisor for c in coefs), rhs, bonus)


def _symmetry_cuts(allowed: Sequence[Sequence[int]], groups: Sequence[Sequence[int]],
                   order: Sequence[int]) -> list[SymmetryCut]:
    """The cuts of the module docstring, for every group of two or more GPUs."""
    cuts = []
    for group in groups:
        if len(group) < 2:
            continue
        members = [i for i in order if group[0] in allowed[i]]  # equal capacity: allowed on all or none
        for t, model in enumerate(members):
            for j in range(1, len(group)):
                cuts.append(SymmetryCut(model, group[j], group[j - 1], tuple(members[:t])))
    return cuts


def assignment_data(instance: Instance, target: Fraction, strict: bool = False, *,
                    symmetry: bool = True, data: IntegerData | None = None,
                    move_budget: MoveBudget | None = None) -> tuple[AssignmentData, TargetRows]:
    """The assignment model of the query ``KVPR_g <= target`` (``<`` if strict), and its exact rows.

    With scenarios, the returned ``TargetRows`` are the first scenario's (the
    model's rows cover all of them; check answers with ``verify_answer``).
    """
    demand_sets = [instance.for_scenario(s) for s in instance.scenarios] or [instance]
    all_rows = [target_rows(integer_data(d) if d is not instance else (data or integer_data(instance)),
                            Fraction(target), strict) for d in demand_sets]
    data = data or integer_data(instance)
    rows = all_rows[0]
    num_models, num_gpus = instance.num_models, instance.num_gpus
    allowed = tuple(tuple(g for g in range(num_gpus) if all(_fits_alone(r, i, g) for r in all_rows))
                    for i in range(num_models))
    demand_models = tuple(i for i in range(num_models) if rows.demand_weight[i] > 0)
    gpu_rows = []
    for k, scenario_rows in enumerate(all_rows):
        row_demand = tuple(i for i in range(num_models) if scenario_rows.demand_weight[i] > 0)
        for g in range(num_gpus):
            models = [i for i in range(num_models) if g in allowed[i]]
            has_idle = strict and any(scenario_rows.demand_weight[i] == 0 for i in models)
            row = _reduced_row(scenario_rows, g, models, has_idle)
            gpu_rows.append(row if k == 0 else replace(row, demand_models=row_demand))
    if len(all_rows) > 1:
        gpu_rows[:num_gpus] = [replace(r, demand_models=demand_models) for r in gpu_rows[:num_gpus]]
    groups = tuple(cls.gpus for cls in capacity_classes(data))
    order = tuple(sorted(range(num_models), key=lambda i: (-rows.weight[i], i)))
    cuts = _symmetry_cuts(allowed, groups, order) if symmetry and move_budget is None else []
    budget = budget_row(move_budget, allowed) if move_budget is not None else None
    budget_coefs = [c for _, _, c in budget.terms] + [abs(budget.need)] if budget is not None else []
    max_coef = max([1] + [max((*r.coefs, r.rhs)) for r in gpu_rows] + budget_coefs)
    max_row_sum = max([1] + [sum(r.coefs) + r.idle_bonus for r in gpu_rows] + [sum(budget_coefs)])
    return AssignmentData(num_models, num_gpus, allowed, tuple(gpu_rows), demand_models, tuple(cuts), groups,
                          order, max_coef, max_row_sum, budget), rows


def canonical_hint(model: AssignmentData, gpu_of: Sequence[int]) -> tuple[int, ...]:
    """The placement relabelled within capacity groups so it satisfies the symmetry cuts (if any)."""
    if not model.symmetry:
        return tuple(gpu_of)
    return canonical_placement(gpu_of, model.groups, model.order)


def verify_at_target(instance: Instance, rows: TargetRows, gpu_of: Sequence[int] | None,
                     data: IntegerData | None = None) -> bool:
    """Exact check of a solver's placement: valid indices, memory, and every (strict) target row."""
    if gpu_of is None or len(gpu_of) != instance.num_models:
        return False
    if any(not isinstance(g, int) or not 0 <= g < instance.num_gpus for g in gpu_of):
        return False
    return placement_fits_target(data or integer_data(instance), rows, gpu_of)


def verify_answer(instance: Instance, model: AssignmentData, rows: TargetRows, gpu_of: Sequence[int] | None) -> bool:
    """Exact check of a solver's placement against the whole query: target rows (every scenario's) and budget.

    Without scenarios this is ``verify_at_target``; with them, valid indices,
    memory in exact integers and every reduced row of ``model`` (equivalent
    integer rows).
    """
    if gpu_of is None or len(gpu_of) != instance.num_models:
        return False
    if any(not isinstance(g, int) or g not in model.allowed[i] for i, g in enumerate(gpu_of)):
        return False
    if not instance.scenarios:
        ok = verify_at_target(instance, rows, gpu_of)
    else:
        ok = _memory_fits(integer_data(instance), gpu_of) and all(_row_holds(model, row, gpu_of) for row in model.rows)
    return ok and (model.budget is None or model.budget.holds(gpu_of))


def _memory_fits(data: IntegerData, gpu_of: Sequence[int]) -> bool:
    used = [0] * len(data.cap_int)
    for i, g in enumerate(gpu_of):
        used[g] += data.size_int[i]
    return all(u <= c for u, c in zip(used, data.cap_int))


def _row_holds(model: AssignmentData, row: GpuRow, gpu_of: Sequence[int]) -> bool:
    on_gpu = [i for i, g in enumerate(gpu_of) if g == row.gpu]
    coef = dict(zip(row.models, row.coefs))
    demand = set(model.row_demand(row))
    load = sum(coef[i] for i in on_gpu)
    return load + row.idle_bonus * int(any(i in demand for i in on_gpu)) <= row.rhs


def answer_without_solver(query: FeasibilityQuery, model: AssignmentData, rows: TargetRows,
                          details: dict) -> tuple[str, tuple[int, ...] | None] | None:
    """The answers no solver is needed for, shared by the assignment backends.

    A model that breaks every GPU's row on its own proves infeasibility; a hint
    that passes the exact check at the target is a feasible answer.  ``None``
    means the solver must decide.  Notes why in ``details``.
    """
    blocked = model.infeasible_model
    if blocked is not None:
        details["reason"] = f"model {query.instance.models[blocked].name!r} fits no GPU alone"
        return "infeasible", None
    hint = tuple(int(g) for g in query.hint) if query.hint is not None else None
    if hint is not None and verify_answer(query.instance, model, rows, hint):
        details["via"] = "hint"
        return "feasible", hint
    return None
