"""kvopt as the evaluator of OpenEvolve and ShinkaEvolve, driven through the frameworks' own classes (no LLM).

OpenEvolve's ``Evaluator`` loads the file ``kvopt evaluator`` writes, exactly as
``openevolve-run`` does, and evaluates program texts; Shinka's ``JobScheduler``
runs the ``evaluate.py`` it would run in an evolution and reads the result files.
On CI (``CI`` set) both packages must be installed (``.[evolve]``); elsewhere
their tests skip when they are missing.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvopt.bench.isolation import bwrap_binary, bwrap_problem
from kvopt.integrations import loop
from kvopt.model import KvoptError

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = Path(__file__).parent / "programs"
HONEST = (PROGRAMS / "bisect_ffd.py").read_text()
WEAK = (PROGRAMS / "prism_greedy.py").read_text()

needs_sandbox = pytest.mark.skipif(bwrap_problem(bwrap_binary()) is not None, reason="no namespace sandbox here")


def framework(name: str):
    if os.environ.get("CI"):
        return __import__(name)
    return pytest.importorskip(name)


# -- configuration and metrics (no framework, no sandbox) ----------------------------------------
def test_the_environment_overrides_the_file_settings_and_bad_values_name_the_variable():
    config = loop.config_from({"KVOPT_TIMEOUT": "3", "KVOPT_SUITES": "small, tight"}, timeout_s=7, score="adrs")
    assert config.timeout_s == 3.0 and config.suites == ("small", "tight") and config.score == "adrs"
    for variable, value in (("KVOPT_TIMEOUT", "soon"), ("KVOPT_TIMEOUT", "-1"), ("KVOPT_SCORE", "best"),
                            ("KVOPT_JOBS", "0"), ("KVOPT_CACHE", "maybe"), ("KVOPT_SUITES", " , ")):
        with pytest.raises(KvoptError, match=variable.split("_")[1]):
            loop.config_from({variable: value})
    with pytest.raises(KvoptError, match="unknown timeout"):
        loop.config_from({}, timeout=3)


@pytest.mark.parametrize("calls", [1, 7, 150, 10_000])
def test_the_call_timeout_keeps_an_evaluation_inside_its_budget(calls):
    config = loop.LoopConfig(timeout_s=10, budget_s=240, jobs=2)
    per_call = loop.call_timeout(config, calls)
    assert loop.MIN_CALL_S <= per_call <= config.timeout_s
    assert per_call == config.timeout_s or calls * per_call / config.jobs <= config.budget_s + 1e-9 \
        or per_call == loop.MIN_CALL_S


def record(suite: str, valid: bool, gap: float | None, peak: float = 1.0, optimal: bool = False) -> dict:
    return {"suite": suite, "case": f"{suite}_x", "valid": valid, "gap": gap, "peak_kvpr": peak, "optimal": optimal,
            "seconds": 0.01, "failure": None if valid else "timeout", "reason": None if valid else "too slow",
            "num_models": 3, "num_gpus": 2, "reference": peak / (1 + (gap or 0)), "reference_status": "optimal"}


def test_metrics_are_finite_and_an_invalid_case_never_scores_above_the_worst_valid_one():
    good = [record("adrs50", True, 0.0, optimal=True), record("tight", True, 0.02)]
    metrics = loop.metrics_of(good + [record("tight", False, None)])
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metrics["valid_fraction"] == pytest.approx(2 / 3) and metrics["optimal_fraction"] == pytest.approx(1 / 3)
    assert metrics["mean_gap_tight"] == pytest.approx(0.02) and metrics["mean_gap"] == pytest.approx(0.01)
    worse_valid = loop.metrics_of(good + [record("tight", True, 5.0)])
    assert metrics["combined_score"] < worse_valid["combined_score"]
    nothing = loop.metrics_of([record("tight", False, None)])
    assert nothing["combined_score"] == 0 and nothing["mean_gap"] == loop.NO_GAP
    assert loop.metrics_of(good, score="adrs")["combined_score"] == pytest.approx(1 / 1.0 + 1.0)


# -- OpenEvolve ------------------------------------------------------------------------------------
def evaluator_file(folder: Path, framework_name: str, *options: str) -> Path:
    out = folder / ("evaluator.py" if framework_name == "openevolve" else "evaluate.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "kvopt.cli", "evaluator", "--framework", framework_name,
                           "--out", str(out), "--force", *options], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) <= 3
    return out


@pytest.fixture
def loop_env(tmp_path, monkeypatch):
    """Small suites (fast), a private score cache, and a cache entry a program might try to forge."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KVOPT_CACHE_DIR", str(cache))
    monkeypatch.setenv("KVOPT_SUITES", "small,tight")
    monkeypatch.setenv("KVOPT_BUDGET", "60")
    return cache


