"""Re-placement: current placement and scenarios in the instance, budgets, exact frontier, migration plans."""

from __future__ import annotations

import itertools
import json
import random
from fractions import Fraction

import pytest

from kvopt.cli import main
from kvopt.exact import solve_exact
from kvopt.io import instance_from_dict, instance_to_dict
from kvopt.model import KvoptError
from kvopt.replan import (MigrationError, frontier, make_budget, move_cost, plan_migration, replan,
                          replay_plan)
from kvopt.replan.core import best_within_budget
from kvopt.replan.search import budget_local_search


# -- an independent brute force: every assignment, Fractions, GPU identity kept ------------
def brute_objective(data: dict, gpu_of: tuple[int, ...]) -> Fraction | None | bool:
    """Worst peak over scenarios (base if none); ``None`` = +inf; ``False`` = over memory."""
    caps = [Fraction(str(c)) for c in data["gpu_mem_gb"]]
    sizes = [Fraction(str(m["size_gb"])) for m in data["models"]]
    used = [Fraction(0)] * len(caps)
    for i, g in enumerate(gpu_of):
        used[g] += sizes[i]
    if any(u > c for u, c in zip(used, caps)):
        return False
    scenarios = data.get("scenarios") or [{"name": "base", "req_rate": {}}]
    worst: Fraction | None = Fraction(0)
    for s in scenarios:
        demand = [Fraction(0)] * len(caps)
        for i, g in enumerate(gpu_of):
            m = data["models"][i]
            demand[g] += Fraction(str(s["req_rate"].get(m["name"], m["req_rate"]))) / Fraction(str(m["slo"]))
        for g in range(len(caps)):
            if demand[g] == 0:
                continue
            if used[g] == caps[g]:
                return None
            value = demand[g] / (caps[g] - used[g])
            worst = value if worst is None else max(worst, value)
    return worst


def brute_best(data: dict, budget: int | None, cost: str = "count") -> Fraction | None:
    best = None
    for gpu_of in itertools.product(range(len(data["gpu_mem_gb"])), repeat=len(data["models"])):
        spent = sum((1 if cost == "count" else Fraction(str(m["size_gb"])))
                    for m, g in zip(data["models"], gpu_of) if m.get("current_gpu") is not None
                    and m["current_gpu"] != g)
        if budget is not None and spent > budget:
            continue
        value = brute_objective(data, gpu_of)
        if value is False or value is None:
            continue
        best = value if best is None else min(best, value)
    return best


def random_case(seed: int, num_models: int = 6, num_gpus: int = 3, scenarios: int = 0, new: int = 0) -> dict:
    rng = random.Random(seed)
    caps = [rng.choice([40, 48, 60]) for _ in range(num_gpus)]
    models, used = [], [0] * num_gpus
    for i in range(num_models):
        size = rng.choice([6, 10, 14, 20])
        model = {"name": f"m{i}", "size_gb": size, "req_rate": rng.randint(0, 12), "slo": rng.choice([1, 2])}
        fits = [g for g in range(num_gpus) if used[g] + size <= caps[g] - 2]
        if i >= new and fits:
            g = rng.choice(fits)
            model["current_gpu"] = g
            used[g] += size
        models.append(model)
    data = {"name": f"case{seed}", "gpu_mem_gb": caps, "models": models}
    if scenarios:
        data["scenarios"] = [{"name": f"s{k}", "req_rate": {m["name"]: rng.randint(0, 15) for m in models
                                                            if rng.random() < 0.7}} for k in range(scenarios)]
    return data


# -- input ---------------------------------------------------------------------------------
def test_current_gpu_and_scenarios_round_trip():
    data = random_case(1, scenarios=2, new=1)
    instance = instance_from_dict(data)
    assert instance.current_gpu_of[0] is None and instance.has_current
    again = instance_from_dict(instance_to_dict(instance))
    assert again == instance and again.scenarios == instance.scenarios


