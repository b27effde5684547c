"""The CLI's manners: one clear line and exit 2 for bad input (never a traceback), --version,
``python -m kvopt``, stdin, help texts, CSV from spreadsheets, readable tables, quiet progress."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvopt import __version__
from kvopt.cli import BracketProgress, build_parser, main
from kvopt.io import save_instance
from kvopt.model import Instance

REPO = Path(__file__).resolve().parents[1]
GOOD = {"name": "demo", "gpu_mem_gb": [80, 40],
        "models": [{"name": "a", "size_gb": 20, "req_rate": 6, "slo": 2},
                   {"name": "b", "size_gb": 30, "req_rate": 1, "slo": 3},
                   {"name": "c", "size_gb": 25, "req_rate": 10, "slo": 5}]}


def write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def bad_input(argv: list[str], capsys: pytest.CaptureFixture, message: str) -> str:
    """Run ``argv``: exit 2, exactly one line on stderr containing ``message``, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvopt: error: "), err
    assert message in lines[0] and "Traceback" not in err
    return lines[0]


# -- bad input: exit 2, one line ----------------------------------------------------------
def test_a_directory_as_instance_or_placement(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inst = write(tmp_path / "inst.json", GOOD)
    bad_input(["solve", str(tmp_path)], capsys, "is a directory")
    bad_input(["check", str(inst), str(tmp_path)], capsys, "is a directory")
    bad_input(["solve", str(tmp_path), "--gpus", "2"], capsys, "is a directory")  # as a CSV
    (tmp_path / "models.csv").mkdir()
    bad_input(["solve", str(tmp_path / "models.csv"), "--gpus", "2"], capsys, "is a directory")


def test_out_into_a_missing_folder_or_onto_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inst = str(write(tmp_path / "inst.json", GOOD))
    bad_input(["solve", inst, "--out", str(tmp_path / "nope" / "p.json")], capsys, "does not exist")
    bad_input(["solve", inst, "--out", str(tmp_path)], capsys, "is a folder")
    bad_input(["export", inst, "--T", "1", "--out", str(tmp_path / "nope" / "m.lp")], capsys, "does not exist")
    bad_input(["export", inst, "--T", "1", "--out", str(tmp_path)], capsys, "is a folder")
    assert not (tmp_path / "nope").exists()


def test_generate_report_reference_out_onto_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    existing = write(tmp_path / "taken", "keep me")
    bad_input(["generate", "--suite", "small", "--out", str(existing)], capsys, "not a folder")
    bad_input(["report", "--methods", "greedy", "--out", str(existing)], capsys, "not a folder")
    bad_input(["reference", "--suite", "small", "--out", str(existing)], capsys, "not a folder")
    baseline = REPO / "reports" / "baseline" / "results.json"
    bad_input(["regress", "--baseline", str(baseline), "--out", str(existing)], capsys, "not a folder")
    assert existing.read_text() == "keep me"


HUGE_INT = "9" * 5000
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text, message", [
    (json.dumps(GOOD).replace('"size_gb": 20', f'"size_gb": {HUGE_INT}'), "an integer with 5000 digits"),
    (json.dumps(GOOD).replace('"size_gb": 20', f'"size_gb": {DEEP}'), "nested too deeply"),
    (DEEP, "nested too deeply"),
    ("{" * 50_000 + "}" * 50_000, "not valid JSON"),
], ids=["5000-digit integer", "deep list in a field", "deep list", "deep objects"])
def test_hostile_json_in_every_input(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str) -> None:
    inst = write(tmp_path / "inst.json", GOOD)
    hostile = write(tmp_path / "hostile.json", text)
    bad_input(["solve", str(hostile)], capsys, message)
    bad_input(["check", str(inst), str(hostile)], capsys, message)
    bad_input(["regress", "--baseline", str(hostile)], capsys, message)
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(inst, suite / "inst.json")
    shutil.copy(hostile, suite / "reference.json")
    bad_input(["evaluate", "greedy", "--suite", str(suite)], capsys, message)
    (suite / "reference.json").unlink()
    shutil.copy(hostile, suite / "case2.json")
    bad_input(["evaluate", "greedy", "--suite", str(suite)], capsys, message)
    # The resume journal of a report: a bad line that is not the last one.
    out = tmp_path / "report"
    out.mkdir()
    (out / "results.jsonl").write_text(text.replace("\n", " ") + "\n{}\n")
    bad_input(["report", "--methods", "greedy", "--suite", "small", "--out", str(out),
               "--resume"], capsys, "results.jsonl: line 1")