def openevolve_scores(tmp_path: Path, programs: dict[str, str], cascade: bool) -> dict[str, tuple[dict, dict]]:
    openevolve = framework("openevolve")
    from openevolve.config import Config
    from openevolve.evaluator import Evaluator

    config = Config()
    config.evaluator.cascade_evaluation = cascade
    config.evaluator.cascade_thresholds = [0.5]
    config.evaluator.max_retries = 0
    evaluator = Evaluator(config.evaluator, str(evaluator_file(tmp_path, "openevolve")))
    assert openevolve is not None
    out = {}
    for name, code in programs.items():
        metrics = asyncio.run(evaluator.evaluate_program(code, name))
        out[name] = (metrics, evaluator.get_pending_artifacts(name) or {})
    return out


@needs_sandbox
def test_openevolve_cascade_scores_an_honest_program_and_rejects_a_crashing_one_at_stage_one(tmp_path, loop_env):
    crash = "def compute_model_placement(gpu_num, models):\n    raise RuntimeError('evolved badly')\n"
    scores = openevolve_scores(tmp_path, {"honest": HONEST, "weak": WEAK, "crash": crash}, cascade=True)
    honest, honest_artifacts = scores["honest"]
    assert honest["stage1_passed"] == 1.0 and 0 < honest["combined_score"] <= 1
    assert honest["combined_score"] == pytest.approx(honest["kvopt_score"])
    assert honest["valid_fraction"] == 1.0 and {"mean_gap_small", "mean_gap_tight", "score_tight"} <= set(honest)
    assert "cases valid" in honest_artifacts["kvopt_summary"]
    assert "proven optimum" in honest_artifacts.get("worst_gaps", "proven optimum")
    weak, weak_artifacts = scores["weak"]
    assert weak["combined_score"] == 0 and weak["stage1_passed"] == 0  # invalid on a small case
    assert "Rejected at stage 1" in weak_artifacts["kvopt_summary"]
    assert "fits on no GPU" in weak_artifacts["invalid_cases"]
    crashed, crash_artifacts = scores["crash"]
    assert crashed["combined_score"] == 0 and "evolved badly" in crash_artifacts["invalid_cases"]
    assert "score_tight" not in crashed  # stage 2 never ran


@needs_sandbox
def test_openevolve_direct_evaluation_gives_partial_credit_and_names_the_invalid_cases(tmp_path, loop_env):
    scores = openevolve_scores(tmp_path, {"honest": HONEST, "weak": WEAK}, cascade=False)
    honest, weak = scores["honest"][0], scores["weak"][0]
    assert 0 < weak["combined_score"] < honest["combined_score"]
    assert weak["valid_fraction"] < 1 and "exception on" in scores["weak"][1]["invalid_cases"]


