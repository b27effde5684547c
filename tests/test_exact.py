"""Exact solver (kvopt.exact): backends and the bisection driver against brute force on tiny instances,
strict/non-strict answers at the optimum, time limits, infeasible and infinite instances, references."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kvopt.evaluate import check_placement, exact_peak_kvpr
from kvopt.exact.backend import FeasibilityQuery
from kvopt.exact.bisection import ExactProgress, make_backend, solve_exact
from kvopt.heuristics.start import first_fit_start
from kvopt.exact.brute import brute_force_optimum
from kvopt.exact.cpsat import CpSatBackend
from kvopt.exact.milp import MilpBackend
from kvopt.exact.reference import write_reference
from kvopt.model import Instance, KvoptError, Model, PlacementError, infeasibility_reason
from kvopt.suites import load_suite

REPO = Path(__file__).resolve().parents[1]
SLOW_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def make(models: list[tuple[float, float, float]], caps: list[float]) -> Instance:
    """Models as (size_gb, req_rate, slo)."""
    return Instance.build([Model(f"m{i}", s, r, slo) for i, (s, r, slo) in enumerate(models)], caps)


@st.composite
def tiny_instances(draw: st.DrawFn, max_models: int = 7, max_gpus: int = 3) -> Instance:
    """<= 7 models, <= 3 GPUs (by default), equal or mixed capacities, some models without demand."""
    num_gpus = draw(st.integers(1, max_gpus))
    if draw(st.booleans()):
        caps = [draw(st.sampled_from([12, 20, 30]))] * num_gpus
    else:
        caps = [draw(st.sampled_from([8, 12, 20, 30])) for _ in range(num_gpus)]
    num_models = draw(st.integers(2, max_models))
    models = [(draw(st.sampled_from([1, 2, 3.5, 4, 5, 7, 9])), draw(st.sampled_from([0, 0.5, 1, 2, 3, 8])),
               draw(st.sampled_from([1, 2, 5]))) for _ in range(num_models)]
    inst = make(models, caps)
    assume(infeasibility_reason(inst) is None)
    return inst


def naive_optimum(inst: Instance) -> tuple[bool, Fraction | float | None]:
    """Every assignment, no symmetry reduction, kvopt.evaluate's exact peak (math.inf = +inf; None: nothing fits)."""
    fits, best = False, None
    for gpu_of in itertools.product(range(inst.num_gpus), repeat=inst.num_models):
        try:
            check_placement(inst, gpu_of)
        except PlacementError:
            continue
        fits = True
        peak = exact_peak_kvpr(inst, gpu_of)
        if best is None or peak < best:
            best = peak
    return fits, best


def assert_consistent(inst: Instance, result) -> None:
    """A returned placement is valid, its numbers are its exact peak, optimal means gap 0."""
    if result.placement is not None:
        check_placement(inst, result.placement)
        assert result.peak_kvpr_exact == exact_peak_kvpr(inst, result.placement.gpu_of)
    if result.status == "optimal":
        assert result.gap == 0 and result.lower_bound_exact == result.peak_kvpr_exact
    if result.status == "feasible" and result.peak_kvpr_exact is not None:
        assert result.lower_bound_exact <= result.peak_kvpr_exact


def assert_matches_brute(inst: Instance, result) -> None:
    optimum, placement = brute_force_optimum(inst)
    assert_consistent(inst, result)
    if placement is None:
        assert result.status == "infeasible" and result.placement is None
        return
    assert result.status == "optimal", result.details
    assert result.peak_kvpr_exact == optimum  # exact values (math.inf = +inf on both sides)


# -- brute force ----------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_instances())
def test_brute_force_symmetry_reduction_keeps_the_optimum(inst: Instance) -> None:
    fits, best = naive_optimum(inst)
    optimum, placement = brute_force_optimum(inst)
    assert (placement is not None) == fits
    assert optimum == best
    if placement is not None:
        check_placement(inst, placement)
        assert exact_peak_kvpr(inst, placement) == optimum


def test_brute_force_refuses_large_instances() -> None:
    inst = make([(1, 1, 1)] * 30, [80] * 4)
    with pytest.raises(KvoptError, match="brute force"):
        brute_force_optimum(inst)


# -- the driver with every backend ------------------------------------------------------
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_instances())
def test_cpsat_optimum_equals_brute_force(inst: Instance) -> None:
    # A first-fit start (usually poor) makes the backend do the bisection work.
    assert_matches_brute(inst, solve_exact(inst, backend="cpsat", warm_start=first_fit_start(inst)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                 HealthCheck.function_scoped_fixture])
