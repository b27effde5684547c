"""Solver-independent linear models, and their export as LP/MPS files.

A ``LinearModel`` is plain data (columns with bounds and integrality, rows with
coefficients and bounds, a linear objective).  ``to_pulp`` turns it into a PuLP
problem (written with PuLP's ``writeLP``/``writeMPS`` so users with Gurobi or
CPLEX can solve the same model); ``to_highs`` passes it to a highspy object in one
call.  Two models are built here or in ``kvopt.exact.mccormick``:

* ``assignment``: feasibility at a target ``T = p/q``, binary ``x_ig``::

      sum_g x_ig = 1                                  (every model on one GPU)
      sum_i weight_i x_ig <= cap_g                    (KVPR_g <= T; integer row of scaling.py)

  Every row is divided by the gcd of its coefficients and right-hand side (an
  equivalent integer row with smaller numbers).  With ``strict`` the row of a GPU
  that carries demand is ``<= cap_g - 1``: when some models have zero demand a
  binary ``idle_g`` (GPU carries no demand) gives the row ``+1`` back
  (``sum_i w_i x_ig - idle_g <= cap_g - 1``, ``x_ig + idle_g <= 1`` for models with
  demand).  The memory row is implied (``weight_i >= p·L·sint_i``) and not written.

* ``mccormick``: minimise ``T`` (see ``kvopt.exact.mccormick``); the export's
  ``target`` is its upper bound ``T_hi``.

**Precision of the files.**  PuLP prints numbers with 12 significant digits
(LP) / 13 (MPS).  The assignment model is therefore written only if every
(gcd-reduced) integer coefficient is below ``10^12``, where the printed number is
the integer itself; otherwise ``export_model`` raises ``KvoptError`` asking for a
target with a smaller denominator.  The McCormick model has fractional data
(``n_i``) and is a floating-point model anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import Sequence

from kvopt.exact.linear import LinearModel, LinearRow, to_pulp
from kvopt.scaling import integer_data, target_rows
from kvopt.model import Instance, KvoptError

EXACT_PRINT_LIMIT = 10**12  # PuLP's "%.12g": integers below this print exactly
FORMATS = ("lp", "mps")
MODELS = ("assignment", "mccormick")


@dataclass(frozen=True)
class ExportInfo:
    """What was written: path, format, model, and its size."""

    path: Path
    fmt: str
    model: str
    num_variables: int
    num_constraints: int
    max_abs_coefficient: float


# -- the assignment feasibility model ---------------------------------------------------
def _reduced_row(cols: Sequence[int], coefs: Sequence[int], upper: int) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Divide an integer ``<=`` row by the gcd of its coefficients and rhs (an equivalent row).

    ``sum a_j x_j <= b`` with ``d | a_j`` for all j: over integers ``x`` the row is
    ``sum (a_j/d) x_j <= floor(b/d)``, which equals ``b/d`` when ``d | b`` too.
    We divide by ``gcd(a, b)`` so no floor is needed.
    """
    divisor = 0
    for value in (*coefs, upper):
        divisor = gcd(divisor, value)
    divisor = divisor or 1
    return tuple(cols), tuple(c // divisor for c in coefs), upper // divisor


def x_name(model: int, gpu: int) -> str:
    return f"x_{model}_{gpu}"


def assignment_model(instance: Instance, target: Fraction, strict: bool = False) -> LinearModel:
    """Feasibility at ``T`` (``< T`` if strict) with the exact integer rows of ``kvopt.scaling``."""
    data = integer_data(instance)
    rows_t = target_rows(data, Fraction(target), strict)
    n, num_gpus = instance.num_models, instance.num_gpus
    col_names = [x_name(i, g) for i in range(n) for g in range(num_gpus)]
    zero_demand = [i for i in range(n) if rows_t.demand_weight[i] == 0]
    need_idle = strict and bool(zero_demand)
    if need_idle:
        col_names += [f"idle_{g}" for g in range(num_gpus)]
    rows: list[LinearRow] = []
    for i in range(n):
        rows.append(LinearRow(f"assign_{i}", tuple(i * num_gpus + g for g in range(num_gpus)),
                              (1,) * num_gpus, 1, 1))
    for g in range(num_gpus):
        cols = [i * num_gpus + g for i in range(n)]
        coefs = [rows_t.weight[i] for i in range(n)]
        upper = rows_t.capacity[g] - (1 if strict else 0)
        if need_idle:
            cols.append(n * num_gpus + g)
            coefs.append(-1)
        cols_r, coefs_r, upper_r = _reduced_row(cols, coefs, upper)  # gcd is 1 when idle_g is in the row
        rows.append(LinearRow(f"kvpr_{g}", cols_r, coefs_r, None, upper_r))
        if need_idle:
            for i in range(n):
                if rows_t.demand_weight[i] > 0:
                    rows.append(LinearRow(f"idle_{g}_{i}", (i * num_gpus + g, n * num_gpus + g), (1, 1), None, 1))
    num_cols = len(col_names)
    return LinearModel(
        name="kvpr_assignment", col_names=tuple(col_names), col_lower=(0.0,) * num_cols,
        col_upper=(1.0,) * num_cols, integer=(True,) * num_cols, objective=(0.0,) * num_cols, rows=tuple(rows),
    )


def _max_abs_coefficient(model: LinearModel) -> int | float:
    values = [abs(c) for row in model.rows for c in row.coefs]
    values += [abs(b) for row in model.rows for b in (row.lower, row.upper) if b is not None]
    return max(values, default=0)


# -- export -----------------------------------------------------------------------------
def export_model(instance: Instance, target: Fraction, path: str | Path, fmt: str = "lp",
                 model: str = "assignment", *, strict: bool = False) -> ExportInfo:
    """Write the ``assignment`` model at ``target`` or the ``mccormick`` model (``T <= target``).

    Raises ``KvoptError`` for an unknown format/model, a non-positive target, or
    an assignment model whose integers would not print exactly (see module doc).
    """
    if fmt not in FORMATS:
        raise KvoptError(f"field 'fmt': unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if model not in MODELS:
        raise KvoptError(f"field 'model': unknown model {model!r}; choose one of {', '.join(MODELS)}")
    target = Fraction(target)
    if target <= 0:
        raise KvoptError(f"field 'T': target must be > 0, got {target}")
    if model == "assignment":
        linear = assignment_model(instance, target, strict)
        biggest = _max_abs_coefficient(linear)
        if biggest >= EXACT_PRINT_LIMIT:
            raise KvoptError(
                f"field 'T': at T={target} the integer rows need coefficients up to {biggest}, which an "
                f"LP/MPS file (12 significant digits) cannot hold exactly; use a target with a smaller "
                f"denominator, e.g. {target.limit_denominator(10**4)}")
    else:
        from kvopt.exact.mccormick import mccormick_model
        from kvopt.exact.setpart import mediant_lower_bound

        lower = mediant_lower_bound(instance)
        if target < lower:
            raise KvoptError(f"field 'T': target {target} is below the lower bound {lower} (model infeasible)")
        linear = mccormick_model(instance, lower, target)
    prob, _ = to_pulp(linear)
    out = Path(path)
    if fmt == "lp":
        prob.writeLP(str(out))
    else:
        prob.writeMPS(str(out))
    return ExportInfo(out, fmt, model, linear.num_cols, prob.numConstraints(), float(_max_abs_coefficient(linear)))