@pytest.mark.parametrize("change, message", [
    (lambda d: d["models"][0].update(current_gpu=7), "model 'm0': field 'current_gpu' = 7 is out of range"),
    (lambda d: d["models"][0].update(current_gpu=1.5), "model 'm0': field 'current_gpu' must be a GPU index"),
    (lambda d: d["models"][0].update(current_gpu=True), "model 'm0': field 'current_gpu' must be a GPU index"),
    (lambda d: d["models"][0].update(size_gb=39, current_gpu=0) or d["models"][1].update(current_gpu=0),
     "the current placement overflows GPU 0"),
    (lambda d: d.update(scenarios=[{"name": "9h", "req_rate": {"ghost": 1}}]),
     "scenario '9h': field 'req_rate' names unknown model 'ghost'"),
    (lambda d: d.update(scenarios=[{"name": "9h", "req_rate": {"m1": -1}}]),
     "scenario '9h': model 'm1': field 'req_rate' must be >= 0"),
    (lambda d: d.update(scenarios=[{"name": "9h", "req_rate": {"m1": float("nan")}}]),
     "scenario '9h': model 'm1': field 'req_rate': must be finite"),
    (lambda d: d.update(scenarios=[{"name": "9h"}, {"name": "9h"}]), "scenario '9h': duplicate scenario name"),
])
def test_bad_replan_input_names_the_model(change, message):
    data = random_case(2)
    change(data)
    with pytest.raises(KvoptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        instance_from_dict(data)


def test_csv_current_gpu_column(tmp_path):
    path = tmp_path / "models.csv"
    path.write_text("name,size_gb,req_rate,slo,current_gpu\na,10,1,1,0\nb,10,2,1,\n")
    from kvopt.io import load_models_csv

    instance = load_models_csv(path, gpus=2)
    assert instance.current_gpu_of == (0, None)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_moves": -1}, "--max-moves: must be a non-negative integer"),
    ({"max_moves": 1.5}, "--max-moves: must be a non-negative integer"),
    ({"max_moved_gb": -3.0}, "--max-moved-gb: must be a non-negative number"),
    ({"max_moved_gb": float("nan")}, "--max-moved-gb: must be a non-negative number"),
    ({"max_moves": 1, "move_cost": "size"}, "with --move-cost size give --max-moved-gb"),
    ({"max_moves": 1, "move_cost": "weight"}, "--move-cost: expected one of count, size"),
])
def test_bad_budgets(kwargs, message):
    with pytest.raises(KvoptError, match=message):
        make_budget(**kwargs)


@pytest.mark.parametrize("args, message", [
    (["--max-moves", "-1"], "--max-moves: must be a non-negative integer"),
    (["--max-moves", "1.5"], "--max-moves: must be a non-negative integer"),
    (["--max-moved-gb", "nan"], "--max-moved-gb"),
    (["--migration", "teleport"], "--migration"),
])
def test_cli_bad_budget_exit_2(tmp_path, capsys, args, message):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(random_case(3)))
    assert main(["replan", str(path), *args]) == 2
    assert message in capsys.readouterr().err


def test_replan_without_current_placement_is_bad_input(tmp_path, capsys):
    data = random_case(3)
    for m in data["models"]:
        m.pop("current_gpu", None)
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data))
    assert main(["replan", str(path), "--max-moves", "1"]) == 2
    assert "current_gpu" in capsys.readouterr().err


# -- exact re-placement against brute force ------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_exact_frontier_matches_brute_force(seed):
    data = random_case(seed, num_models=6, num_gpus=3, new=seed % 2)
    instance = instance_from_dict(data)
    points, unconstrained = frontier(instance, time_limit_s=30)
    assert unconstrained.status == "optimal"
    assert unconstrained.peak_kvpr_exact == brute_best(data, None)
    for k, point in enumerate(points):
        assert point.status == "optimal"
        assert point.peak_kvpr_exact == brute_best(data, k), f"K={k}"
        assert move_cost(instance, point.placement.gpu_of, "count") <= k
    assert points[-1].peak_kvpr_exact == unconstrained.peak_kvpr_exact  # the walk stops at K*
    peaks = [p.peak_kvpr_exact for p in points]
    assert peaks == sorted(peaks, reverse=True)