# Each tries to raise its own score; none may score above the honest program it wraps.
HOSTILE = {
    "forges_cache": '''
import glob, json, os
def compute_model_placement(gpu_num, models, gpu_mem=None):
    forged = {"format": 1, "row": {"metrics": {"combined_score": 1.0, "kvopt_score": 1.0}, "feedback": {},
                                   "passed": True, "error": None}}
    for folder in (os.environ.get("KVOPT_CACHE_DIR", ""), os.path.expanduser("~/.cache/kvopt/evaluations")):
        for path in glob.glob(os.path.join(folder, "*.json")) + [os.path.join(folder, "x.json")]:
            try:
                with open(path, "w") as out:
                    json.dump(forged, out)
            except OSError:
                pass
    return _honest(gpu_num, models, gpu_mem)
''',
    "prints_a_score": '''
import json, sys
def compute_model_placement(gpu_num, models, gpu_mem=None):
    print(json.dumps({"combined_score": 1.0, "valid": True, "gap": 0.0}))
    sys.stderr.write('{"combined_score": 1.0}\\n')
    return _honest(gpu_num, models, gpu_mem)
''',
    "patches_the_scorer": '''
import glob, os
def compute_model_placement(gpu_num, models, gpu_mem=None):
    try:
        import kvopt.bench.fitness as fitness
    except ImportError:
        return _honest(gpu_num, models, gpu_mem)
    for path in glob.glob(os.path.join(os.path.dirname(fitness.__file__), "*.py")):
        try:
            with open(path, "a") as out:
                out.write("\\nTAU = 1e9\\n")
        except OSError:
            pass
    fitness.TAU = 1e9
    return _honest(gpu_num, models, gpu_mem)
''',
    "sleeps_past_the_gate": '''
import time
def compute_model_placement(gpu_num, models, gpu_mem=None):
    if len(models) > 12:  # every small case is answered: the gate passes
        time.sleep(3600)
    return _honest(gpu_num, models, gpu_mem)
''',
}


def hostile_program(attack: str) -> str:
    honest = HONEST.replace("def compute_model_placement(", "def _honest(")
    return honest + "\n" + attack


@needs_sandbox
def test_a_hostile_program_cannot_raise_its_openevolve_score(tmp_path, loop_env, monkeypatch):
    monkeypatch.setenv("KVOPT_TIMEOUT", "2")
    programs = {"honest": HONEST, **{name: hostile_program(code) for name, code in HOSTILE.items()}}
    cache_before = None
    scores = {}
    for name, code in programs.items():
        scores.update(openevolve_scores(tmp_path, {name: code}, cascade=True))
        if name == "honest":
            cache_before = {p.name: p.read_bytes() for p in loop_env.glob("*.json")}
    honest = scores["honest"][0]["combined_score"]
    for name in HOSTILE:
        metrics, artifacts = scores[name]
        assert metrics["combined_score"] <= honest + 1e-12, (name, metrics, artifacts)
        assert "timeout" not in metrics  # kvopt's budget ended stage 2 before OpenEvolve's timeout
    sleeper = scores["sleeps_past_the_gate"][0]
    assert sleeper["combined_score"] < honest and sleeper["valid_fraction"] == 0.5  # every tight case timed out
    assert "timeout on" in scores["sleeps_past_the_gate"][1]["invalid_cases"]
    after = {p.name: p.read_bytes() for p in loop_env.glob("*.json")}
    assert {k: after[k] for k in cache_before} == cache_before and "x.json" not in after
    fitness_source = (ROOT / "kvopt" / "bench" / "fitness.py").read_text()
    assert "TAU = 1e9" not in fitness_source
    again = openevolve_scores(tmp_path, {"honest": HONEST}, cascade=True)["honest"][0]
    assert again["combined_score"] == pytest.approx(honest)


@needs_sandbox
def test_a_second_evaluation_of_the_same_source_comes_from_the_cache(tmp_path, loop_env):
    first = loop.score_program(str(PROGRAMS / "bisect_ffd.py"), ("small",), loop.config_from())
    assert list(loop_env.glob("*.json"))
    again = loop.score_program(str(PROGRAMS / "bisect_ffd.py"), ("small",), loop.config_from())
    assert again.metrics == first.metrics and again.passed
    off = loop.score_program(str(PROGRAMS / "bisect_ffd.py"), ("small",), loop.config_from({"KVOPT_CACHE": "0"}))
    assert off.metrics["combined_score"] == pytest.approx(first.metrics["combined_score"])


