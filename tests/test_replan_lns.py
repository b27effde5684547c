"""Budget-aware LNS: the neighbourhood budget is exactly what the rest leaves; never over budget, never worse."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kvopt.bench.cases import load_cases
from kvopt.evaluate import objective_peak_exact
from kvopt.model import Instance
from kvopt.replan.core import best_within_budget
from kvopt.replan.lns import budget_lns, neighbourhood_instance
from kvopt.replan.moves import make_budget, move_cost, within_budget

REPLAN = load_cases("replan")


def model(name: str, size: float, rate: float, current: int | None) -> dict:
    return {"name": name, "size_gb": size, "req_rate": rate, "slo": 1, "current_gpu": current}


def test_a_neighbourhood_gets_what_the_rest_of_the_placement_leaves_of_the_budget():
    # a: 0 -> 0, b: 1 -> 2 (a move outside the neighbourhood {0, 1}), c: 2 -> 1 (moved in: spent whatever
    # happens), d: new, placed on 0 (never costs).
    instance = Instance.build([model("a", 10, 1, 0), model("b", 10, 1, 1), model("c", 10, 1, 2),
                               model("d", 10, 1, None)], [80, 80, 80])
    gpu_of = (0, 2, 1, 0)
    budget = make_budget(max_moves=5)
    sub, sub_budget = neighbourhood_instance(instance, gpu_of, (0, 1), budget)
    assert sub_budget.limit == Fraction(5 - 2)
    assert [m.name for m in sub.instance.models] == ["a", "c", "d"]
    assert [m.current_gpu for m in sub.instance.models] == [0, None, None]
    whole, whole_budget = neighbourhood_instance(instance, gpu_of, (0, 1, 2), budget)
    assert whole_budget.limit == budget.limit
    assert [m.current_gpu for m in whole.instance.models] == [m.current_gpu for m in instance.models]


def test_gb_budgets_charge_model_sizes():
    instance = Instance.build([model("a", 12, 1, 0), model("b", 30, 1, 1), model("c", 8, 1, 1)], [80, 80, 80])
    sub, sub_budget = neighbourhood_instance(instance, (0, 2, 0), (0,), make_budget(max_moved_gb=50))
    assert sub_budget.limit == Fraction(50 - 30 - 8)


@pytest.mark.parametrize("case", [i.name for i in REPLAN.instances[5:]])
def test_budget_lns_stays_within_budget_and_never_loses(case):
    instance = next(i for i in REPLAN.instances if i.name == case)
    frontier = {p["max_moves"]: Fraction(p["value"]) for p in REPLAN.references[case]["frontier"]}
    for k in (2, 3, 4):
        budget = make_budget(max_moves=k)
        start = best_within_budget(instance, budget, method="pipeline")
        gpu_of = budget_lns(instance, budget, start.placement.gpu_of, time_limit_s=30, neighbourhood_gpus=3,
                            max_iterations=12)
        assert within_budget(instance, gpu_of, budget) and move_cost(instance, gpu_of, "count") <= k
        peak = objective_peak_exact(instance, gpu_of)
        assert peak <= start.peak_kvpr_exact
        if k in frontier:
            assert peak >= frontier[k]  # never below the proven optimum of that budget


def test_replan_lns_method_reaches_the_optimum_a_local_search_misses():
    instance = next(i for i in REPLAN.instances if i.name == "replan_08")
    budget = make_budget(max_moves=3)
    search = best_within_budget(instance, budget, method="pipeline")
    lns = best_within_budget(instance, budget, method="lns", time_limit_s=20)
    assert lns.method == "replan-lns" and lns.peak_kvpr_exact < search.peak_kvpr_exact
    assert lns.peak_kvpr_exact == Fraction(REPLAN.references["replan_08"]["frontier"][3]["value"])