@pytest.mark.parametrize("seed", range(3))
def test_exact_gb_budget_matches_brute_force(seed):
    data = random_case(10 + seed, num_models=6, num_gpus=3)
    instance = instance_from_dict(data)
    for gb in (0, 10, 20.5):
        result = best_within_budget(instance, make_budget(max_moved_gb=gb), method="exact", time_limit_s=30)
        assert result.status == "optimal"
        assert result.peak_kvpr_exact == brute_best(data, Fraction(str(gb)), cost="size")
        assert move_cost(instance, result.placement.gpu_of, "size") <= Fraction(str(gb))


@pytest.mark.parametrize("backend", ["cpsat", "milp"])
@pytest.mark.parametrize("seed", range(3))
def test_scenarios_exact_worst_peak_matches_brute_force(seed, backend):
    data = random_case(20 + seed, num_models=6, num_gpus=3, scenarios=3)
    instance = instance_from_dict(data)
    result = solve_exact(instance, backend=backend, time_limit_s=30)
    assert result.status == "optimal"
    assert result.peak_kvpr_exact == brute_best(data, None)
    budgeted = best_within_budget(instance, make_budget(max_moves=1), method="exact", backend=backend,
                                  time_limit_s=30)
    assert budgeted.status == "optimal" and budgeted.peak_kvpr_exact == brute_best(data, 1)


def test_budget_zero_returns_the_current_placement():
    data = random_case(4)
    instance = instance_from_dict(data)
    answer = replan(instance, make_budget(max_moves=0), method="exact")
    current = tuple(m.current_gpu for m in instance.models)
    assert answer.result.status == "optimal"
    assert brute_objective(data, answer.result.placement.gpu_of) == brute_objective(data, current)
    assert answer.current_peak_exact == brute_objective(data, current)
    assert answer.plan == ()


@pytest.mark.parametrize("seed", range(8))
def test_search_respects_budget_and_never_worsens(seed):
    data = random_case(30 + seed, num_models=9, num_gpus=4, scenarios=seed % 3)
    instance = instance_from_dict(data)
    current = tuple(m.current_gpu for m in instance.models)
    for k in range(3):
        gpu_of = budget_local_search(instance, k)
        assert gpu_of is not None
        assert move_cost(instance, gpu_of, "count") <= k
        assert brute_objective(data, gpu_of) <= brute_objective(data, current)


# -- migration plans -----------------------------------------------------------------------
def replay(data: dict, target: tuple[int, ...], steps, semantics: str) -> None:
    """Independent replay in Fractions: every intermediate state fits; ends at the target."""
    caps = [Fraction(str(c)) for c in data["gpu_mem_gb"]]
    size = {m["name"]: Fraction(str(m["size_gb"])) for m in data["models"]}
    at = {m["name"]: m.get("current_gpu") for m in data["models"]}
    used = [Fraction(0)] * len(caps)
    for name, g in at.items():
        if g is not None:
            used[g] += size[name]
    for step in steps:
        assert at[step.model] == step.source
        if step.target is not None:
            # copy: the source still holds the model while the target loads it (checked before freeing)
            assert used[step.target] + size[step.model] <= caps[step.target]
            used[step.target] += size[step.model]
        if step.source is not None:
            used[step.source] -= size[step.model]
        at[step.model] = step.target
        assert all(u <= c for u, c in zip(used, caps))
    assert [at[m["name"]] for m in data["models"]] == list(target)


@pytest.mark.parametrize("seed", range(40))
def test_every_plan_replays_without_memory_violation(seed):
    data = random_case(100 + seed, num_models=8, num_gpus=3, new=seed % 3)
    instance = instance_from_dict(data)
    rng = random.Random(seed)
    target = budget_local_search(instance, rng.randint(0, 6))
    for semantics in ("copy", "stop-start"):
        try:
            steps = plan_migration(instance, target, semantics)
        except MigrationError:
            assert semantics == "copy"  # stop-start always has a plan
            continue
        replay(data, target, steps, semantics)
        replay_plan(instance, target, steps, semantics)


