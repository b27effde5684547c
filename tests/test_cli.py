"""The CLI: exit codes, JSON output, and clear messages for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvopt.cli import main
from kvopt.evaluate import evaluate, parse_fraction
from kvopt.io import load_instance, save_instance
from kvopt.model import Instance


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def small_instance(tmp_path: Path) -> Path:
    inst = Instance.build(
        [{"name": f"m{i}", "size_gb": 10 + 3 * i, "req_rate": 1 + i % 4, "slo": 5 + i % 3} for i in range(8)],
        [80, 80, 40],
        name="small",
    )
    path = tmp_path / "small.json"
    save_instance(inst, path)
    return path


@pytest.mark.parametrize("method", ["greedy", "pipeline"])
def test_solve_json_is_valid_and_reevaluates(small_instance: Path, method: str, capsys) -> None:
    assert main(["solve", str(small_instance), "--method", method, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    inst = load_instance(small_instance)
    assert out["method"] == method
    assert set(out["assignment"]) == {m.name for m in inst.models}
    ev = evaluate(inst, [out["assignment"][m.name] for m in inst.models])
    assert out["peak_kvpr"] == pytest.approx(ev.peak_kvpr)
    assert parse_fraction(out["peak_kvpr_exact"]) == ev.peak_kvpr_exact
    assert out["gpu_kvpr"] == pytest.approx(list(ev.gpu_kvpr))


def test_solve_table_marks_the_peak(small_instance: Path, capsys) -> None:
    assert main(["solve", str(small_instance)]) == 0
    out = capsys.readouterr().out
    assert out.count("<- peak") == 1
    assert "peak_kvpr" in out


def test_solve_writes_out_file_and_check_accepts_it(small_instance: Path, tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "placement.json"
    assert main(["solve", str(small_instance), "--out", str(out_file)]) == 0
    capsys.readouterr()
    assert main(["check", str(small_instance), str(out_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_check_rejects_overflow_with_exit_1(small_instance: Path, tmp_path: Path, capsys) -> None:
    inst = load_instance(small_instance)
    everything_on_gpu2 = {m.name: 2 for m in inst.models}
    placement = _write(tmp_path, "bad.json", {"assignment": everything_on_gpu2})
    assert main(["check", str(small_instance), str(placement)]) == 1
    assert "GPU 2: memory overflow" in capsys.readouterr().out


def test_check_names_unknown_model(small_instance: Path, tmp_path: Path, capsys) -> None:
    inst = load_instance(small_instance)
    assignment = {m.name: 0 for m in inst.models}
    assignment["ghost"] = 1
    placement = _write(tmp_path, "bad.json", {"assignment": assignment})
    assert main(["check", str(small_instance), str(placement), "--json"]) == 1
    assert "'ghost': unknown model" in json.loads(capsys.readouterr().out)["reason"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"gpu_mem_gb": [80], "models": [{"name": "a", "size_gb": "big", "req_rate": 1, "slo": 1}]},
         "model 'a': field 'size_gb': expected a number"),
        ({"gpu_mem_gb": [80], "models": [{"name": "a", "size_gb": 10, "slo": 1}]},
         "model 'a': missing field 'req_rate'"),
        ({"gpu_mem_gb": [], "models": [{"name": "a", "size_gb": 10, "req_rate": 1, "slo": 1}]},
         "no GPUs"),
    ],
)
def test_bad_instance_exits_2_with_message(tmp_path: Path, data: dict, message: str, capsys) -> None:
    path = _write(tmp_path, "inst.json", data)
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "data, message",
    [
        ({"gpu_mem_gb": [80], "models": [{"name": "a", "size_gb": 90, "req_rate": 1, "slo": 1}]},
         "model 'a': field 'size_gb' = 90 GB is larger than every GPU"),
        ({"gpu_mem_gb": [80, 80], "models": [{"name": f"m{i}", "size_gb": 60, "req_rate": 1, "slo": 1}
                                             for i in range(3)]},
         "exceeds total GPU memory 160 GB by 20 GB"),
    ],
)
def test_unplaceable_instance_is_reported_infeasible(tmp_path: Path, data: dict, message: str, capsys) -> None:
    path = _write(tmp_path, "inst.json", data)
    assert main(["solve", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "infeasible"
    assert message in out["reason"]


def test_packing_infeasible_instance_is_proven_infeasible(tmp_path: Path, capsys) -> None:
    # Total memory suffices (150 <= 160) but no two 50 GB models share an 80 GB GPU.
    data = {"gpu_mem_gb": [80, 80], "models": [{"name": f"m{i}", "size_gb": 50, "req_rate": 1, "slo": 1}
                                                for i in range(3)]}
    path = _write(tmp_path, "inst.json", data)
    assert main(["solve", str(path), "--method", "exact", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "infeasible"


def test_missing_file_and_unknown_method_exit_2(small_instance: Path, capsys) -> None:
    assert main(["solve", "/nonexistent/inst.json"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["solve", str(small_instance), "--method", "magic"]) == 2
    assert "invalid choice: 'magic'" in capsys.readouterr().err


def test_csv_input_needs_gpus(tmp_path: Path, capsys) -> None:
    csv_path = tmp_path / "models.csv"
    csv_path.write_text("name,size_gb,req_rate,slo\na,20,4,5\nb,30,2,8\nc,25,9,6\n")
    assert main(["solve", str(csv_path)]) == 2
    assert "--gpus" in capsys.readouterr().err
    assert main(["solve", str(csv_path), "--gpus", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["assignment"]) == {"a", "b", "c"}


def test_generate_and_suites(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--suite", "adrs50", "--out", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a").glob("*.json"))) == 50
    capsys.readouterr()
    assert main(["suites", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert "adrs50" in names
    assert main(["generate", "--suite", "nope", "--out", str(tmp_path / "b")]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_exact_solve_reports_status_bound_and_fraction(small_instance: Path, capsys) -> None:
    assert main(["solve", str(small_instance), "--method", "exact", "--json", "--time-limit", "30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "optimal"
    assert out["gap"] == 0
    assert parse_fraction(out["peak_kvpr_exact"]) == parse_fraction(out["lower_bound_exact"])


def test_export_rejects_bad_target(small_instance: Path, capsys) -> None:
    assert main(["export", str(small_instance), "--T", "-1"]) == 2
    assert "--T: must be > 0" in capsys.readouterr().err