def test_a_missing_program_or_an_unavailable_sandbox_scores_zero_without_raising(tmp_path, monkeypatch):
    missing = loop.score_program(str(tmp_path / "nope.py"), ("small",), loop.config_from({}))
    assert missing.metrics["combined_score"] == 0 and not missing.passed and "no such program" in missing.error
    program = tmp_path / "p.py"
    program.write_text(HONEST)
    monkeypatch.setattr("kvopt.bench.isolation.bwrap_problem", lambda _: "no bwrap (test)")
    monkeypatch.setattr("kvopt.bench.landlock.abi_version", lambda: 0)
    unavailable = loop.score_program(str(program), ("small",), loop.config_from({"KVOPT_ISOLATION": "namespaces"}))
    assert unavailable.metrics["combined_score"] == 0 and "no bwrap" in unavailable.error


# -- ShinkaEvolve ----------------------------------------------------------------------------------
@needs_sandbox
def test_shinka_job_scheduler_reads_kvopt_metrics_and_correctness(tmp_path, loop_env):
    framework("shinka")
    from shinka.launch.scheduler import JobScheduler, LocalJobConfig

    evaluate_py = evaluator_file(tmp_path, "shinka")
    scheduler = JobScheduler("local", LocalJobConfig(eval_program_path=str(evaluate_py)))
    results = {}
    for name, code in {"honest": HONEST, "weak": WEAK}.items():
        program = tmp_path / f"{name}.py"
        program.write_text(code)
        results[name], _ = scheduler.run(str(program), str(tmp_path / f"results_{name}"))
    honest, weak = results["honest"], results["weak"]
    assert honest["correct"] == {"correct": True, "error": None}
    assert 0 < honest["metrics"]["combined_score"] <= 1
    assert honest["metrics"]["public"]["valid_fraction"] == 1.0 and "mean_gap_tight" in honest["metrics"]["public"]
    assert "kvopt_score" in honest["metrics"]["private"] and "cases valid" in honest["metrics"]["text_feedback"]
    assert weak["correct"]["correct"] is False and "fits on no GPU" in weak["correct"]["error"]
    assert weak["metrics"]["combined_score"] < honest["metrics"]["combined_score"]
    on_disk = json.loads((tmp_path / "results_honest" / "metrics.json").read_text())
    assert on_disk["combined_score"] == honest["metrics"]["combined_score"]


def test_evaluator_files_with_settings_load_and_bad_settings_are_refused(tmp_path, monkeypatch):
    import importlib.util

    path = evaluator_file(tmp_path, "openevolve", "--timeout", "5", "--score", "adrs", "--suites", "small,tight")
    assert "configured(" in path.read_text()
    spec = importlib.util.spec_from_file_location("generated_evaluator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert all(callable(getattr(module, f)) for f in ("evaluate", "evaluate_stage1", "evaluate_stage2"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    refused = subprocess.run([sys.executable, "-m", "kvopt.cli", "evaluator", "--framework", "openevolve",
                              "--out", str(tmp_path / "x.py"), "--timeout", "-3"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and "KVOPT_TIMEOUT" in refused.stderr and not (tmp_path / "x.py").exists()
    shinka = evaluator_file(tmp_path, "shinka")
    bad_env = subprocess.run([sys.executable, str(shinka), "--program_path", str(PROGRAMS / "bisect_ffd.py"),
                              "--results_dir", str(tmp_path / "r")], capture_output=True, text=True,
                             env={**env, "KVOPT_SCORE": "best"}, timeout=120)
    assert bad_env.returncode == 2 and "KVOPT_SCORE" in bad_env.stderr and "Traceback" not in bad_env.stderr
