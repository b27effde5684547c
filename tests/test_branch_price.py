"""Branch-and-price backend (kvopt.exact.branch_price) against brute force and CP-SAT, its pieces
(L2, the knapsack under branching rules, the node certificate, round and repair) and the anytime
exact method (kvopt.anytime)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kvopt.anytime import combine, plan_budget, solve_exact_anytime
from kvopt.evaluate import check_placement, exact_peak_kvpr
from kvopt.exact.backend import FeasibilityQuery
from kvopt.exact.bisection import solve_exact
from kvopt.exact.branch_price import (
    BranchPriceBackend,
    Master,
    Rules,
    cheap_infeasibility,
    l2_bins,
    node_certificate,
    node_groups,
    packing_at,
    round_and_repair,
)
from kvopt.exact.brute import brute_force_optimum
from kvopt.exact.knapsack import best_pattern, branch_and_bound_knapsack, dp_knapsack
from kvopt.exact.cpsat import CpSatBackend
from kvopt.scaling import capacity_classes, integer_data, placement_fits_target, target_rows
from kvopt.model import Instance, Placement, Result
from kvopt.suites import load_suite
from test_exact import make, tiny_instances

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def tree_only() -> BranchPriceBackend:
    """No bin-completion search first: every answer comes from bounds or branch and price."""
    return BranchPriceBackend(search_nodes=0)


def brute_feasible(inst: Instance, target: Fraction, strict: bool) -> bool:
    data = integer_data(inst)
    rows = target_rows(data, target, strict)
    return any(placement_fits_target(data, rows, gpu_of)
               for gpu_of in itertools.product(range(inst.num_gpus), repeat=inst.num_models))


# -- the backend --------------------------------------------------------------------------------
@SETTINGS
@given(tiny_instances(), st.sampled_from([Fraction(1, 10), Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(3)]),
       st.booleans())
def test_feasibility_agrees_with_brute_force(inst: Instance, target: Fraction, strict: bool) -> None:
    answer = tree_only().check(FeasibilityQuery(inst, target, strict))
    assert answer.status != "unknown", answer.details
    assert (answer.status == "feasible") == brute_feasible(inst, target, strict), answer.details
    if answer.status == "feasible":
        peak = exact_peak_kvpr(inst, check_placement(inst, answer.gpu_of))
        assert peak < target if strict else peak <= target


@SETTINGS
@given(tiny_instances())
def test_answers_exactly_at_the_optimum(inst: Instance) -> None:
    """KVPR <= T* is feasible and KVPR < T* infeasible, through the tree (no search, no hint)."""
    optimum, _ = brute_force_optimum(inst)
    assume(optimum is not None and 0 < optimum < math.inf)
    backend = tree_only()
    at = backend.check(FeasibilityQuery(inst, optimum, strict=False))
    below = backend.check(FeasibilityQuery(inst, optimum, strict=True))
    assert at.status == "feasible", at.details
    assert exact_peak_kvpr(inst, check_placement(inst, at.gpu_of)) <= optimum
    assert below.status == "infeasible", below.details


@SETTINGS
@given(tiny_instances())
def test_bisection_optimum_equals_brute_force(inst: Instance) -> None:
    optimum, placement = brute_force_optimum(inst)
    result = solve_exact(inst, backend="branch-price", time_limit_s=30)
    if placement is None:
        assert result.status == "infeasible"
        return
    assert result.status == "optimal", result.details
    assert result.peak_kvpr_exact == optimum
    check_placement(inst, result.placement)
    assert result.details["root_lower_bound"] is not None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_instances(max_models=11, max_gpus=4), st.sampled_from([Fraction(1, 5), Fraction(1, 2), Fraction(2)]))
def test_feasibility_agrees_with_cpsat_on_larger_instances(inst: Instance, target: Fraction) -> None:
    ours = tree_only().check(FeasibilityQuery(inst, target, strict=True, time_limit_s=30))
    theirs = CpSatBackend().check(FeasibilityQuery(inst, target, strict=True, time_limit_s=30))
    assume(theirs.status != "unknown")
    assert ours.status == theirs.status, ours.details


def test_pool_carries_patterns_to_larger_targets() -> None:
    inst = load_suite("tight")[3]
    backend = BranchPriceBackend(search_nodes=0)
    first = backend.check(FeasibilityQuery(inst, Fraction(2), strict=False))
    assert first.status == "feasible"
    pool = next(iter(backend._pools.values()))
    assert pool  # multi-model columns were remembered
    data = integer_data(inst)
    rows = target_rows(data, Fraction(3), strict=False)
    # A pattern at T = 2 stays a pattern at T = 3 (N <= T(C - S) only gets easier).
    for cap_int, models in pool:
        gpu = data.cap_int.index(cap_int)
        assert sum(rows.weight[i] for i in models) <= rows.capacity[gpu]


def test_hard_family_case_is_proven_and_matches_the_reference() -> None:
    inst = next(i for i in load_suite("hetero") if i.name == "hetero_18")
    result = solve_exact(inst, backend="branch-price", time_limit_s=60)
    assert result.status == "optimal"
    assert result.peak_kvpr_exact == Fraction(19, 50)  # the stored reference, proven by setpart and CP-SAT


# -- pieces -----------------------------------------------------------------------------------------
def min_bins(weights: list[int], capacity: int) -> int:
    for bins in range(1, len(weights) + 1):
        for assignment in itertools.product(range(bins), repeat=len(weights)):
            loads = [0] * bins
            for w, b in zip(weights, assignment):
                loads[b] += w
            if max(loads) <= capacity:
                return bins
    return len(weights)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10), min_size=1, max_size=6), st.integers(10, 14))
def test_l2_is_a_valid_and_nontrivial_bin_bound(weights: list[int], capacity: int) -> None:
    bound = l2_bins(weights, capacity)
    assert -(-sum(weights) // capacity) <= bound <= min_bins(weights, capacity)


def test_l2_beats_the_continuous_bound() -> None:
    assert l2_bins([6, 6, 6], 10) == 3  # continuous bound: 2
    assert l2_bins([11], 10) == math.inf


def test_cheap_infeasibility_uses_l2() -> None:
    inst = make([(6, 0, 1)] * 3, [10, 10])  # no two fit together: 3 bins needed, 2 GPUs
    data = integer_data(inst)
    packing = packing_at(target_rows(data, Fraction(1)), capacity_classes(data))
    assert cheap_infeasibility(packing) == "Martello-Toth L2 bound"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 9)), min_size=1, max_size=8),
       st.integers(5, 25), st.sets(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=4),
       st.integers(0, 40))
def test_knapsack_under_conflicts_matches_enumeration(items: list[tuple[int, int]], limit: int,
                                                      pairs: set[tuple[int, int]], floor: int) -> None:
    n = len(items)
    conflicts = [set() for _ in range(n)]
    for a, b in pairs:
        if a < n and b < n and a != b:
            conflicts[a].add(b)
            conflicts[b].add(a)
    values, weights = [v for v, _ in items], [w for _, w in items]
    true_max = 0
    for mask in range(1 << n):
        chosen = [k for k in range(n) if mask >> k & 1]
        if sum(weights[k] for k in chosen) <= limit and not any(b in conflicts[a] for a in chosen for b in chosen):
            true_max = max(true_max, sum(values[k] for k in chosen))
    frozen = [frozenset(c) for c in conflicts]
    for solver in (best_pattern, branch_and_bound_knapsack):  # the dynamic program, and its fallback
        found = solver(values, weights, frozen, limit, 10**6, floor=floor)
        assert found.upper == max(floor, true_max) and found.value == max(floor, true_max)
        if true_max > floor:
            assert sum(values[g] for g in found.groups) == true_max
            assert sum(weights[g] for g in found.groups) <= limit
            assert not any(b in conflicts[a] for a in found.groups for b in found.groups)
        cut = solver(values, weights, frozen, limit, 3)
        assert cut.upper >= true_max >= cut.value  # a budget-limited search still bounds the maximum
    for max_states in (1, 2):  # a beam: still a valid set and a valid upper bound
        capped = dp_knapsack(values, weights, frozen, limit, floor, max_states=max_states)
        assert capped is not None and capped.upper >= max(floor, true_max) >= capped.value
    several = dp_knapsack(values, weights, frozen, limit, floor, keep_sets=4)
    assert several is not None and several.value == max(floor, true_max)
    sets = ([several.groups] if several.groups else []) + list(several.others)
    assert len(sets) == len(set(sets)) <= 4
    for found in sets:  # every further set is a distinct valid pattern worth more than the floor
        assert sum(weights[g] for g in found) <= limit and sum(values[g] for g in found) > floor
        assert not any(b in conflicts[a] for a in found for b in found)
    assert [sum(values[g] for g in found) for found in sets] == \
        sorted((sum(values[g] for g in found) for found in sets), reverse=True)  # best first


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(10**8, 2**31), min_size=1, max_size=14), st.integers(0, 10**7),
       st.sets(st.tuples(st.integers(0, 13), st.integers(0, 13)), max_size=6), st.integers(2, 6))
def test_dynamic_program_matches_branch_and_bound_on_correlated_items(weights: list[int], noise: int,
                                                                       pairs: set[tuple[int, int]], per_bin: int) -> None:
    """Strongly correlated values (as bin-packing duals are) and 31-bit weights: the int64 paths."""
    n = len(weights)
    values = [w // 2 + (noise * (k + 1)) % 1_000_003 for k, w in enumerate(weights)]
    conflicts = [set() for _ in range(n)]
    for a, b in pairs:
        if a < n and b < n and a != b:
            conflicts[a].add(b)
            conflicts[b].add(a)
    frozen = [frozenset(c) for c in conflicts]
    limit = sum(sorted(weights)[:per_bin])
    exact = branch_and_bound_knapsack(values, weights, frozen, limit, 10**9)
    assert exact.upper == exact.value
    dp = dp_knapsack(values, weights, frozen, limit)
    assert dp is not None and dp.value == dp.upper == exact.value
    assert sum(weights[g] for g in dp.groups) <= limit
    assert sum(values[g] for g in dp.groups) == dp.value


@SETTINGS
@given(tiny_instances(), st.lists(st.floats(0, 1), min_size=7, max_size=7),
       st.sampled_from([Fraction(1, 4), Fraction(1), Fraction(3)]))
def test_certificate_never_claims_a_feasible_target(inst: Instance, duals: list[float], target: Fraction) -> None:
    """Whatever the duals, the Farkas check is an exact argument: never true where a placement exists."""
    assume(brute_feasible(inst, target, False))
    data = integer_data(inst)
    packing = packing_at(target_rows(data, target), capacity_classes(data))
    groups = node_groups(packing.num_items, Rules())
    assert node_certificate(packing, groups, duals[: inst.num_models]) is not True


def test_round_and_repair_keeps_models_once_and_fills_the_rest() -> None:
    inst = make([(4, 1, 1), (4, 1, 1), (4, 1, 1), (2, 1, 1)], [20, 20])
    data = integer_data(inst)
    rows = target_rows(data, Fraction(1))
    packing = packing_at(rows, capacity_classes(data))
    columns = [(0, (0, 1)), (0, (1, 2))]  # overlapping columns; model 3 uncovered
    gpu_of = round_and_repair(packing, columns, [0.6, 0.4])
    assert gpu_of is not None and placement_fits_target(data, rows, gpu_of)
    assert gpu_of[0] == gpu_of[1] != gpu_of[2]


def test_node_groups_merge_together_pairs_and_record_conflicts() -> None:
    groups = node_groups(4, Rules(together=((0, 2),), apart=((2, 3),)))
    assert groups.group_of[0] == groups.group_of[2]
    g_three = groups.group_of[3]
    assert g_three in groups.conflicts[groups.group_of[0]]


# -- anytime exact ------------------------------------------------------------------------------
def _result(status: str, gpu_of: tuple[int, ...] | None, inst: Instance, bound: Fraction | None) -> Result:
    peak = exact_peak_kvpr(inst, gpu_of) if gpu_of is not None else None
    return Result(inst.name, "x", status, Placement(gpu_of) if gpu_of else None,
                  float(peak) if peak is not None else None, peak,
                  float(bound) if bound is not None else None, bound)


def test_combine_takes_the_best_placement_and_the_best_bound() -> None:
    inst = make([(10, 2, 1), (10, 1, 1), (10, 1, 1)], [40, 40])
    worse = _result("feasible", (0, 0, 0), inst, Fraction(1, 100))
    better = _result("feasible", (0, 1, 1), inst, Fraction(1, 50))
    merged = combine(inst, [worse, better])
    assert merged.placement.gpu_of == (0, 1, 1)
    assert merged.lower_bound_exact == Fraction(1, 50) and merged.status == "feasible"
    optimum = exact_peak_kvpr(inst, (0, 1, 1))
    proven = combine(inst, [worse, _result("feasible", (0, 1, 1), inst, optimum)])
    assert proven.status == "optimal" and proven.gap == 0 and proven.lower_bound_exact == optimum


def test_plan_budget_runs_lns_first_only_on_large_instances() -> None:
    assert plan_budget(30, 60).lns_first_s == 0 and plan_budget(30, 60).per_question_s is None
    assert plan_budget(30, 60).lns_last_s == 0
    large = plan_budget(64, 60)
    assert 0 < large.lns_first_s < 60 and large.per_question_s is not None
    assert 0 < large.lns_last_s and large.lns_first_s + large.lns_last_s < 60  # the proof keeps most of it
    huge = plan_budget(300, 60)  # beyond the proof's reach in a minute: LNS gets most of it
    assert huge.lns_first_s > large.lns_first_s and huge.lns_first_s + huge.lns_last_s > 30


def test_anytime_exact_is_not_worse_than_its_lns_phase_and_keeps_the_bound() -> None:
    inst = load_suite("medium")[0]  # 8 GPUs, 32 models: proof first
    result = solve_exact_anytime(inst, backend="branch-price", time_limit_s=30)
    check_placement(inst, result.placement)
    phases = result.details["anytime"]["phases"]
    assert result.peak_kvpr <= min(p[2] for p in phases)
    from kvopt.bounds import root_lower_bound

    assert result.lower_bound_exact >= root_lower_bound(inst)
    assert result.lower_bound_exact <= result.peak_kvpr_exact


def test_branching_proves_the_stored_optimum_of_a_medium_case() -> None:
    """medium_00 (8 GPUs, 32 models) at its reference optimum: the root LP sits at exactly 1 and does not
    decide the strict question; the tree does (measured: 3 nodes)."""
    from kvopt.suites import load_reference

    inst = next(i for i in load_suite("medium") if i.name == "medium_00")
    reference = load_reference("medium")["medium_00"]
    assert reference["status"] == "optimal"
    optimum = Fraction(reference["value"])
    at = tree_only().check(FeasibilityQuery(inst, optimum, strict=False))
    below = tree_only().check(FeasibilityQuery(inst, optimum, strict=True))
    assert at.status == "feasible" and exact_peak_kvpr(inst, at.gpu_of) <= optimum
    assert below.status == "infeasible" and below.details["nodes"] > 1

class RecordedBounds:
    """Stands in for the HiGHS object: keeps the column upper bounds ``Master.restrict`` sets."""

    upper: list[float] = []

    def addCol(self, *args: object) -> None:  # noqa: N802 - highspy's name
        pass

    def changeColsBounds(self, count: int, cols: object, lower: object, upper: list[float]) -> None:  # noqa: N802
        self.upper = list(upper)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sets(st.integers(0, 6), min_size=1), min_size=1, max_size=12),
       st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=3),
       st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=3))
def test_master_restricts_exactly_the_columns_that_break_the_rules(columns: list[set[int]],
                                                                   together: list[tuple[int, int]],
                                                                   apart: list[tuple[int, int]]) -> None:
    """The membership test per rule agrees with the definition: a column holds whole together-groups
    only, and never two groups an apart pair separates."""
    rules = Rules(tuple((i, j) for i, j in together if i != j), tuple((i, j) for i, j in apart if i != j))
    groups = node_groups(7, rules)
    highs = RecordedBounds()
    master = Master(highs, 7)
    for models in columns:
        master.add(0, sorted(models))
    master.restrict(rules)
    for (_, models), upper in zip(master.columns, highs.upper):
        present = {groups.group_of[i] for i in models}
        whole = sum(len(groups.members[g]) for g in present) == len(models)
        separated = any(groups.conflicts[g] & present for g in present)
        assert (upper == 0) == (not whole or separated)