@given(inst=tiny_instances())
def test_column_generation_bound_keeps_the_optimum(monkeypatch: pytest.MonkeyPatch, inst: Instance) -> None:
    """With the column-generation bound forced on (no time threshold) the optimum is unchanged."""
    pytest.importorskip("kvopt.exact.colgen")
    import kvopt.exact.bisection as bisection

    monkeypatch.setattr(bisection, "COLGEN_TRIGGER_S", 0.0)
    result = solve_exact(inst, backend="cpsat", warm_start=first_fit_start(inst))
    assert_matches_brute(inst, result)


@pytest.mark.parametrize("solver", ["highs", "cbc"])
@SLOW_SETTINGS
@given(inst=tiny_instances())
def test_milp_agrees_with_cpsat(solver: str, inst: Instance) -> None:
    start = first_fit_start(inst)
    milp = solve_exact(inst, backend="milp", solver=solver, warm_start=start)
    cpsat = solve_exact(inst, backend="cpsat", warm_start=start)
    assert_consistent(inst, milp)
    assert milp.status == cpsat.status
    assert milp.peak_kvpr_exact == cpsat.peak_kvpr_exact


@SLOW_SETTINGS
@given(tiny_instances())
def test_default_backend_matches_brute_force_and_beats_heuristics(inst: Instance) -> None:
    result = solve_exact(inst)
    assert_matches_brute(inst, result)
    heuristics = pytest.importorskip("kvopt.heuristics")
    for name in ("greedy", "pipeline"):
        try:
            heuristic = heuristics.run_heuristic(name, inst)
        except KvoptError:
            continue  # the heuristic found no placement
        if result.status == "optimal" and heuristic.peak_kvpr_exact is not None:
            assert result.peak_kvpr_exact is not None and result.peak_kvpr_exact <= heuristic.peak_kvpr_exact


# -- backends at the optimum: strict vs non-strict --------------------------------------
def _backends() -> list:
    return [CpSatBackend(), MilpBackend("highs"), MilpBackend("cbc")]


@SLOW_SETTINGS
@given(tiny_instances())
def test_backends_answer_exactly_at_the_optimum(inst: Instance) -> None:
    """KVPR <= T* is feasible and KVPR < T* infeasible; the placement meets T*."""
    optimum, _ = brute_force_optimum(inst)
    assume(optimum is not None and 0 < optimum < math.inf)
    for backend in _backends():
        at = backend.check(FeasibilityQuery(inst, optimum, strict=False))
        below = backend.check(FeasibilityQuery(inst, optimum, strict=True))
        assert at.status == "feasible", (backend.name, at.details)
        assert exact_peak_kvpr(inst, check_placement(inst, at.gpu_of)) <= optimum
        assert below.status == "infeasible", (backend.name, below.details)


def test_strict_row_with_an_idle_gpu() -> None:
    # Peak 1/2 needs the demand-free 10 GB model alone on a GPU, filling it exactly (KVPR 0):
    # the strict row of a GPU without demand must keep its full capacity.
    inst = make([(10, 0, 1), (6, 1, 1), (6, 1, 1)], [10, 20])
    optimum, _ = brute_force_optimum(inst)
    assert optimum == Fraction(2, 8)
    for backend in _backends():
        assert backend.check(FeasibilityQuery(inst, optimum, strict=False)).status == "feasible"
        assert backend.check(FeasibilityQuery(inst, optimum, strict=True)).status == "infeasible"
        assert backend.check(FeasibilityQuery(inst, optimum * 2, strict=True)).status == "feasible"


def test_hint_is_returned_when_it_meets_the_target() -> None:
    inst = make([(4, 1, 1), (4, 1, 1), (4, 1, 1)], [10, 10])
    hint = (0, 0, 1)  # peak 2 / (10 - 8) = 1
    for backend in _backends():
        answer = backend.check(FeasibilityQuery(inst, Fraction(1), hint=hint))
        assert answer.status == "feasible" and answer.gpu_of == hint


# -- special outcomes ----------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "cpsat", "milp", "setpart"])
def test_memory_infeasible_instance(backend: str) -> None:
    inst = make([(50, 1, 1)] * 3, [80, 80])  # passes the totals check (150 <= 160), but no two fit together
    result = solve_exact(inst, backend=backend)
    assert result.status == "infeasible" and result.placement is None
    assert "memory" in result.details["reason"]


