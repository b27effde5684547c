"""Instance and placement files: round trips, and a clear message for every bad file."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from kvopt.evaluate import parse_fraction
from kvopt.io import (
    instance_from_dict,
    instance_to_dict,
    load_instance,
    load_models_csv,
    load_placement,
    result_to_json,
    save_instance,
)
from kvopt.model import Instance, KvoptError, Placement, Result, infeasibility_reason

GOOD = {
    "name": "demo",
    "gpu_mem_gb": [80, 40],
    "models": [
        {"name": "a", "size_gb": 20, "req_rate": 6, "slo": 2},
        {"name": "b", "size_gb": 30.5, "req_rate": 0.1, "slo": 0.3},
        {"name": "c", "size_gb": 35, "req_rate": 10, "slo": 5},
    ],
    "meta": {"family": "test", "seed": 1},
}

CSV_HEADER = "name,size_gb,req_rate,slo\n"


def write_json(tmp_path: Path, data: object, name: str = "inst.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def write_text(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- JSON instances ----------------------------------------------------------------------------
def test_json_round_trip_keeps_everything(tmp_path: Path) -> None:
    inst = instance_from_dict(GOOD)
    path = tmp_path / "out.json"
    save_instance(inst, path)
    again = load_instance(path)
    assert again == inst
    assert instance_to_dict(again) == GOOD
    assert dict(again.meta) == GOOD["meta"]
    assert again.demands_exact[1] == Fraction(1, 3)


def test_json_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    data = {k: v for k, v in GOOD.items() if k != "name"}
    assert load_instance(write_json(tmp_path, data, "cluster7.json")).name == "cluster7"


def test_instance_without_meta_writes_no_meta() -> None:
    data = {k: v for k, v in GOOD.items() if k != "meta"}
    assert "meta" not in instance_to_dict(instance_from_dict(data))


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(KvoptError, match=r"nope\.json: file not found"):
        load_instance(tmp_path / "nope.json")


def test_bad_json_file(tmp_path: Path) -> None:
    path = write_text(tmp_path, '{"gpu_mem_gb": [80],\n "models": [}', "broken.json")
    with pytest.raises(KvoptError, match=r"broken\.json: not valid JSON \(.* at line 2 column \d+\)"):
        load_instance(path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.json"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(KvoptError, match=r"blob\.json: not a text file"):
        load_instance(path)


@pytest.mark.parametrize("data, message", [
    ([1, 2], r"instance: expected a JSON object, got list"),
    ({"gpu_mem_gb": [80]}, r"instance: missing field 'models'"),
    ({"models": []}, r"instance: missing field 'gpu_mem_gb'"),
    ({"models": {"a": 1}, "gpu_mem_gb": [80]}, r"field 'models': expected a list"),
    ({"models": GOOD["models"], "gpu_mem_gb": 80}, r"field 'gpu_mem_gb': expected a list of numbers, got 80"),
    ({**GOOD, "name": 5}, r"field 'name': must be a string, got 5"),
    ({**GOOD, "meta": [1]}, r"field 'meta': expected an object"),
    ({**GOOD, "gpu_mem_gb": []}, r"the cluster has no GPUs"),
    ({**GOOD, "models": []}, r"the instance has no models"),
])
def test_bad_instance_structure(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(KvoptError, match=message):
        load_instance(write_json(tmp_path, data))


def test_json_model_missing_field(tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    del data["models"][2]["req_rate"]
    with pytest.raises(KvoptError, match=r"model 'c': missing field 'req_rate'"):
        load_instance(write_json(tmp_path, data))


def test_json_non_numeric_field(tmp_path: Path) -> None:
    data = json.loads(json.dumps(GOOD))
    data["models"][0]["size_gb"] = "20GB"
    with pytest.raises(KvoptError, match=r"model 'a': field 'size_gb': expected a number, got '20GB'"):
        load_instance(write_json(tmp_path, data))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_are_rejected(tmp_path: Path, literal: str) -> None:
    # Python's json module accepts these non-standard literals, so the model must reject them.
    text = json.dumps(GOOD).replace('"req_rate": 6', f'"req_rate": {literal}')
    path = write_text(tmp_path, text, "nan.json")
    with pytest.raises(KvoptError, match=r"model 'a': field 'req_rate': must be finite"):
        load_instance(path)


def test_json_infeasible_total(tmp_path: Path) -> None:
    data = {**GOOD, "gpu_mem_gb": [40, 40]}  # 85.5 GB of weights on 80 GB
    # Valid input: loading works, and the reason says by how much nothing fits.
    assert re.search(r"infeasible: .* by 5\.5 GB", infeasibility_reason(load_instance(write_json(tmp_path, data))))


def test_gpus_option_is_refused_for_json(tmp_path: Path) -> None:
    with pytest.raises(KvoptError, match=r"--gpus applies to CSV input only"):
        load_instance(write_json(tmp_path, GOOD), gpus=4)


# -- CSV models ------------------------------------------------------------------------------
def test_csv_with_gpus(tmp_path: Path) -> None:
    path = write_text(tmp_path, CSV_HEADER + "a,20,6,2\nb,30.5,0.1,0.3\n", "fleet.csv")
    inst = load_instance(path, gpus=3)
    assert inst.name == "fleet"
    assert inst.gpu_mem_gb == (80, 80, 80)
    assert [m.name for m in inst.models] == ["a", "b"]
    assert type(inst.models[0].size_gb) is int  # integer cells stay integers
    assert inst.demands_exact == (3, Fraction(1, 3))


def test_csv_mem_gb_and_explicit_capacities(tmp_path: Path) -> None:
    path = write_text(tmp_path, CSV_HEADER + "a,20,6,2\n", "m.csv")
    assert load_instance(path, gpus=2, mem_gb=40).gpu_mem_gb == (40, 40)
    assert load_models_csv(path, gpu_mem_gb=[24, 141]).gpu_mem_gb == (24, 141)


def test_csv_header_spaces_are_tolerated(tmp_path: Path) -> None:
    path = write_text(tmp_path, " name , size_gb , req_rate , slo \n a , 20 , 6 , 2 \n", "m.csv")
    inst = load_instance(path, gpus=1)
    assert (inst.models[0].name, inst.models[0].size_gb, inst.models[0].slo) == ("a", 20, 2)


def test_csv_without_gpus(tmp_path: Path) -> None:
    path = write_text(tmp_path, CSV_HEADER + "a,20,6,2\n", "m.csv")
    with pytest.raises(KvoptError, match=r"a CSV of models needs the cluster: give --gpus N"):
        load_instance(path)


@pytest.mark.parametrize("header, missing", [
    ("name,size_gb,req_rate\n", "slo"),
    ("name,req_rate\n", "size_gb, slo"),
    ("model,size_gb,req_rate,slo\n", "name"),
])
def test_csv_missing_column(tmp_path: Path, header: str, missing: str) -> None:
    path = write_text(tmp_path, header + "a,20,6\n", "m.csv")
    with pytest.raises(KvoptError, match=rf"CSV header is missing column\(s\) {missing}$"):
        load_instance(path, gpus=2)


def test_csv_empty_file_reports_all_columns(tmp_path: Path) -> None:
    path = write_text(tmp_path, "", "empty.csv")
    with pytest.raises(KvoptError, match=r"missing column\(s\) name, size_gb, req_rate, slo"):
        load_instance(path, gpus=2)


@pytest.mark.parametrize("row, message", [
    ("b,20,fast,2", r"model 'b' \(line 3\): field 'req_rate': expected a number, got 'fast'"),
    ("b,,6,2", r"model 'b' \(line 3\): field 'size_gb': expected a number, got ''"),
    ("b,20,6", r"model 'b' \(line 3\): field 'slo': expected a number, got ''"),
    ("b,nan,6,2", r"model 'b' \(line 3\): field 'size_gb': must be finite, got 'nan'"),
    ("b,20,inf,2", r"model 'b' \(line 3\): field 'req_rate': must be finite, got 'inf'"),
    ("b,20,6,0", r"model 'b': field 'slo' must be > 0"),
    ("b,20,-1,2", r"model 'b': field 'req_rate' must be >= 0"),
    ("a,20,6,2", r"model 'a': duplicate model name"),
])
def test_csv_bad_cell(tmp_path: Path, row: str, message: str) -> None:
    path = write_text(tmp_path, CSV_HEADER + "a,20,6,2\n" + row + "\n", "m.csv")
    with pytest.raises(KvoptError, match=message):
        load_instance(path, gpus=2)


def test_csv_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(KvoptError, match=r"gone\.csv: file not found"):
        load_instance(tmp_path / "gone.csv", gpus=2)


# -- placements ------------------------------------------------------------------------------
def test_result_json_is_reevaluated_from_the_placement() -> None:
    inst = instance_from_dict(GOOD)
    # a+b on GPU 0: S = 50.5, N = 3 + 1/3 = 10/3 -> (10/3) / 29.5 = 20/177; c on GPU 1: 2 / 5.
    claimed = Result("demo", "test", "feasible", Placement((0, 0, 1)), peak_kvpr=123.0, seconds=0.5)
    out = result_to_json(inst, claimed)
    assert parse_fraction(out["peak_kvpr_exact"]) == Fraction(2, 5)
    assert out["peak_kvpr"] == pytest.approx(0.4)
    assert out["gpu_kvpr"] == pytest.approx([20 / 177, 0.4])
    assert out["assignment"] == {"a": 0, "b": 0, "c": 1}
    assert (out["status"], out["seconds"]) == ("feasible", 0.5)


def test_result_json_writes_inf_for_a_full_loaded_gpu() -> None:
    inst = Instance.build([{"name": "a", "size_gb": 40, "req_rate": 1, "slo": 1}], [40, 80])
    out = result_to_json(inst, Result("x", "test", "feasible", Placement((0,)), None))
    assert out["peak_kvpr"] == "inf"
    assert out["peak_kvpr_exact"] == "inf"
    assert out["gpu_kvpr"] == ["inf", 0.0]
    json.dumps(out, allow_nan=False)  # the output is strict JSON


def test_result_json_without_placement() -> None:
    inst = instance_from_dict(GOOD)
    out = result_to_json(inst, Result("demo", "exact", "unknown", None, None))
    assert out["assignment"] is None and out["peak_kvpr"] is None


def test_load_placement(tmp_path: Path) -> None:
    inst = instance_from_dict(GOOD)
    path = write_json(tmp_path, {"assignment": {"a": 0, "b": 0, "c": 1}}, "p.json")
    assert load_placement(inst, path).gpu_of == (0, 0, 1)


@pytest.mark.parametrize("data, message", [
    ({"peak_kvpr": 1}, r"missing field 'assignment'"),
    ([0, 0, 1], r"missing field 'assignment'"),
    ({"assignment": {"a": 0, "b": 0, "c": 1, "zz": 0}}, r"model 'zz': unknown model"),
    ({"assignment": {"a": 0, "b": 0}}, r"model 'c': missing from the placement"),
    ({"assignment": {"a": 0, "b": 1, "c": 1}}, r"GPU 1: memory overflow"),
    ({"assignment": {"a": 0, "b": 0, "c": 2}}, r"model 'c': GPU index 2 out of range 0\.\.1"),
])
def test_bad_placement_file(tmp_path: Path, data: object, message: str) -> None:
    inst = instance_from_dict(GOOD)
    with pytest.raises(KvoptError, match=message):
        load_placement(inst, write_json(tmp_path, data, "p.json"))
