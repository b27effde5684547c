"""Export of the models kvopt solves as LP/MPS files (for Gurobi/CPLEX users).

The files hold exactly the models the backends solve, built by the same code:

* ``assignment``: the feasibility model at ``T = p/q`` of the MILP backend
  (``kvopt.exact.assignment`` data, ``kvopt.exact.milp.build_pulp_model``): variables
  fixed to 0 where a model alone breaks a GPU's row, gcd-reduced integer rows, the
  demand indicator ``y_g`` of the strict rows, and the symmetry cuts;
* ``mccormick``: minimise ``T`` (``kvopt.exact.mccormick.mccormick_model`` with its
  symmetry bounds and ``T_lo = root_lower_bound``); the export's ``target`` is ``T_hi``.

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
from pathlib import Path

from kvopt.bounds import root_lower_bound
from kvopt.exact.assignment import assignment_data
from kvopt.exact.linear import LinearModel, to_pulp
from kvopt.exact.mccormick import mccormick_model
from kvopt.exact.milp import build_pulp_model
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
        data, _ = assignment_data(instance, target, strict)
        if data.max_coef >= EXACT_PRINT_LIMIT:
            raise KvoptError(
                f"field 'T': at T={target} the integer rows need coefficients up to {data.max_coef}, which an "
                f"LP/MPS file (12 significant digits) cannot hold exactly; use a target with a smaller "
                f"denominator, e.g. {target.limit_denominator(10**4)}")
        prob, _ = build_pulp_model(data)
        biggest: float = data.max_coef
    else:
        lower = root_lower_bound(instance)
        if target < lower:
            raise KvoptError(f"field 'T': target {target} is below the lower bound {lower} (model infeasible)")
        linear = mccormick_model(instance, lower, target)
        prob, _ = to_pulp(linear)
        biggest = float(_max_abs_coefficient(linear))
    num_variables = len(prob.variables())  # before writing: PuLP adds a dummy column for an empty objective
    out = Path(path)
    if fmt == "lp":
        prob.writeLP(str(out))
    else:
        prob.writeMPS(str(out))
    return ExportInfo(out, fmt, model, num_variables, prob.numConstraints(), biggest)