@pytest.mark.parametrize("backend", ["auto", "cpsat", "milp"])
def test_infinite_optimum(backend: str) -> None:
    inst = make([(80, 1, 1), (10, 1, 1)], [80, 40])  # the 80 GB model fills the only GPU it fits
    result = solve_exact(inst, backend=backend)
    assert result.status == "optimal" and math.isinf(result.peak_kvpr)
    assert result.peak_kvpr_exact == result.lower_bound_exact == math.inf and result.gap == 0
    check_placement(inst, result.placement)


def test_zero_demand_is_optimal_at_zero() -> None:
    inst = make([(20, 0, 1), (20, 0, 1), (30, 0, 1)], [40, 40])  # 20 + 20 | 30
    result = solve_exact(inst, backend="cpsat")
    assert result.status == "optimal" and result.peak_kvpr_exact == 0


def test_time_limit_never_claims_optimality() -> None:
    hard = next(i for i in load_suite("hetero") if i.name == "hetero_18")  # 25 models, 8 GPUs
    result = solve_exact(hard, backend="cpsat", time_limit_s=0.3, warm_start=first_fit_start(hard))
    assert result.status == "feasible"
    assert result.gap > 0 and result.lower_bound_exact < result.peak_kvpr_exact
    assert_consistent(hard, result)


def test_bad_arguments_are_rejected() -> None:
    inst = make([(4, 1, 1)], [10])
    with pytest.raises(KvoptError, match="backend"):
        solve_exact(inst, backend="gurobi")
    with pytest.raises(KvoptError, match="solver"):
        solve_exact(inst, solver="glpk")
    with pytest.raises(PlacementError):
        solve_exact(inst, warm_start=(3,))


def test_progress_callback_sees_every_backend_call() -> None:
    inst = make([(4, 3, 1), (6, 1, 1), (2, 2, 1), (5, 1, 2)], [12, 12])
    events: list[ExactProgress] = []
    result = solve_exact(inst, backend="cpsat", warm_start=first_fit_start(inst), progress=events.append)
    assert len(events) == result.details["iterations"] == len(
        [s for s in result.details["solves"] if "(" not in s[2]])
    assert all(e.lower <= e.target for e in events)


@SLOW_SETTINGS
@given(tiny_instances())
def test_a_better_incumbent_from_elsewhere_moves_the_bracket(inst: Instance) -> None:
    """An optimal placement handed in by ``incumbents`` is taken before the first question, so the
    first question is the strict proof at the optimum (or a bound argument settles it)."""
    from kvopt.evaluate import format_fraction

    optimum, placement = brute_force_optimum(inst)
    start = first_fit_start(inst)
    assume(optimum is not None and 0 < optimum < math.inf and start is not None)
    offers = iter([placement])
    result = solve_exact(inst, warm_start=start, incumbents=lambda: next(offers, None))
    assert result.status == "optimal" and result.peak_kvpr_exact == optimum
    improved = optimum < exact_peak_kvpr(inst, start)
    assert result.details["incumbents"] == {"taken": int(improved), "ignored": 0}
    if improved and result.details["solves"]:
        assert result.details["solves"][0][:2] == (format_fraction(optimum), True)



def test_every_better_placement_is_handed_on() -> None:
    inst = load_suite("tight")[2]
    improved: list[tuple[int, ...]] = []
    result = solve_exact(inst, warm_start=first_fit_start(inst), on_improve=improved.append)
    peaks = [exact_peak_kvpr(inst, p) for p in improved]
    assert peaks and all(a > b for a, b in zip(peaks, peaks[1:]))  # not the start, only improvements
    assert peaks[0] < exact_peak_kvpr(inst, first_fit_start(inst)) and peaks[-1] == result.peak_kvpr_exact

def test_invalid_incumbents_are_ignored_and_counted() -> None:
    inst = load_suite("tight")[2]  # first fit is not optimal there: the bisection asks ~10 questions
    plain = solve_exact(inst, warm_start=first_fit_start(inst))
    fed = solve_exact(inst, warm_start=first_fit_start(inst), incumbents=lambda: (0, 1, 7, 0))
    assert fed.details["incumbents"]["taken"] == 0 and fed.details["incumbents"]["ignored"] >= 1
    assert (fed.status, fed.peak_kvpr_exact, fed.placement) == (plain.status, plain.peak_kvpr_exact, plain.placement)


# -- adrs50 ------------------------------------------------------------------------------
def test_adrs50_default_and_cpsat_agree() -> None:
    """Two independent models (set partitioning by default, CP-SAT assignment) prove the same optima."""
    for inst in load_suite("adrs50")[:3]:
        default = solve_exact(inst)
        cpsat = solve_exact(inst, backend="cpsat", warm_start=first_fit_start(inst))
        assert default.status == cpsat.status == "optimal"
        assert default.peak_kvpr_exact == cpsat.peak_kvpr_exact
        assert default.details["backend"] == make_backend("auto", inst, upper=default.peak_kvpr_exact).name


