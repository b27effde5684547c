"""Regression checks: an unchanged method passes, a worse one fails and is listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kvopt.bench.executors import LocalExecutor
from kvopt.bench.regress import compare_records, compare_results
from kvopt.bench.results import run_benchmark, write_results
from kvopt.bench.runner import RunSettings, method_from_name, method_from_program
from kvopt.bench.sandbox import Limits
from kvopt.cli import main
from test_programs import CASE_G1, CASE_G2, PROGRAMS, write_suite

SETTINGS = RunSettings(Limits(timeout_s=5.0, memory_mb=1024))

# Puts the largest model alone on the last GPU and the rest on GPU 0.
# g1: a alone 4/40 = 0.1; b,c,d: 6/20 = 0.3 (worse than greedy's 1/6).
# g2: c alone 1/25; a,b: 8/60 = 2/15 = the optimum (better than greedy's 1/3).
ISOLATE_LARGEST = """
def compute_model_placement(gpu_num, models):
    largest = max(models, key=lambda m: m.model_size)
    placement = {g: [] for g in range(gpu_num)}
    placement[gpu_num - 1].append(largest)
    placement[0].extend(m for m in models if m is not largest)
    return placement
"""


@pytest.fixture
def baseline(tmp_path: Path) -> tuple[Path, Path]:
    """A baseline of greedy and a program file (prism greedy) on the two hand-worked cases."""
    suite = write_suite(tmp_path / "tiny", [CASE_G1, CASE_G2], {"g1": ("1/6", "optimal"), "g2": ("2/15", "optimal")})
    program = tmp_path / "prog.py"
    shutil.copy(PROGRAMS / "prism_greedy.py", program)
    methods = [method_from_name("greedy"), method_from_program(str(program), SETTINGS.limits)]
    document = run_benchmark([suite], methods, SETTINGS, executor=LocalExecutor(1))
    return write_results(document, tmp_path / "baseline" / "results.json"), program


def test_same_results_exit_0(baseline: tuple[Path, Path], capsys) -> None:
    path, _ = baseline
    assert main(["regress", "--baseline", str(path), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "no case changed" in out and "ok: 0 worse, 0 better" in out


def test_worse_program_exit_1_and_listed(baseline: tuple[Path, Path], capsys) -> None:
    path, program = baseline
    program.write_text(ISOLATE_LARGEST)
    assert main(["regress", "--baseline", str(path), "--jobs", "1", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["regressed"]
    worse = {(c["case"], c["method"]) for c in out["worse"]}
    better = {(c["case"], c["method"]) for c in out["better"]}
    assert worse == {("g1", str(program))} and better == {("g2", str(program))}
    g1 = out["worse"][0]
    # gap against the baseline's reference 1/6: 0 -> 0.3/(1/6) - 1 = 0.8
    assert g1["old_gap"] == pytest.approx(0.0, abs=1e-12) and g1["new_gap"] == pytest.approx(0.8)
    # g1 was optimal, g2 becomes optimal: the count stays 1, so only the gap fails the run.
    assert out["optimal"][str(program)] == {"baseline": 1, "now": 1}


def test_valid_to_invalid_is_a_regression(baseline: tuple[Path, Path], capsys) -> None:
    path, program = baseline
    shutil.copy(PROGRAMS / "raises.py", program)
    assert main(["regress", "--baseline", str(path), "--jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "now invalid" in out and "ValueError" in out and "<- dropped" in out


def test_tolerance_and_optimal_count() -> None:
    old = {"suite": "s", "suite_key": "s", "case": "c", "method": "m", "role": "method", "valid": True,
           "peak_kvpr": 1.0, "reference": 1.0}
    assert compare_records(old, dict(old, peak_kvpr=1.0 + 1e-12), 1e-9) is None
    change = compare_records(old, dict(old, peak_kvpr=1.01), 1e-9)
    assert change is not None and change.direction == "worse" and change.new_gap == pytest.approx(0.01)
    assert compare_records(old, None, 1e-9).what == "missing"
    baseline = {"cases": [old], "summary": {"m": {"optimal": 3}}}
    current = {"cases": [old], "summary": {"m": {"optimal": 2}}}
    comparison = compare_results(baseline, current)
    assert comparison.changes == () and comparison.regressed and comparison.optimal_dropped == {"m": (3, 2)}


def test_bad_baseline_is_bad_input(tmp_path: Path, capsys) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"cases": []}))
    assert main(["regress", "--baseline", str(path)]) == 2
    assert "not a kvopt results file" in capsys.readouterr().err