def test_overflowing_numbers_name_the_model_and_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = json.loads(json.dumps(GOOD))
    data["models"][1].update(req_rate=1e308, slo=1e-308)
    line = bad_input(["solve", str(write(tmp_path / "i.json", data)), "--method", "exact"], capsys,
                     "model 'b': field 'req_rate'")
    assert "out of the supported range" in line
    data["models"][1].update(req_rate=1, slo=1e-308)
    bad_input(["solve", str(write(tmp_path / "i.json", data))], capsys, "model 'b': field 'slo'")
    data["models"][1].update(slo=1, size_gb=10**40)
    bad_input(["solve", str(write(tmp_path / "i.json", data))], capsys, "model 'b': field 'size_gb'")


def test_extreme_but_valid_numbers_print_no_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Values at the ends of the supported range solve without any numpy/overflow noise on stderr."""
    models = [{"name": "hot", "size_gb": 1e-12, "req_rate": 1e12, "slo": 1e-12},
              {"name": "big", "size_gb": 79.999999999999, "req_rate": 1e12, "slo": 1e-12},
              {"name": "cold", "size_gb": 1e-12, "req_rate": 0, "slo": 1e12}]
    path = write(tmp_path / "i.json", {"gpu_mem_gb": [80, 80], "models": models})
    for method in ("greedy", "pipeline", "exact"):
        assert main(["solve", str(path), "--method", method, "--json"]) == 0
        out, err = capsys.readouterr()
        assert err == "" and json.loads(out)["peak_kvpr"] is not None


# -- --version, python -m kvopt, stdin -------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kvopt {__version__}"


def test_python_dash_m_kvopt(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    inst = write(tmp_path / "inst.json", GOOD)
    proc = subprocess.run([sys.executable, "-m", "kvopt", "solve", str(inst), "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "feasible"
    proc = subprocess.run([sys.executable, "-m", "kvopt", "solve", str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))


def test_dash_reads_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _stdin(monkeypatch, json.dumps(GOOD))
    assert main(["solve", "-", "--method", "exact", "--json"]) == 0
    from_stdin = json.loads(capsys.readouterr().out)
    assert main(["solve", str(write(tmp_path / "demo.json", GOOD)), "--method", "exact", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_kvpr_exact"] == from_stdin["peak_kvpr_exact"]

    _stdin(monkeypatch, "name,size_gb,req_rate,slo\na,20,6,2\nb,30,1,3\n")
    assert main(["solve", "-", "--gpus", "2", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["assignment"]) == {"a", "b"}

    placement = {"assignment": from_stdin["assignment"]}
    _stdin(monkeypatch, json.dumps(placement))
    assert main(["check", str(tmp_path / "demo.json"), "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    bad_input(["check", "-", "-"], capsys, "both be read from stdin")


# -- help ---------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_with_its_default_and_choices() -> None:
    parser = build_parser()
    top = parser.format_help()
    assert "KV-cache pressure" in top and "examples:" in top and "exit status" in top
    assert "argument parsing only" not in top  # the developer docstring is not the user's description
    for name, sub in _subparsers(parser).items():
        text = sub.format_help()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"kvopt {name} {action.dest}: no help text"
            if action.option_strings and action.default not in (None, False, ""):
                options = text[text.index("options:"):]
                entry = options[options.index("\n  " + action.option_strings[0]) + 3:]
                assert "default" in entry.split("\n  -")[0], f"kvopt {name} {action.option_strings[0]}: no default"
            if action.choices:
                assert "{" + ",".join(action.choices) + "}" in text


# -- CSV ----------------------------------------------------------------------------------
def test_csv_with_bom_is_read(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "models.csv"
    path.write_bytes("name,size_gb,req_rate,slo\r\na,20,6,2\r\nb,30,1,3\r\n".encode("utf-8-sig"))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert main(["solve", str(path), "--gpus", "2", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["assignment"]) == {"a", "b"}


@pytest.mark.parametrize("text, message", [
    ("name,size_gb,req_rate,slo,notes\na,20,6,2,x\n", "unknown or repeated column(s) notes"),
    ("name,size_gb,req_rate,slo,slo\na,20,6,2,2\n", "unknown or repeated column(s)"),
    ("name,size_gb,req_rate,slo\na,20,6,2,7\n", "line 2: 5 fields, the header has 4"),
])
def test_csv_extra_fields_are_an_error(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str) -> None:
    bad_input(["solve", str(write(tmp_path / "m.csv", text)), "--gpus", "2"], capsys, message)


# -- tables -------------------------------------------------------------------------------
def _cluster(num_gpus: int, long_names: bool = False) -> Instance:
    prefix = "meta-llama-3.1-70b-instruct-awq-int4-replica-" if long_names else "m"
    models = [{"name": f"{prefix}{i}", "size_gb": 10 + i % 5, "req_rate": 1 + i % 7, "slo": 1}
              for i in range(3 * num_gpus)]
    return Instance.build(models, [80] * num_gpus, name="cluster")


def _gpu_rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^\s*\d+\s+80\s", line)]


def test_long_gpu_lists_are_summarised(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "c.json"
    save_instance(_cluster(64), path)
    assert main(["solve", str(path)]) == 0
    out = capsys.readouterr().out
    assert 1 <= len(_gpu_rows(out)) < 64 and "GPUs shown" in out and "--all" in out
    assert main(["solve", str(path), "--all"]) == 0
    out = capsys.readouterr().out
    assert len(_gpu_rows(out)) == 64 and "GPUs shown" not in out


def test_every_gpu_at_the_peak_is_marked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Four identical models on two identical GPUs: the optimum puts two on each, both at the peak.
    models = [{"name": f"m{i}", "size_gb": 20, "req_rate": 2, "slo": 1} for i in range(4)]
    path = write(tmp_path / "i.json", {"gpu_mem_gb": [80, 80], "models": models})
    assert main(["solve", str(path), "--method", "exact"]) == 0
    assert capsys.readouterr().out.count("<- peak") == 2


def test_gpus_at_an_infinite_peak_are_marked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Two 80 GB models with demand on two 80 GB GPUs: both GPUs are full, both KVPRs +inf.
    models = [{"name": f"m{i}", "size_gb": 80, "req_rate": 1, "slo": 1} for i in range(2)] + \
             [{"name": "idle", "size_gb": 80, "req_rate": 0, "slo": 1}]
    inst = write(tmp_path / "i.json", {"gpu_mem_gb": [80, 80, 80], "models": models})
    placement = write(tmp_path / "p.json", {"assignment": {"m0": 0, "m1": 1, "idle": 2}})
    assert main(["check", str(inst), str(placement)]) == 0
    out = capsys.readouterr().out
    marked = [line.split()[0] for line in out.splitlines() if "<- peak" in line]
    assert marked == ["0", "1"]


def test_long_names_are_shortened(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "c.json"
    save_instance(_cluster(4, long_names=True), path)
    assert main(["solve", str(path)]) == 0
    out = capsys.readouterr().out
    assert "meta-llama-3.1-70b-instruct-awq-int4-replica-1" not in out and "…" in out
    assert "meta-llama-…t4-replica-1," in out  # the distinguishing end of a name is kept
    assert all(len(line) < 160 for line in out.splitlines())


def test_solve_labels_its_gap(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = str(write(tmp_path / "i.json", GOOD))
    assert main(["solve", path, "--method", "exact"]) == 0
    out = capsys.readouterr().out
    assert "status       optimal" in out and "(against the proven optimum)" in out
    assert main(["solve", path, "--method", "greedy"]) == 0
    out = capsys.readouterr().out
    assert "status       feasible" in out and "(against the lower bound; optimum not proven)" in out
    for method, against in (("exact", "optimum"), ("greedy", "lower bound")):
        assert main(["solve", path, "--method", method, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["gap_against"] == against


# -- progress -----------------------------------------------------------------------------
def test_bracket_progress_on_a_terminal() -> None:
    from fractions import Fraction

    from kvopt.exact.bisection import ExactProgress

    stream = io.StringIO()
    with BracketProgress(enabled=True, after_s=0.0, stream=stream, tick_s=0.01, label="exact") as progress:
        assert progress.callback is not None
        time.sleep(0.05)  # the ticker draws before the first event
        progress.callback(ExactProgress(3, Fraction(1, 20), False, "feasible", 0.1, Fraction(1, 25), Fraction(1, 20)))
        time.sleep(0.05)
    text = stream.getvalue()
    assert "exact: solving  (0." in text
    assert "exact: 0.04 <= OPT <= 0.05, step 3  (" in text and " s)" in text
    assert text.endswith("\r") and text.rstrip("\r").endswith(" ")  # the line is erased when the solve ends
    assert BracketProgress(enabled=False).callback is None
    quiet = io.StringIO()
    with BracketProgress(enabled=True, after_s=60.0, stream=quiet, tick_s=0.01) as progress:
        time.sleep(0.03)
        progress.show(None)
    assert quiet.getvalue() == ""  # short solves print nothing


def test_exact_solve_is_quiet_when_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["solve", str(write(tmp_path / "i.json", GOOD)), "--method", "exact"]) == 0
    assert capsys.readouterr().err == ""


# -- quick start ----------------------------------------------------------------------------
def test_quick_start_writes_only_ignored_files() -> None:
    """The README's first quick-start command writes its report where git ignores it."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2 and "kvopt report" in commands[0] and "pytest" in commands[1]
    out_dir = commands[0].split("--out", 1)[1].split()[0]
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", f"{out_dir}/report.md"])
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", out_dir], capture_output=True, text=True)
    assert ignored.returncode == 0, f"{out_dir} is not ignored by git"
    assert tracked.stdout == "", f"{out_dir} holds committed files"
