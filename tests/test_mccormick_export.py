"""McCormick MILP (vs brute force on tiny instances) and LP/MPS export (files parse back and
solve consistently with the exact check around the optimum)."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from pathlib import Path

import highspy
import pulp
import pytest

from kvopt.evaluate import exact_peak_kvpr
from kvopt.exact.assignment import assignment_data
from kvopt.exact.export import export_model
from kvopt.exact.milp import build_pulp_model
from kvopt.exact.mccormick import gpu_classes, solve_mccormick
from kvopt.scaling import canonical_placement
from kvopt.model import Instance, KvoptError


# -- independent brute force -----------------------------------------------------------
def _peak(inst: Instance, gpu_of) -> Fraction | None:
    """Exact peak from the raw fields (None: memory overflow or infinite KVPR)."""
    peak = Fraction(0)
    for g, cap in enumerate(inst.gpu_mem_gb):
        on = [m for m, h in zip(inst.models, gpu_of) if h == g]
        used = sum((Fraction(repr(float(m.size_gb))) for m in on), Fraction(0))
        need = sum((Fraction(repr(float(m.req_rate))) / Fraction(repr(float(m.slo))) for m in on), Fraction(0))
        free = Fraction(repr(float(cap))) - used
        if free < 0 or (need > 0 and free == 0):
            return None
        if need > 0:
            peak = max(peak, need / free)
    return peak


def brute(inst: Instance) -> tuple[Fraction, tuple[int, ...]]:
    """(optimum, the worst finite placement) over all G^n assignments."""
    best, worst, worst_at = None, None, None
    for gpu_of in itertools.product(range(inst.num_gpus), repeat=inst.num_models):
        peak = _peak(inst, gpu_of)
        if peak is None:
            continue
        best = peak if best is None else min(best, peak)
        if worst is None or peak > worst:
            worst, worst_at = peak, gpu_of
    assert best is not None
    return best, worst_at


def random_instance(seed: int) -> Instance:
    rng = random.Random(1000 + seed)
    while True:
        caps = [rng.choice([40, 60, 80]) for _ in range(rng.randint(2, 3))]
        models = [{"name": f"m{j}", "size_gb": rng.randint(5, 30), "req_rate": rng.randint(0, 9),
                   "slo": rng.randint(1, 9)} for j in range(rng.randint(3, 6))]
        try:
            inst = Instance.build(models, caps, name=f"mc{seed}")
        except KvoptError:
            continue
        if sum(m.req_rate for m in inst.models) > 0 and any(
                _peak(inst, p) is not None for p in itertools.product(range(len(caps)), repeat=len(models))):
            return inst


TINY = [random_instance(seed) for seed in range(10)]


# -- McCormick --------------------------------------------------------------------------
def test_mccormick_matches_brute_force_from_a_bad_start() -> None:
    """Warm-started at the *worst* placement, so the MILP has to do the work."""
    for inst in TINY:
        optimum, worst = brute(inst)
        result = solve_mccormick(inst, warm_start=worst, time_limit_s=20)
        assert result.status == "optimal", result.details
        assert result.details["proof"] == "set-partitioning check"
        assert result.peak_kvpr_exact == optimum
        assert exact_peak_kvpr(inst, result.placement.gpu_of) == optimum
        assert result.lower_bound_exact == optimum
        assert result.details["T_hi"] == float(_peak(inst, worst))


def test_mccormick_without_exact_proof_is_only_feasible() -> None:
    """The solver's tolerance-based optimum is never called optimal; the bound reported is the certified one."""
    checked = 0
    for inst in TINY[:5]:
        optimum, worst = brute(inst)
        result = solve_mccormick(inst, warm_start=worst, certify=False, time_limit_s=20)
        if result.details.get("proof") == "start meets bound":
            continue
        checked += 1
        assert result.status == "feasible" and "proof" not in result.details
        assert result.peak_kvpr_exact == optimum
        assert result.lower_bound_exact <= optimum
        assert result.lower_bound == float(result.lower_bound_exact)
        assert result.gap == pytest.approx(float(optimum / result.lower_bound_exact - 1))
    assert checked > 0


def test_mccormick_with_cbc() -> None:
    for inst in TINY[:3]:
        optimum, worst = brute(inst)
        result = solve_mccormick(inst, solver="cbc", warm_start=worst, time_limit_s=20)
        assert result.peak_kvpr_exact == optimum
        assert result.status == "optimal"


def test_mccormick_respects_given_bounds() -> None:
    inst = TINY[0]
    optimum, worst = brute(inst)
    result = solve_mccormick(inst, warm_start=worst, lower=optimum / 2, upper=optimum * 2)
    assert result.details["T_hi"] <= float(optimum) * 2 + 1e-12
    assert result.peak_kvpr_exact == optimum
    with pytest.raises(KvoptError, match="unknown solver"):
        solve_mccormick(inst, solver="gurobi")


