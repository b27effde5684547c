"""CP-SAT feasibility backend on the assignment model (``kvopt.exact.assignment``).

CP-SAT works on integers only: the gcd-reduced rows of the assignment model are
passed as they are (int64), so its answers are exact.  ``INFEASIBLE`` is a proof
(no tolerance involved); a ``feasible`` placement is still re-checked exactly
(``verify_at_target``) before it is returned.  A model whose coefficients could
overflow int64 (row sums ``>= 2^62``) is not built: the answer is ``unknown``.

Status mapping: ``OPTIMAL``/``FEASIBLE`` -> ``feasible`` (with the placement),
``INFEASIBLE`` -> ``infeasible``, anything else (time limit, ``MODEL_INVALID``)
-> ``unknown``.  ``workers`` and ``seed`` are fixed per backend (default one
worker, seed 0: deterministic runs); the query's ``seed``/``workers`` are used
when the backend was built without them.
"""

from __future__ import annotations

from typing import Any

from kvopt.exact.assignment import (AssignmentData, answer_without_solver, assignment_data, canonical_hint,
                                    verify_answer)
from kvopt.exact.backend import FeasibilityQuery, TimedBackend, seconds_left
from kvopt.exact.solvers import CPSAT_STATUS_MAP, configure_cpsat, mapped_status
from kvopt.model import KvoptError

INT64_SAFE = 2**62  # CP-SAT rejects linear expressions that may overflow int64


class CpSatBackend(TimedBackend):
    """``FeasibilityBackend``: the assignment model with CP-SAT (exact integer arithmetic)."""

    name = "cpsat"
    model_name = "assignment"

    def __init__(self, workers: int | None = 1, seed: int | None = 0, time_limit_s: float | None = None,
                 symmetry: bool = True) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise KvoptError(f"cpsat: workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.seed = seed
        self.time_limit_s = time_limit_s
        self.symmetry = symmetry

    def answer(self, query: FeasibilityQuery, deadline: float) -> tuple[str, tuple[int, ...] | None, dict[str, Any]]:
        instance = query.instance
        model, rows = assignment_data(instance, query.target, query.strict, symmetry=self.symmetry,
                                      move_budget=query.move_budget)
        details: dict[str, Any] = {"model": self.model_name, "max_coef": model.max_coef}
        early = answer_without_solver(query, model, rows, details)
        if early is not None:
            return (*early, details)
        if model.max_row_sum >= INT64_SAFE:
            details["reason"] = f"row coefficients too large for int64 (row sum {model.max_row_sum})"
            return "unknown", None, details
        hint = tuple(int(g) for g in query.hint) if query.hint is not None else None
        status_name, gpu_of, stats = solve_assignment_cpsat(
            model, hint=hint, time_limit_s=seconds_left(deadline),
            workers=self.workers if self.workers is not None else query.workers,
            seed=self.seed if self.seed is not None else query.seed)
        details.update(stats, solver_status=status_name)
        status = mapped_status(CPSAT_STATUS_MAP, status_name)
        if status == "feasible" and not verify_answer(instance, model, rows, gpu_of):
            details["reason"] = "solution failed the exact re-check"
            return "unknown", None, details
        return status, gpu_of if status == "feasible" else None, details


def solve_assignment_cpsat(model: AssignmentData, *, hint: tuple[int, ...] | None, time_limit_s: float,
                           workers: int, seed: int) -> tuple[str, tuple[int, ...] | None, dict[str, Any]]:
    """Build and solve the CP-SAT model; return (status name, placement or None, statistics)."""
    from ortools.sat.python import cp_model

    cp = cp_model.CpModel()
    x = {(i, g): cp.new_bool_var(f"x_{i}_{g}") for i in range(model.num_models) for g in model.allowed[i]}
    for i in range(model.num_models):
        cp.add_exactly_one(x[i, g] for g in model.allowed[i])
    _add_rows(cp, model, x)
    for cut in model.symmetry:
        if (cut.model, cut.gpu) not in x:
            continue
        earlier = [x[m, cut.previous_gpu] for m in cut.earlier if (m, cut.previous_gpu) in x]
        if earlier:
            cp.add(x[cut.model, cut.gpu] <= sum(earlier))
        else:
            cp.add(x[cut.model, cut.gpu] == 0)
    if hint is not None and len(hint) == model.num_models:
        canonical = canonical_hint(model, hint)
        for (i, g), var in x.items():
            cp.add_hint(var, canonical[i] == g)
    solver = cp_model.CpSolver()
    configure_cpsat(solver, time_limit_s=time_limit_s, seed=seed, workers=workers)
    status = solver.solve(cp)
    name = solver.status_name(status)
    stats = {"branches": solver.num_branches, "conflicts": solver.num_conflicts, "wall_time": solver.wall_time}
    gpu_of = None
    if mapped_status(CPSAT_STATUS_MAP, name) == "feasible":
        gpu_of = tuple(next(g for g in model.allowed[i] if solver.boolean_value(x[i, g]))
                       for i in range(model.num_models))
    return name, gpu_of, stats


def _add_rows(cp: Any, model: AssignmentData, x: dict[tuple[int, int], Any]) -> None:
    """Target rows; with ``idle_bonus`` a demand indicator ``y_g`` (``x_ig -> y_g`` for demand models);
    the move budget row when there is one."""
    if model.budget is not None:
        cp.add(sum(c * x[i, g] for i, g, c in model.budget.terms) >= model.budget.need)
    for k, row in enumerate(model.rows):
        demand = set(model.row_demand(row))
        load = sum(c * x[i, row.gpu] for i, c in zip(row.models, row.coefs))
        if row.idle_bonus:
            loaded = cp.new_bool_var(f"y_{k}")
            for i in row.models:
                if i in demand:
                    cp.add_implication(x[i, row.gpu], loaded)
            cp.add(load + row.idle_bonus * loaded <= row.rhs)
        elif row.models:
            cp.add(load <= row.rhs)
