"""Re-placement in the evaluation path: programs see the current placement; reports plot stored move frontiers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kvopt.bench.cases import load_cases
from kvopt.bench.evaluate import evaluate_program
from kvopt.bench.executors import LocalExecutor
from kvopt.bench.report import render_plots
from kvopt.bench.results import run_benchmark, stored_frontiers
from kvopt.bench.runner import RunSettings, method_from_name
from kvopt.bench.sandbox import Limits
from kvopt.io import save_instance

PROGRAMS = Path(__file__).parent / "programs"


def test_programs_see_the_current_gpu_as_cur_gpu_id(tmp_path):
    stored = load_cases("replan").instances[0]
    # Drop the one new model so that "stay put" is a complete placement of the current state.
    current = replace(stored, models=tuple(m for m in stored.models if m.current_gpu is not None))
    save_instance(current, tmp_path / f"{current.name}.json")
    document = evaluate_program(str(PROGRAMS / "stays_put.py"), [str(tmp_path)],
                                RunSettings(Limits(timeout_s=20, memory_mb=1024)), executor=LocalExecutor(1))
    (record,) = [r for r in document["cases"] if r["role"] == "method"]
    assert record["valid"]
    assert record["gpu_of"] == [m.current_gpu for m in current.models]


def test_reports_plot_the_stored_move_frontiers_only_where_there_are_some():
    replan = load_cases("replan")
    frontiers = stored_frontiers([replan])
    assert len(frontiers) == len(replan.instances)
    for points in frontiers.values():
        assert [p["max_moves"] for p in points] == list(range(len(points)))
        peaks = [p["peak"] for p in points]
        assert peaks == sorted(peaks, reverse=True)  # a larger budget never makes the best peak worse
    methods = [method_from_name("pipeline")]
    with_frontier = run_benchmark([replan], methods, RunSettings(), executor=LocalExecutor(1),
                                  only_cases={"replan": [replan.instances[0].name]})
    images = render_plots(with_frontier)
    assert images["move_frontier"].startswith(b"\x89PNG")
    without = run_benchmark(["small"], methods, RunSettings(), executor=LocalExecutor(1),
                            only_cases={"small": [load_cases("small").instances[0].name]})
    assert "frontiers" not in without and "move_frontier" not in render_plots(without)