def full_swap_case(third_gpu_gb: int) -> dict:
    return {"name": "swap", "gpu_mem_gb": [40, 40, third_gpu_gb], "models": [
        {"name": "a", "size_gb": 30, "req_rate": 1, "slo": 1, "current_gpu": 0},
        {"name": "b", "size_gb": 30, "req_rate": 1, "slo": 1, "current_gpu": 1},
        {"name": "c", "size_gb": 10, "req_rate": 1, "slo": 1, "current_gpu": 0}]}


def test_cycle_routes_through_a_buffer_gpu():
    data = full_swap_case(35)
    instance = instance_from_dict(data)
    target = (1, 0, 0)
    steps = plan_migration(instance, target, "copy")
    replay(data, target, steps, "copy")
    assert sum(s.via_buffer for s in steps) == 1 and len(steps) == 3


def test_cycle_without_room_is_impossible_with_copy_but_not_stop_start(tmp_path, capsys):
    data = full_swap_case(20)
    instance = instance_from_dict(data)
    with pytest.raises(MigrationError, match="no GPU has room"):
        plan_migration(instance, (1, 0, 0), "copy")
    steps = plan_migration(instance, (1, 0, 0), "stop-start")
    replay(data, (1, 0, 0), steps, "stop-start")
    assert [s.action for s in steps].count("stop") == 1
    inst_path, target_path = tmp_path / "i.json", tmp_path / "t.json"
    inst_path.write_text(json.dumps(data))
    target_path.write_text(json.dumps({"assignment": {"a": 1, "b": 0, "c": 0}}))
    assert main(["plan-moves", str(inst_path), str(target_path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["possible"] is False
    assert main(["plan-moves", str(inst_path), str(target_path), "--migration", "stop-start", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["possible"] is True


def test_cli_replan_json(tmp_path, capsys):
    data = random_case(5, scenarios=2, new=1)
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data))
    assert main(["replan", str(path), "--max-moves", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_moves"] <= 2 and len(out["moves"]) == out["num_moves"]
    assert out["binding_scenario"] in ("s0", "s1")
    assert max(out["scenario_peaks"].values()) == pytest.approx(out["peak_kvpr"])
    assert {s["model"] for s in out["plan"] if s["action"] == "add"} == {"m0"}
    assert main(["replan", str(path), "--pareto", "--json"]) == 0
    frontier_points = json.loads(capsys.readouterr().out)["frontier"]
    assert [p["max_moves"] for p in frontier_points] == list(range(len(frontier_points)))


@pytest.mark.parametrize("method", ["pipeline", "greedy", "exact", "auto"])
def test_solve_with_scenarios_reports_the_worst_peak(tmp_path, capsys, method):
    data = random_case(40, num_models=6, num_gpus=3, scenarios=3)
    for m in data["models"]:
        m.pop("current_gpu", None)
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data))
    assert main(["solve", str(path), "--method", method, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    gpu_of = tuple(out["assignment"][m["name"]] for m in data["models"])
    assert Fraction(out["peak_kvpr_exact"]) == brute_objective(data, gpu_of)
    assert out["binding_scenario"] in ("s0", "s1", "s2")
    assert out["lower_bound"] <= out["peak_kvpr"] + 1e-12
    if method in ("exact", "auto"):
        assert out["status"] == "optimal" and Fraction(out["peak_kvpr_exact"]) == brute_best(data, None)


def test_stored_replan_references_are_consistent_frontiers():
    from kvopt.suites import load_reference, load_suite

    reference = load_reference("replan")
    instances = {i.name: i for i in load_suite("replan")}
    assert reference and set(reference) == set(instances)
    for name, entry in reference.items():
        points = entry["frontier"]
        assert [p["max_moves"] for p in points] == list(range(len(points)))
        assert all(p["status"] == "optimal" for p in points)  # every case has <= 8 GPUs: all proven
        values = [Fraction(p["value"]) for p in points]
        assert values == sorted(values, reverse=True) and values[-1] == Fraction(entry["value"])
        instance = instances[name]
        for p in points:
            gpu_of = tuple(p["assignment"][m.name] for m in instance.models)
            assert move_cost(instance, gpu_of, "count") == p["num_moves"] <= p["max_moves"]
            from kvopt.evaluate import exact_peak_kvpr
            assert exact_peak_kvpr(instance, gpu_of) == Fraction(p["value"])
