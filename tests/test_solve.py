"""``kvopt.solve`` and ``--method auto``: every method against the independent brute force, one status rule.

The instances cover floats, mixed capacities, zero rates, exactly full GPUs,
+inf optima and instances where nothing fits (cheaply provable or not).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvopt
from kvopt import Instance, Model, PipelineConfig, Result, solve
from kvopt.evaluate import check_placement, exact_peak_kvpr
from kvopt.exact.brute import brute_force_optimum
from kvopt.heuristics.pipeline import pipeline
from kvopt.model import KvoptError

REPO = Path(__file__).resolve().parents[1]
EXACT_LIKE = ("exact", "auto", "mccormick", "lns")


@st.composite
def small_instances(draw: st.DrawFn) -> Instance:
    """<= 6 models on <= 3 GPUs: decimal sizes, mixed capacities, zero rates, fills, no-fit cases."""
    num_gpus = draw(st.integers(1, 3))
    caps = [draw(st.sampled_from([8, 10, 12.5, 20])) for _ in range(num_gpus)]
    num_models = draw(st.integers(1, 6))
    models = [Model(f"m{i}", draw(st.sampled_from([0.5, 1, 2.5, 4, 5, 7.5, 10, 12.5])),
                    draw(st.sampled_from([0, 0, 0.5, 1, 3])), draw(st.sampled_from([1, 2, 0.5])))
              for i in range(num_models)]
    return Instance("small", tuple(models), tuple(caps))


def check_against_brute(inst: Instance, result: Result, method: str) -> None:
    optimum, placement = brute_force_optimum(inst)
    if result.placement is not None:
        check_placement(inst, result.placement)
        assert result.peak_kvpr_exact == exact_peak_kvpr(inst, result.placement.gpu_of)
        assert placement is not None  # a valid placement exists, so brute force found one
        assert result.peak_kvpr_exact >= optimum
    if result.lower_bound_exact is not None and optimum is not None:
        assert result.lower_bound_exact <= optimum  # every bound is certified
    if result.status == "optimal":
        assert result.peak_kvpr_exact == optimum and result.lower_bound_exact == optimum and result.gap == 0
    if result.status == "infeasible":
        assert placement is None and result.placement is None and result.details["reason"]
    if result.status == "unknown":
        assert result.placement is None and result.details["reason"]
    if method in EXACT_LIKE:
        # Exact methods settle every tiny instance: the optimum (+inf included), or a proof that nothing fits.
        assert result.status == ("infeasible" if placement is None else "optimal"), result.details
    elif method == "pipeline" and placement is None:
        assert result.status == "infeasible"  # the pipeline's exact packing fallback proves it
    elif method == "greedy" and result.placement is None:
        assert result.status in ("unknown", "infeasible")  # Prism's greedy proves nothing (cheap proofs aside)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_instances(), st.sampled_from(["greedy", "pipeline", "exact", "auto", "mccormick", "lns"]))
def test_every_method_agrees_with_brute_force(inst: Instance, method: str) -> None:
    options = {} if method in ("greedy", "pipeline") else {"time_limit_s": 20}
    check_against_brute(inst, solve(inst, method, **options), method)


@pytest.mark.parametrize("method", ["greedy", "pipeline", "exact", "auto", "mccormick", "lns"])
def test_edge_cases_for_every_method(method: str) -> None:
    options = {} if method in ("greedy", "pipeline") else {"time_limit_s": 20}
    cases = [
        # +inf optimum: the 8 GB model with demand fills the only GPU it fits.
        Instance("inf", (Model("a", 8, 1, 1), Model("b", 1, 1, 1)), (8, 4)),
        # nothing fits, but no cheap proof shows it (three 5 GB models, two 8 GB GPUs).
        Instance("nofit", tuple(Model(f"m{i}", 5, 1, 1) for i in range(3)), (8, 8)),
        # cheap proof: a model larger than every GPU.
        Instance("big", (Model("a", 9, 1, 1),), (8,)),
        # exact fill with a zero-rate model, GPUs [80, 40] (McCormick used to fail here).
        Instance("fill", (Model("z", 40, 0, 1), Model("a", 30, 2, 1), Model("b", 10, 1, 1)), (80, 40)),
    ]
    for inst in cases:
        check_against_brute(inst, solve(inst, method, **options), method)


def test_public_api_signature_and_result_fields() -> None:
    assert kvopt.solve is solve and callable(kvopt.solve)
    inst = Instance("api", (Model("a", 30, 2, 1), Model("b", 20, 1, 1)), (80, 40))
    result = solve(inst, "exact", time_limit_s=10)
    assert result.success and result.status == "optimal" and result.message.startswith("optimal")
    failed = solve(Instance("big", (Model("a", 90, 1, 1),), (80,)))
    assert not failed.success and failed.status == "infeasible" and "larger than every GPU" in failed.message


def test_options_a_method_does_not_use_are_errors() -> None:
    inst = Instance("opt", (Model("a", 30, 2, 1),), (80,))
    with pytest.raises(KvoptError, match="method 'pipeline' does not use option.s. backend"):
        solve(inst, "pipeline", backend="cpsat")
    with pytest.raises(KvoptError, match="does not use option.s. config"):
        solve(inst, "exact", config=PipelineConfig())
    with pytest.raises(KvoptError, match="unknown method"):
        solve(inst, "simplex")


def test_pipeline_config_is_passed_through() -> None:
    inst = Instance("cfg", tuple(Model(f"m{i}", 3 + (7 * i) % 11, 1 + (5 * i) % 7, 1 + i % 2) for i in range(20)),
                    (80, 80, 80, 40))
    weak = PipelineConfig(search_max_models=0, local_iters=0, local_iters_per_gpu=0, refine_passes=0,
                          polish_iters=0, polish_iters_per_gpu=0, repair_iters=0, repair_iters_per_gpu=0)
    assert pipeline(inst, weak) != pipeline(inst)  # the two configs lead to different placements here
    assert solve(inst, "pipeline", config=weak).placement == pipeline(inst, weak)
    assert solve(inst, "pipeline").placement == pipeline(inst)


def test_auto_is_exact_when_small_and_respects_its_time_limit() -> None:
    inst = Instance("auto", tuple(Model(f"m{i}", 5 + i % 7, 1 + i % 4, 1 + i % 2) for i in range(10)), (40, 40, 30))
    result = solve(inst, "auto", time_limit_s=30)
    assert result.status == "optimal" and result.details["auto_choice"].startswith("exact")
    exact = solve(inst, "exact", time_limit_s=30)
    assert result.peak_kvpr_exact == exact.peak_kvpr_exact


def test_auto_above_forty_models_is_pipeline_plus_certified_bound() -> None:
    inst = Instance("auto_big", tuple(Model(f"m{i}", 3 + i % 5, 1 + i % 3, 1) for i in range(48)), (80,) * 8)
    result = solve(inst, "auto", time_limit_s=30)
    assert result.details["auto_choice"].startswith("pipeline + lower bound")
    assert result.lower_bound_exact <= result.peak_kvpr_exact
    assert result.gap == pytest.approx(float(result.peak_kvpr_exact / result.lower_bound_exact - 1))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvopt.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)


@pytest.mark.parametrize("method", ["greedy", "pipeline", "auto", "mccormick", "lns", "exact"])
def test_cli_valid_infeasible_instance_exits_1_for_every_method(tmp_path: Path, method: str) -> None:
    """A valid instance never exits 2: nothing fits (no cheap proof) is status infeasible, exit 1."""
    path = tmp_path / "nofit.json"
    path.write_text(json.dumps({"name": "nofit", "gpu_mem_gb": [8, 8],
                                "models": [{"name": f"m{i}", "size_gb": 5, "req_rate": 1, "slo": 1}
                                           for i in range(3)]}))
    done = run_cli("solve", str(path), "--method", method, "--json")
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    # Greedy proves nothing (unknown); every other method proves it (the pipeline by its exact packing fallback).
    assert out["status"] == ("unknown" if method == "greedy" else "infeasible")
    assert out["assignment"] is None and out["reason"]


def test_cli_auto_on_tight_instance_and_unused_option(tmp_path: Path) -> None:
    done = run_cli("solve", "instances/tight/tight_03.json", "--method", "auto", "--time-limit", "20", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["auto_choice"].startswith("exact")
    bad = run_cli("solve", "instances/tight/tight_03.json", "--method", "pipeline", "--backend", "cpsat")
    assert bad.returncode == 2 and "does not use option(s) backend" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_infinite_values_have_one_encoding(tmp_path: Path) -> None:
    inst = Instance("inf", (Model("a", 8, 1, 1), Model("b", 1, 1, 1)), (8, 4))
    for method in ("greedy", "exact"):
        result = solve(inst, method, **({} if method == "greedy" else {"time_limit_s": 10}))
        assert result.peak_kvpr_exact == math.inf and result.lower_bound_exact == math.inf
        assert result.status == "optimal" and result.gap == 0.0
    path = tmp_path / "inf.json"
    path.write_text(json.dumps({"name": "inf", "gpu_mem_gb": [8, 4],
                                "models": [{"name": "a", "size_gb": 8, "req_rate": 1, "slo": 1},
                                           {"name": "b", "size_gb": 1, "req_rate": 1, "slo": 1}]}))
    out = json.loads(run_cli("solve", str(path), "--method", "greedy", "--json").stdout)
    assert out["peak_kvpr_exact"] == "inf" and out["lower_bound_exact"] == "inf"
