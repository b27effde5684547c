"""MILP feasibility backend on the assignment model (``kvopt.exact.assignment``) via PuLP: CBC or HiGHS.

**What is trusted.**  MILP solvers compute in floating point with tolerances
(feasibility ~1e-6/1e-7 on scaled rows, integrality ~1e-6), and the rows of the
assignment model have large integer coefficients (up to ``q·M·nint + p·L·sint``,
after division by their gcd).  Therefore:

* a ``feasible`` answer is never taken on the solver's word: the placement is
  read back by rounding ``x_ig`` and re-checked in exact integer arithmetic
  (``verify_at_target``).  If it fails, the answer is ``unknown``;
* an ``infeasible`` answer is returned only if every reduced coefficient and
  right-hand side is at most ``TRUST_LIMIT = 2^31``.  Tolerances only *enlarge*
  the set a solver accepts, so an infeasibility found with them implies exact
  infeasibility; what remains is the risk of numerical error in the LP solves,
  which the limit keeps small (every row activity is an exact double, far below
  2^53).  This is a float-based proof, not an exact one: above the limit the
  answer is ``unknown``, and the default proof backends (set-partitioning search,
  CP-SAT) are exact-integer;
* CBC receives the model through an MPS file printed with 13 significant
  digits, so a model with a coefficient ``>= 10^13`` is not sent to CBC at all
  (``unknown``).  HiGHS receives doubles directly (exact below 2^53).

Warm start: CBC gets the hint through ``setInitialValue`` + ``warmStart=True``;
HiGHS through ``Highs.setSolution`` before the run.  The hint is first made to
satisfy the symmetry cuts (``canonical_hint``).  Both run single-threaded.
"""

from __future__ import annotations

from typing import Any

import pulp

from kvopt.exact.assignment import (AssignmentData, answer_without_solver, assignment_data, canonical_hint,
                                    verify_answer)
from kvopt.exact.backend import MIN_LIMIT_S, FeasibilityQuery, TimedBackend, seconds_left
from kvopt.exact.solvers import cbc_engine, highs_engine_for_pulp, pulp_status
from kvopt.model import KvoptError

SOLVERS = ("highs", "cbc")
TRUST_LIMIT = 2**31  # infeasibility is trusted only when every reduced coefficient is at most this
MPS_EXACT_LIMIT = 10**13  # "% .12e" prints 13 significant digits: integers below this are exact