def test_write_reference(tmp_path: Path) -> None:
    folder = tmp_path / "adrs50"
    folder.mkdir()
    for name in ("adrs50_07.json", "adrs50_10.json"):  # two 10-model cases
        shutil.copy(REPO / "instances" / "adrs50" / name, folder / name)
    path, data = write_reference("adrs50", folder, root=tmp_path, time_limit_s=30)
    assert path == folder / "reference.json"
    stored = json.loads(path.read_text())
    assert stored["suite"] == "adrs50" and set(stored["cases"]) == {"adrs50_07", "adrs50_10"}
    for inst in load_suite("adrs50", tmp_path):
        entry = stored["cases"][inst.name]
        expected = solve_exact(inst, backend="cpsat", warm_start=first_fit_start(inst))
        assert entry["status"] == "optimal" and entry["gap"] == 0
        assert Fraction(entry["value"]) == Fraction(entry["lower_bound"]) == expected.peak_kvpr_exact
        assert entry["value_float"] == pytest.approx(float(expected.peak_kvpr_exact))


def test_cbc_preprocessing_bug_instance_is_answered_correctly() -> None:
    """CBC 2.10.3's preprocessing called this feasible model infeasible (found by hypothesis)."""
    from kvopt.exact.backend import FeasibilityQuery
    from kvopt.exact.brute import brute_force_optimum
    from kvopt.exact.milp import MilpBackend

    rows = [("m0", 1, 0, 1), ("m1", 1, 0.5, 1), ("m2", 1, 3, 1), ("m3", 1, 3, 2), ("m4", 3.5, 0, 1), ("m5", 2, 1, 1)]
    inst = Instance.build([dict(name=a, size_gb=b, req_rate=c, slo=d) for a, b, c, d in rows], [30, 30])
    optimum, _ = brute_force_optimum(inst)
    assert MilpBackend("cbc").check(FeasibilityQuery(inst, optimum)).status == "feasible"
    assert MilpBackend("cbc").check(FeasibilityQuery(inst, optimum, strict=True)).status == "infeasible"


class _UndecidedAbove:
    """A backend that cannot decide any question at or above ``limit`` (as a timed-out tree) and asks
    CP-SAT below it: the bisection must go on below the undecided question, never claim optimality."""

    name = "undecided-above"

    def __init__(self, limit: Fraction) -> None:
        self.limit = limit
        self.exact = CpSatBackend()
        self.answers: list[tuple[Fraction, str]] = []

    def check(self, query: FeasibilityQuery):
        from kvopt.exact.backend import FeasibilityAnswer

        if query.target >= self.limit:
            answer = FeasibilityAnswer("unknown", None, 0.0, {"reason": "node or time limit"})
        else:
            answer = self.exact.check(query)
        self.answers.append((query.target, answer.status))
        return answer


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_instances(max_models=6), st.sampled_from([Fraction(1, 3), Fraction(2, 3), Fraction(9, 10)]))
def test_bisection_keeps_raising_the_bound_below_an_undecided_question(inst: Instance, share: Fraction) -> None:
    from kvopt.bounds import root_lower_bound
    from kvopt.exact import bisection

    optimum, best = brute_force_optimum(inst)
    root = root_lower_bound(inst)
    # (a root bound within 1e-3 of the optimum leaves too little room below the limit to ask anything)
    assume(optimum is not None and optimum != math.inf and root > 0 and optimum / root - 1 > Fraction(1, 1000))
    limit = root + share * (optimum - root)  # below the optimum: every question there is infeasible
    backend = _UndecidedAbove(limit)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bisection, "make_backend",
                      lambda *args, **kwargs: bisection.BackendChoice(backend, backend.name, "stub"))
        result = solve_exact(inst, time_limit_s=20, warm_start=best)  # upper = optimum: only the bound moves
    assert result.status != "optimal" or result.peak_kvpr_exact == optimum
    assert root <= result.lower_bound_exact <= optimum
    assume(any(status == "unknown" for _, status in backend.answers))  # (bound arguments can decide alone)
    below = [(t, status) for t, status in backend.answers if t < limit]
    assert below, "the driver stopped at the first unknown answer"
    proven = [t for t, status in below if status == "infeasible"]
    assert proven and result.lower_bound_exact >= max(proven)  # each proof raised the bound
