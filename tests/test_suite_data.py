"""Where suites and references come from: only the package's data and the user's explicit folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvopt.bench.cases import load_cases
from kvopt.bench.regress import compare_records, compare_results
from kvopt.cli import main
from kvopt.model import KvoptError
from kvopt.suites import builtin_instances_dir, load_reference, load_suite
from test_programs import CASE_G1, CASE_G2, write_suite

REPO = Path(__file__).resolve().parents[1]


def plant(folder: Path) -> None:
    """A hostile ./instances/adrs50: one fake case and absurd 'optima'."""
    target = folder / "instances" / "adrs50"
    target.mkdir(parents=True)
    write_suite(target, [CASE_G1], {"g1": ("1/1000", "optimal")})
    (target / "reference.json").write_text(json.dumps({"cases": {f"adrs50_{i:02d}": {"status": "optimal",
                                                                                    "value": "1/1000"}
                                                                  for i in range(50)}}))


def test_builtin_data_is_the_checkouts_instances_folder() -> None:
    assert Path(str(builtin_instances_dir())) == REPO / "instances"


def test_suite_name_never_reads_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KVOPT_INSTANCES", raising=False)
    cases = load_cases("adrs50")
    assert len(cases.instances) == 50 and "g1" not in {i.name for i in cases.instances}
    stored = json.loads((REPO / "instances" / "adrs50" / "reference.json").read_text())["cases"]
    assert {k: v["value"] for k, v in cases.references.items()} == {k: v["value"] for k, v in stored.items()}


def test_kvopt_instances_is_an_explicit_user_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant(tmp_path)
    monkeypatch.setenv("KVOPT_INSTANCES", str(tmp_path / "instances"))
    assert [i.name for i in load_suite("adrs50")] == ["g1"]
    assert load_reference("adrs50")["adrs50_03"]["value"] == "1/1000"
    # A suite the user root does not hold still comes from the package.
    assert len(load_suite("tight")) == 20 and len(load_reference("tight")) == 20


def test_load_cases_is_in_memory(tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "tiny", [CASE_G1, CASE_G2], {"g1": ("1/6", "optimal")})
    cases = load_cases(folder)
    for path in Path(folder).iterdir():
        path.unlink()
    assert [i.name for i in cases.instances] == ["g1", "g2"] and cases.references["g1"]["value"] == "1/6"


@pytest.mark.parametrize("content, message", [
    ("{not json", r"reference\.json: not valid JSON"),
    ("[1, 2]", r"reference\.json: expected a JSON object, got list"),
    ('{"cases": []}', r"reference\.json: field 'cases': expected an object"),
    ('{"cases": {"g1": 3}}', r"reference\.json: case 'g1': expected an object, got int"),
    ('{"cases": {"g1": {"status": "great", "value": "1/6"}}}', r"case 'g1': field 'status' must be one of"),
    ('{"cases": {"g1": {"status": "optimal", "value": "one sixth"}}}', r"case 'g1': field 'value': expected"),
    ('{"cases": {"g1": {"status": "optimal", "value": "1/0"}}}', r"case 'g1': field 'value': expected"),
    ('{"cases": {"g1": {"status": "optimal", "value": "-1/6"}}}', r"case 'g1': field 'value': must be >= 0"),
    ('{"cases": {"g1": {"status": "optimal"}}}', r"case 'g1': status 'optimal' needs a 'value'"),
    ('{"cases": {"g1": {"status": "optimal", "value": "1/6", "lower_bound": [1]}}}',
     r"case 'g1': field 'lower_bound': expected"),
])
def test_bad_reference_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    folder = write_suite(tmp_path / "tiny", [CASE_G1])
    (Path(folder) / "reference.json").write_text(content)
    with pytest.raises(KvoptError, match=message):
        load_cases(folder)
    assert main(["evaluate", "greedy", "--suite", folder]) == 2


def test_binary_file_in_a_suite_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_suite(tmp_path / "tiny", [CASE_G1])
    (Path(folder) / "blob.json").write_bytes(b"\xff\xfe\x00garbage")
    assert main(["evaluate", "greedy", "--suite", folder]) == 2
    err = capsys.readouterr().err
    assert "blob.json: not a text file" in err and len(err.strip().splitlines()) == 1


def test_missing_references_are_loud(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_suite(tmp_path / "tiny", [CASE_G1, CASE_G2], {"g1": ("1/6", "optimal")})
    assert main(["evaluate", "greedy", "--suite", folder, "--json"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "no stored reference" in line]
    assert len(warnings) == 1 and "tiny: 1 of 2 cases" in warnings[0]
    data = json.loads(out)
    assert data["summary"]["missing_references"] == 1
    assert {c["name"]: c["reference_missing"] for c in data["cases"]} == {"g1": False, "g2": True}

    assert main(["evaluate", "greedy", "--suite", folder]) == 0
    table = capsys.readouterr().out
    g2_row = next(line for line in table.splitlines() if line.split()[1:2] == ["g2"])
    assert g2_row.rstrip().split()[-3] == "!" and "no stored reference optimum for 1 case" in table

    out_dir = tmp_path / "report"
    assert main(["report", "--suite", folder, "--methods", "greedy", "--out", str(out_dir)]) == 0
    capsys.readouterr()
    for name in ("report.md", "report.html"):
        assert "1 case(s) have no stored reference optimum" in (out_dir / name).read_text()
    results = json.loads((out_dir / "results.json").read_text())
    assert results["summary"]["greedy"]["missing_references"] == 1


def test_complete_references_print_no_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_suite(tmp_path / "tiny", [CASE_G1, CASE_G2], {"g1": ("1/6", "optimal"), "g2": ("2/15", "optimal")})
    assert main(["evaluate", "greedy", "--suite", folder]) == 0
    out, err = capsys.readouterr()
    assert "no stored reference" not in err + out and " !" not in out


def test_regress_compares_only_like_with_like() -> None:
    """A case measured against an optimum before and against a bound now is neither worse nor better."""
    old = {"suite": "s", "suite_key": "s", "case": "c", "method": "m", "role": "method", "valid": True,
           "peak_kvpr": 1.0, "reference": 1.0, "reference_status": "optimal", "optimal": True}
    new = dict(old, peak_kvpr=1.5, reference=0.5, reference_status="bound", optimal=False)
    change = compare_records(old, new, 1e-9)
    assert change is not None and change.direction == "not comparable" and change.what == "reference kind"
    comparison = compare_results({"cases": [old], "summary": {"m": {"optimal": 1}}},
                                 {"cases": [new], "summary": {"m": {"optimal": 0}}})
    assert not comparison.regressed and comparison.optimal_counts == {"m": (0, 0)}
    assert comparison.not_comparable == [change]
    # The same drop with an unchanged reference kind is a regression.
    worse = dict(new, reference_status="optimal")
    comparison = compare_results({"cases": [old], "summary": {"m": {"optimal": 1}}},
                                 {"cases": [worse], "summary": {"m": {"optimal": 0}}})
    assert comparison.regressed and comparison.optimal_dropped == {"m": (1, 0)}


def test_reference_writes_into_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    before = (REPO / "instances" / "small" / "reference.json").read_bytes()
    assert main(["reference", "--suite", "small", "--time-limit", "20"]) == 0
    assert "wrote instances/small/reference.json" in capsys.readouterr().out
    written = json.loads((tmp_path / "instances" / "small" / "reference.json").read_text())
    stored = json.loads(before)["cases"]
    assert {k: v["value"] for k, v in written["cases"].items()} == {k: v["value"] for k, v in stored.items()}
    # The folder is a complete suite: instances beside the reference.
    assert len(load_cases(str(tmp_path / "instances" / "small")).instances) == 20
    assert (REPO / "instances" / "small" / "reference.json").read_bytes() == before
    assert main(["reference", "--suite", "small", "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "reference.json").is_file()
