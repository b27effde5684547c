"""`kvopt evaluate A.py B.py ...`: a generation in one run, ranked by combined score, and the score cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvopt.bench.isolation import bwrap_binary, bwrap_problem

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = Path(__file__).parent / "programs"

pytestmark = pytest.mark.skipif(bwrap_problem(bwrap_binary()) is not None, reason="no namespace sandbox here")


def evaluate(*args: str, cache: Path) -> tuple[int, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KVOPT_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-m", "kvopt.cli", "evaluate", *args, "--suite", "small", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def greedy_copy(folder: Path, name: str, extra: str = "") -> Path:
    """A copy of the honest greedy program under another name (another source, if ``extra``)."""
    path = folder / name
    path.write_text((PROGRAMS / "prism_greedy.py").read_text() + extra)
    return path


def test_a_generation_is_ranked_by_score_and_a_broken_program_ranks_last(tmp_path):
    programs = [str(PROGRAMS / name) for name in ("raises.py", "prism_greedy.py", "places_twice.py")]
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('broken at load')\ndef compute_model_placement(g, m):\n    return {}\n")
    code, out = evaluate(*programs, str(broken), cache=tmp_path / "cache")
    assert code == 1
    rows = out["programs"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["program"].endswith("prism_greedy.py") and rows[0]["combined_score"] > 0
    scores = [r["combined_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    by_name = {Path(r["program"]).name: r for r in rows}
    assert by_name["raises.py"]["combined_score"] == 0 and by_name["raises.py"]["valid"] == 0
    assert by_name["broken.py"]["loaded"] is False and "broken at load" in by_name["broken.py"]["reason"]
    assert out["cached"] == 0


def test_programs_already_scored_come_from_the_cache_with_the_same_scores(tmp_path):
    cache = tmp_path / "cache"
    first_program = greedy_copy(tmp_path, "a.py")
    second_program = greedy_copy(tmp_path, "b.py", "\n# another source\n")
    _, first = evaluate(str(first_program), str(second_program), cache=cache)
    _, again = evaluate(str(first_program), str(second_program), cache=cache)
    assert first["cached"] == 0 and again["cached"] == 2
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("cached", "seconds")} for r in rows]  # noqa: E731
    assert strip(again["programs"]) == strip(first["programs"])
    # A changed source is a new key: run again, the unchanged one still cached.
    second_program.write_text(second_program.read_text() + "\n# changed\n")
    _, changed = evaluate(str(first_program), str(second_program), cache=cache)
    assert changed["cached"] == 1


def test_without_isolation_nothing_is_cached(tmp_path):
    cache = tmp_path / "cache"
    program, other = greedy_copy(tmp_path, "a.py"), greedy_copy(tmp_path, "b.py")
    evaluate(str(program), str(other), "--no-isolation", cache=cache)
    _, again = evaluate(str(program), str(other), "--no-isolation", cache=cache)
    assert again["cached"] == 0 and not cache.exists()


# -- the score ------------------------------------------------------------------------------------
from hypothesis import given, strategies as st  # noqa: E402

from kvopt.bench.fitness import case_score, combined_score  # noqa: E402

gaps = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(gaps, gaps)
def test_the_case_score_is_bounded_and_falls_as_the_gap_grows(a, b):
    low, high = sorted((a, b))
    assert 0 < case_score({"valid": True, "gap": high}) <= case_score({"valid": True, "gap": low}) <= 1


@given(gaps)
def test_an_invalid_case_never_scores_above_a_valid_one(gap):
    assert case_score({"valid": False, "gap": None}) == 0 <= case_score({"valid": True, "gap": gap})
    assert case_score({"valid": True, "gap": float("inf")}) == 0


def test_combined_score_values():
    assert case_score({"valid": True, "gap": 0.0}) == 1 and case_score({"valid": True, "gap": 0.01}) == 0.5
    assert case_score({"valid": True, "gap": -0.2}) == 1  # beating a non-proven reference is capped at 1
    assert combined_score([{"valid": True, "gap": 0.0}, {"valid": False, "gap": None}]) == 0.5
    assert combined_score([]) == 0


def test_a_generation_where_nothing_loads_is_a_ranking_of_zeros_not_bad_input(tmp_path):
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("x = 1\n")
    code, out = evaluate(str(tmp_path / "a.py"), str(tmp_path / "b.py"), cache=tmp_path / "cache")
    assert code == 1
    assert [r["combined_score"] for r in out["programs"]] == [0.0, 0.0]
    assert all(not r["loaded"] and "compute_model_placement" in r["reason"] for r in out["programs"])
