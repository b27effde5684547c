"""Gap reports: files, reference choice, worst-method marking, and independence from the number of jobs."""

from __future__ import annotations

import csv
import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from kvopt.bench.cases import load_cases
from kvopt.bench.executors import LocalExecutor
from kvopt.bench.report import write_report
from kvopt.bench.results import read_results, run_benchmark
from kvopt.bench.runner import RunSettings, method_from_name, method_from_program
from kvopt.bench.sandbox import Limits
from kvopt.bench.scoring import choose_references
from kvopt.cli import main
from kvopt.model import Instance
from test_programs import CASE_G1, CASE_G2, PROGRAMS, model, write_suite

SETTINGS = RunSettings(Limits(timeout_s=5.0, memory_mb=1024))


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> str:
    return write_suite(tmp_path_factory.mktemp("suites") / "tiny", [CASE_G1, CASE_G2],
                       {"g1": ("1/6", "optimal"), "g2": ("2/15", "optimal")})


def methods():
    return [method_from_name("greedy"), method_from_program(str(PROGRAMS / "prism_greedy.py"), SETTINGS.limits),
            method_from_program(str(PROGRAMS / "overflow.py"), SETTINGS.limits)]


@pytest.fixture(scope="module")
def document(suite: str) -> dict:
    return run_benchmark([suite], methods(), SETTINGS, executor=LocalExecutor(2))


def test_report_files(document: dict, tmp_path: Path) -> None:
    write_report(document, tmp_path / "rep")
    out = tmp_path / "rep"
    page = (out / "report.html").read_text()
    # Self-contained: four embedded plots, no external images.
    assert page.count("data:image/png;base64,") == 4
    assert "src='plots/" not in page and 'src="http' not in page
    assert read_results(out / "results.json")["summary"].keys() == document["summary"].keys()
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 3
    assert {r["method"] for r in rows} == {"greedy", str(PROGRAMS / "prism_greedy.py"), str(PROGRAMS / "overflow.py")}
    for name in ("gap_per_case", "gap_distribution", "time_vs_size", "worst_case_gpus"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_report_marks_the_worst_method_of_each_case(document: dict, tmp_path: Path) -> None:
    write_report(document, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    lines = {line.split("|")[2].strip(): line for line in md.splitlines() if line.startswith("| tiny |")}
    # g1: overflow.py puts 100 GB on GPU 0 -> invalid; greedy and prism_greedy are optimal.
    assert "**invalid (overflow)**" in lines["g1"] and "| 0.00% | 0.00% |" in lines["g1"]
    # g2: overflow.py holds all 75 GB on GPU 0: 9/5 = 1.8, gap 1.8/(2/15) - 1 = 1250 %; greedy 150 %.
    assert "**1250.00%**" in lines["g2"] and "| 150.00% | 150.00% |" in lines["g2"]


def test_summary_per_method(document: dict) -> None:
    greedy = document["summary"]["greedy"]
    assert (greedy["cases"], greedy["valid"], greedy["optimal"]) == (2, 2, 1)
    assert greedy["mean_gap"] == pytest.approx(0.75)
    overflow = document["summary"][str(PROGRAMS / "overflow.py")]
    assert overflow["valid"] == 1 and overflow["failures"] == {"overflow": 1}
    assert overflow["max_gap"] == pytest.approx(12.5)


def test_results_do_not_depend_on_the_number_of_jobs(suite: str, document: dict) -> None:
    serial = run_benchmark([suite], methods(), SETTINGS, executor=LocalExecutor(1))

    def strip(doc: dict) -> str:
        cases = [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")} for r in doc["cases"]]
        summary = {m: {k: v for k, v in s.items() if k != "seconds"} for m, s in doc["summary"].items()}
        return json.dumps([cases, summary], sort_keys=True)

    assert strip(serial) == strip(document)
    assert [(r["case"], r["method"]) for r in document["cases"]] == [
        (c, m.name) for c in ("g1", "g2") for m in methods()]


def test_reference_preference(tmp_path: Path) -> None:
    """Stored optimum, else this run's exact result, else the best lower bound."""
    inst = Instance.build([model("a", 40, 4, 1), model("b", 20, 2, 1)], [80, 80], name="r1")
    folder = write_suite(tmp_path / "refs", [inst])
    cases = load_cases(folder)
    exact = {"kind": "exact", "role": "method", "suite_key": folder, "case": "r1", "valid": True,
             "status": "optimal", "peak_kvpr_exact": "1/10", "lower_bound_exact": "1/10"}
    ref = choose_references([cases], [exact])[(folder, "r1")]
    assert (ref.value, ref.status, ref.source) == (Fraction(1, 10), "optimal", "exact")
    stored = write_suite(tmp_path / "refs2", [inst], {"r1": ("1/10", "optimal")})
    ref = choose_references([load_cases(stored)], [dict(exact, suite_key=stored, peak_kvpr_exact="1/5")])
    assert ref[(stored, "r1")].source == "reference.json" and ref[(stored, "r1")].value == Fraction(1, 10)
    timed_out = dict(exact, valid=False, status="unknown", peak_kvpr_exact=None, lower_bound_exact="1/20")
    ref = choose_references([cases], [timed_out])[(folder, "r1")]
    assert ref.status == "bound" and ref.value >= Fraction(1, 20)


def test_cli_report_json_and_progress(suite: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    argv = ["report", "--suite", suite, "--methods", "greedy", "--programs", str(PROGRAMS / "prism_greedy.py"),
            "--out", str(tmp_path / "r"), "--jobs", "1"]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["greedy"]["optimal"] == 1
    assert "case/s" not in captured.err and "2/4" not in captured.err  # quiet with --json
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "4/4" in captured.err  # the progress bar counted every (case, method)
    assert "greedy" in captured.out and (tmp_path / "r" / "report.html").exists()