class MilpBackend(TimedBackend):
    """``FeasibilityBackend``: the assignment model as a MILP, solved by CBC or HiGHS through PuLP."""

    model_name = "assignment"

    def __init__(self, solver: str = "highs", time_limit_s: float | None = None, symmetry: bool = True,
                 warm_start: bool = True) -> None:
        if solver not in SOLVERS:
            raise KvoptError(f"milp: unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        self.solver = solver
        self.name = f"milp-{solver}"
        self.time_limit_s = time_limit_s
        self.symmetry = symmetry
        self.warm_start = warm_start

    def answer(self, query: FeasibilityQuery, deadline: float) -> tuple[str, tuple[int, ...] | None, dict[str, Any]]:
        instance = query.instance
        model, rows = assignment_data(instance, query.target, query.strict, symmetry=self.symmetry,
                                      move_budget=query.move_budget)
        details: dict[str, Any] = {"model": self.model_name, "solver": self.solver, "max_coef": model.max_coef}
        early = answer_without_solver(query, model, rows, details)
        if early is not None:
            return (*early, details)
        hint = tuple(int(g) for g in query.hint) if query.hint is not None else None
        if self.solver == "cbc" and model.max_coef >= MPS_EXACT_LIMIT:
            details["reason"] = f"coefficient {model.max_coef} cannot be written exactly to CBC's MPS file"
            return "unknown", None, details
        start_values = hint if self.warm_start else None
        status, gpu_of, solver_status = solve_assignment_pulp(model, self.solver, time_limit_s=seconds_left(deadline),
                                                              hint=start_values, seed=query.seed)
        details["solver_status"] = solver_status
        if status == "feasible":
            if verify_answer(instance, model, rows, gpu_of):
                return "feasible", gpu_of, details
            details["reason"] = "solution failed the exact re-check"
            return "unknown", None, details
        if status == "infeasible":
            if model.max_coef <= TRUST_LIMIT:
                return "infeasible", None, details
            details["reason"] = f"infeasible not trusted: coefficient {model.max_coef} > {TRUST_LIMIT}"
            return "unknown", None, details
        return "unknown", None, details


def build_pulp_model(model: AssignmentData) -> tuple[pulp.LpProblem, dict[tuple[int, int], pulp.LpVariable]]:
    """The assignment model as a PuLP problem (objective 0: a feasibility problem)."""
    prob = pulp.LpProblem("assignment", pulp.LpMinimize)
    x = {(i, g): _binary(prob, f"x_{i}_{g}") for i in range(model.num_models) for g in model.allowed[i]}
    prob += pulp.lpSum([])
    for i in range(model.num_models):
        prob += pulp.lpSum(x[i, g] for g in model.allowed[i]) == 1, f"one_{i}"
    # Row k of the base rows is GPU k's, so the names y_g / row_g / demand_i_g are unchanged without scenarios.
    for k, row in enumerate(model.rows):
        if not row.models:
            continue
        demand = set(model.row_demand(row))
        load = pulp.lpSum(c * x[i, row.gpu] for i, c in zip(row.models, row.coefs))
        if row.idle_bonus:
            loaded = _binary(prob, f"y_{k}")
            for i in row.models:
                if i in demand:
                    prob += x[i, row.gpu] <= loaded, f"demand_{i}_{k}"
            prob += load + row.idle_bonus * loaded <= row.rhs, f"row_{k}"
        else:
            prob += load <= row.rhs, f"row_{k}"
    if model.budget is not None:
        prob += pulp.lpSum(c * x[i, g] for i, g, c in model.budget.terms) >= model.budget.need, "move_budget"
    for k, cut in enumerate(model.symmetry):
        if (cut.model, cut.gpu) not in x:
            continue
        earlier = [x[m, cut.previous_gpu] for m in cut.earlier if (m, cut.previous_gpu) in x]
        prob += x[cut.model, cut.gpu] <= pulp.lpSum(earlier), f"sym_{k}"
    return prob, x


def _binary(prob: pulp.LpProblem, name: str) -> pulp.LpVariable:
    """A binary variable (``prob.add_variable`` where PuLP has it: direct construction is deprecated)."""
    if hasattr(prob, "add_variable"):
        return prob.add_variable(name, 0, 1, cat=pulp.LpBinary)
    return pulp.LpVariable(name, cat=pulp.LpBinary)


class _HighsWithStart(pulp.HiGHS):
    """PuLP's HiGHS interface, plus a start solution passed to ``Highs.setSolution`` before the run."""

    def __init__(self, start: dict[str, float] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start = start

    def callSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802 - PuLP's method name
        if self.start:
            import highspy

            solution = highspy.HighsSolution()
            solution.col_value = [self.start.get(var.name, 0.0) for var in sorted(lp.variables(),
                                                                                   key=lambda v: v.index)]
            solution.value_valid = True
            lp.solverModel.setSolution(solution)
        super().callSolver(lp)


def _start_values(model: AssignmentData, hint: tuple[int, ...] | None) -> dict[str, float] | None:
    """``{var name: value}`` of the canonicalised hint (``y_g`` = GPU carries demand)."""
    if hint is None or len(hint) != model.num_models:
        return None
    canonical = canonical_hint(model, hint)
    if any(not model.is_allowed(i, g) for i, g in enumerate(canonical)):
        return None
    values = {f"x_{i}_{g}": 1.0 for i, g in enumerate(canonical)}
    for i in model.demand_models:
        values[f"y_{canonical[i]}"] = 1.0
    return values


def solve_assignment_pulp(model: AssignmentData, solver: str, *, time_limit_s: float,
                          hint: tuple[int, ...] | None = None, seed: int = 0
                          ) -> tuple[str, tuple[int, ...] | None, str]:
    """Solve with CBC or HiGHS; return (feasible/infeasible/unknown, rounded placement, solver status text)."""
    prob, x = build_pulp_model(model)
    start = _start_values(model, hint)
    if solver == "cbc":
        if start:
            for var in prob.variables():
                var.setInitialValue(start.get(var.name, 0.0))
        engine = cbc_engine(timeLimit=max(MIN_LIMIT_S, time_limit_s), warmStart=bool(start))
    else:
        engine = highs_engine_for_pulp(time_limit_s=time_limit_s, seed=seed,
                                       engine=lambda **options: _HighsWithStart(start, **options))
    prob.solve(engine)
    status, text = pulp_status(prob)
    return status, _read_placement(model, x) if status == "feasible" else None, text


def _read_placement(model: AssignmentData, x: dict[tuple[int, int], pulp.LpVariable]) -> tuple[int, ...] | None:
    """GPU of each model: the ``x_ig`` with the largest value (rounding; checked exactly later)."""
    gpu_of = []
    for i in range(model.num_models):
        values = [(x[i, g].varValue if x[i, g].varValue is not None else -1.0, g) for g in model.allowed[i]]
        value, gpu = max(values)
        if value < 0.5:
            return None
        gpu_of.append(gpu)
    return tuple(gpu_of)