def test_canonical_relabelling_keeps_peak_and_meets_symmetry_bounds() -> None:
    for inst in TINY:
        _, worst = brute(inst)
        canon = canonical_placement(worst, gpu_classes(inst))
        assert _peak(inst, canon) == _peak(inst, worst)
        for gpus in gpu_classes(inst):  # k-th GPU of a class carries no model with index < k
            for k, g in enumerate(gpus):
                assert all(i >= k for i, h in enumerate(canon) if h == g)


# -- export -----------------------------------------------------------------------------
def _highs_status(path: Path) -> tuple[str, int, int, float]:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(path)) == highspy.HighsStatus.kOk
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    return status, h.getNumCol(), h.getNumRow(), h.getInfo().objective_function_value


@pytest.mark.parametrize("fmt", ["lp", "mps"])
def test_assignment_export_is_consistent_with_exact_check(tmp_path: Path, fmt: str) -> None:
    for inst in TINY[:5]:
        optimum, _ = brute(inst)
        n, g = inst.num_models, inst.num_gpus
        cases = [(optimum, False, "Optimal"), (optimum, True, "Infeasible"),
                 (optimum * Fraction(999, 1000), False, "Infeasible"),
                 (optimum * Fraction(1001, 1000), True, "Optimal")]
        for target, strict, expected in cases:
            path = tmp_path / f"{inst.name}.{fmt}"
            info = export_model(inst, target, path, fmt=fmt, strict=strict)
            status, cols, rows, _ = _highs_status(path)
            assert status == expected, (inst, target, strict)
            # The file is the model the MILP backend solves: same variables (fixings) and rows (symmetry cuts).
            solved, x = build_pulp_model(assignment_data(inst, target, strict)[0])
            assert (info.num_variables, info.num_constraints) == (len(solved.variables()), solved.numConstraints())
            assert rows == solved.numConstraints() and len(x) <= n * g
        if fmt == "mps":
            variables, problem = pulp.LpProblem.fromMPS(str(path))
            assert sum(1 for name in variables if name.startswith("x_")) == len(x)
            assert all(problem.get_constraint_by_name(f"one_{i}") is not None for i in range(n))


@pytest.mark.parametrize("fmt", ["lp", "mps"])
def test_mccormick_export_solves_to_the_optimum(tmp_path: Path, fmt: str) -> None:
    for inst in TINY[:4]:
        optimum, worst = brute(inst)
        upper = _peak(inst, worst)
        path = tmp_path / f"{inst.name}_mc.{fmt}"
        info = export_model(inst, upper, path, fmt=fmt, model="mccormick")
        n, g = inst.num_models, inst.num_gpus
        assert info.num_variables == 1 + 2 * n * g
        assert info.num_constraints == n + 2 * g + 4 * n * g
        status, cols, rows, objective = _highs_status(path)
        assert status == "Optimal" and cols == 1 + 2 * n * g and rows == n + 2 * g + 4 * n * g
        assert objective == pytest.approx(float(optimum), rel=1e-6)
        if fmt == "mps":
            variables, problem = pulp.LpProblem.fromMPS(str(path))
            assert len(variables) == 1 + 2 * n * g and problem.numConstraints() == n + 2 * g + 4 * n * g


def test_export_rejects_bad_arguments(tmp_path: Path) -> None:
    inst = TINY[0]
    with pytest.raises(KvoptError, match="format"):
        export_model(inst, Fraction(1, 10), tmp_path / "a.txt", fmt="txt")
    with pytest.raises(KvoptError, match="model"):
        export_model(inst, Fraction(1, 10), tmp_path / "a.lp", model="cp")
    with pytest.raises(KvoptError, match="must be > 0"):
        export_model(inst, Fraction(0), tmp_path / "a.lp")
    # A target whose integer rows would not print exactly in 12 digits.
    with pytest.raises(KvoptError, match="smaller denominator"):
        export_model(inst, Fraction(10**15 + 1, 10**16 + 7), tmp_path / "a.lp")


def test_strict_export_allows_a_full_gpu_without_demand(tmp_path: Path) -> None:
    """The idle_g binaries: a zero-demand model may fill a GPU exactly under ``< T``."""
    inst = Instance.build([{"name": "a", "size_gb": 40, "req_rate": 0, "slo": 1},
                           {"name": "b", "size_gb": 10, "req_rate": 1, "slo": 1}], [40, 40])
    for target, expected in ((Fraction(1, 30), "Infeasible"), (Fraction(1, 29), "Optimal")):
        path = tmp_path / "full.lp"
        export_model(inst, target, path, strict=True)
        assert _highs_status(path)[0] == expected
