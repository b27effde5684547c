"""Solver-independent linear models as plain data, and their hand-over to PuLP and highspy.

A ``LinearModel`` is columns with bounds and integrality, rows with coefficients
and bounds, and a linear objective (minimised).  ``to_pulp`` turns it into a PuLP
problem (which can also write LP/MPS files); ``to_highs`` passes it to a highspy
object in one call.  Formulations (``kvopt.exact.mccormick``) build these; the
export (``kvopt.exact.export``) writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LinearRow:
    """``lower <= sum coef·x[col] <= upper`` (``None`` = unbounded side)."""

    name: str
    cols: tuple[int, ...]
    coefs: tuple[int | float, ...]
    lower: int | float | None
    upper: int | float | None


@dataclass(frozen=True)
class LinearModel:
    """A MILP as plain data; objective is minimised."""

    name: str
    col_names: tuple[str, ...]
    col_lower: tuple[float, ...]
    col_upper: tuple[float, ...]
    integer: tuple[bool, ...]
    objective: tuple[float, ...]
    rows: tuple[LinearRow, ...]

    @property
    def num_cols(self) -> int:
        return len(self.col_names)

    def col(self, name: str) -> int:
        return self.col_names.index(name)


def to_pulp(model: LinearModel) -> tuple[Any, list[Any]]:
    """The model as a ``pulp.LpProblem`` (minimise) and its variables in column order."""
    import pulp

    prob = pulp.LpProblem(model.name, pulp.LpMinimize)
    variables = []
    for j, name in enumerate(model.col_names):
        cat = "Binary" if model.integer[j] and model.col_lower[j] == 0 and model.col_upper[j] == 1 else (
            "Integer" if model.integer[j] else "Continuous")
        variables.append(prob.add_variable(name, model.col_lower[j], model.col_upper[j], cat=cat))
    prob += pulp.lpSum(c * v for c, v in zip(model.objective, variables) if c != 0)
    for row in model.rows:
        expr = pulp.LpAffineExpression([(variables[j], c) for j, c in zip(row.cols, row.coefs)])
        if row.lower is not None and row.upper is not None and row.lower == row.upper:
            prob += expr == row.upper, row.name
            continue
        if row.lower is not None:
            prob += expr >= row.lower, row.name + ("_lo" if row.upper is not None else "")
        if row.upper is not None:
            prob += expr <= row.upper, row.name + ("_hi" if row.lower is not None else "")
    return prob, variables


def to_highs(model: LinearModel, highs: Any) -> None:
    """Pass the model to a ``highspy.Highs`` object in one ``passModel`` call (CSC matrix)."""
    import highspy

    inf = highspy.kHighsInf
    per_col: list[list[tuple[int, float]]] = [[] for _ in range(model.num_cols)]
    for r, row in enumerate(model.rows):
        for j, c in zip(row.cols, row.coefs):
            per_col[j].append((r, float(c)))
    starts = np.zeros(model.num_cols + 1, dtype=np.int32)
    index: list[int] = []
    value: list[float] = []
    for j, entries in enumerate(per_col):
        for r, c in entries:
            index.append(r)
            value.append(c)
        starts[j + 1] = len(index)
    lp = highspy.HighsLp()
    lp.num_col_ = model.num_cols
    lp.num_row_ = len(model.rows)
    lp.col_cost_ = np.array(model.objective, dtype=float)
    lp.col_lower_ = np.array(model.col_lower, dtype=float)
    lp.col_upper_ = np.array(model.col_upper, dtype=float)
    lp.row_lower_ = np.array([-inf if r.lower is None else float(r.lower) for r in model.rows])
    lp.row_upper_ = np.array([inf if r.upper is None else float(r.upper) for r in model.rows])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                       for b in model.integer]
    highs.passModel(lp)


