"""The problem model: every bad input is rejected with a message naming the model/field and the reason."""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction

import numpy as np
import pytest

from kvopt.evaluate import check_assignment
from kvopt.model import (
    Instance,
    KvoptError,
    Model,
    Result,
    relative_gap,
    infeasibility_reason,
    to_fraction,
)


def model(name: str = "a", size_gb=10, req_rate=2, slo=4) -> dict:
    return {"name": name, "size_gb": size_gb, "req_rate": req_rate, "slo": slo}


# -- bad model fields ------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["name", "size_gb", "req_rate", "slo"])
def test_missing_field_is_named(field: str) -> None:
    data = model("m1")
    del data[field]
    with pytest.raises(KvoptError, match=f"missing field '{field}'"):
        Instance.build([data], [80])


def test_missing_field_names_the_model() -> None:
    data = model("llama")
    del data["slo"]
    with pytest.raises(KvoptError, match=r"model 'llama': missing field 'slo'"):
        Instance.build([model("ok"), data], [80])


def test_missing_name_is_reported_by_position() -> None:
    data = model()
    del data["name"]
    with pytest.raises(KvoptError, match=r"models\[1\]: missing field 'name'"):
        Instance.build([model("ok"), data], [80])


@pytest.mark.parametrize("field", ["size_gb", "req_rate", "slo"])
@pytest.mark.parametrize("bad", ["12", None, True, [1], {"x": 1}])
def test_non_numeric_field(field: str, bad) -> None:
    data = model("m1")
    data[field] = bad
    expected = f"model 'm1': field '{field}': expected a number, got {bad!r}"
    with pytest.raises(KvoptError, match=re.escape(expected)):
        Instance.build([data], [80])


@pytest.mark.parametrize("field", ["size_gb", "req_rate", "slo"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_nan_and_inf_are_rejected(field: str, bad) -> None:
    data = model("m1")
    data[field] = bad
    with pytest.raises(KvoptError, match=rf"model 'm1': field '{field}': must be finite"):
        Instance.build([data], [80])


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.5])
def test_size_must_be_positive(bad) -> None:
    with pytest.raises(KvoptError, match=r"model 'm1': field 'size_gb' must be > 0"):
        Instance.build([model("m1", size_gb=bad)], [80])


def test_size_larger_than_every_gpu_is_infeasible() -> None:
    inst = Instance.build([model("small"), model("big", size_gb=90)], [80, 80, 40])  # valid input
    assert re.match(r"model 'big': field 'size_gb' = 90 GB is larger than every GPU \(largest is 80 GB\)",
                    infeasibility_reason(inst))


def test_size_larger_than_some_gpus_is_fine_when_one_is_big_enough() -> None:
    inst = Instance.build([model("big", size_gb=100)], [40, 141])
    assert inst.sizes.tolist() == [100.0]


def test_size_equal_to_the_largest_gpu_is_accepted() -> None:
    assert Instance.build([model("full", size_gb=80)], [80]).num_models == 1


@pytest.mark.parametrize("bad", [-1, -0.1])
def test_negative_rate_is_rejected(bad) -> None:
    with pytest.raises(KvoptError, match=r"model 'm1': field 'req_rate' must be >= 0"):
        Instance.build([model("m1", req_rate=bad)], [80])


def test_zero_rate_is_allowed_and_has_zero_demand() -> None:
    inst = Instance.build([model("idle", req_rate=0)], [80])
    assert inst.demands.tolist() == [0.0]


@pytest.mark.parametrize("bad", [0, -2, 0.0])
def test_slo_must_be_positive(bad) -> None:
    with pytest.raises(KvoptError, match=r"model 'm1': field 'slo' must be > 0"):
        Instance.build([model("m1", slo=bad)], [80])


@pytest.mark.parametrize("bad", ["", 7, None])
def test_name_must_be_a_non_empty_string(bad) -> None:
    with pytest.raises(KvoptError, match=r"field 'name' must be a non-empty string"):
        Instance.build([model(bad)], [80])


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(KvoptError, match=r"model 'twin': duplicate model name"):
        Instance.build([model("twin"), model("other"), model("twin")], [80, 80])


def test_model_entry_must_be_an_object() -> None:
    with pytest.raises(KvoptError, match=r"models\[1\]: expected an object"):
        Instance.build([model("a"), ("b", 1, 2, 3)], [80])


def test_model_objects_are_validated_too() -> None:
    with pytest.raises(KvoptError, match=r"model 'neg': field 'size_gb' must be > 0"):
        Instance.build([Model("neg", -3, 1, 1)], [80])


# -- bad clusters --------------------------------------------------------------------------
def test_no_gpus() -> None:
    with pytest.raises(KvoptError, match=r"field 'gpu_mem_gb': the cluster has no GPUs"):
        Instance.build([model()], [])


def test_no_gpu_list_and_no_count() -> None:
    with pytest.raises(KvoptError, match=r"field 'gpu_mem_gb': missing"):
        Instance.build([model()])


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_gpu_count_must_be_a_positive_integer(bad) -> None:
    with pytest.raises(KvoptError, match=r"field 'gpus': must be an integer >= 1"):
        Instance.build([model()], gpus=bad)


def test_gpu_count_means_80_gb_gpus() -> None:
    assert Instance.build([model()], gpus=3).gpu_mem_gb == (80, 80, 80)


@pytest.mark.parametrize("bad, message", [
    (0, r"field 'gpu_mem_gb'\[1\]: GPU memory must be > 0"),
    (-40, r"field 'gpu_mem_gb'\[1\]: GPU memory must be > 0"),
    ("80", r"field 'gpu_mem_gb'\[1\]: expected a number"),
    (math.nan, r"field 'gpu_mem_gb'\[1\]: must be finite"),
    (math.inf, r"field 'gpu_mem_gb'\[1\]: must be finite"),
])
def test_bad_capacity(bad, message: str) -> None:
    with pytest.raises(KvoptError, match=message):
        Instance.build([model()], [80, bad])


def test_no_models() -> None:
    with pytest.raises(KvoptError, match=r"field 'models': the instance has no models"):
        Instance.build([], [80])


def test_total_size_over_total_memory_says_by_how_much() -> None:
    models = [model(f"m{i}", size_gb=60) for i in range(3)]  # 180 GB on 2 x 80 GB
    assert infeasibility_reason(Instance.build(models, [80, 80])) == \
        "infeasible: total model size 180 GB exceeds total GPU memory 160 GB by 20 GB"


def test_total_size_excess_is_computed_exactly_on_decimals() -> None:
    # 3 x 26.7 = 80.1 exactly (the float sum is 80.10000000000001).
    models = [model(f"m{i}", size_gb=26.7) for i in range(3)]
    assert infeasibility_reason(Instance.build(models, [80])).endswith("exceeds total GPU memory 80 GB by 0.1 GB")


def test_total_size_equal_to_total_memory_is_feasible() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in floats but exactly 0.3.
    inst = Instance.build([model("a", size_gb=0.1), model("b", size_gb=0.2)], [0.3])
    assert sum(inst.sizes_exact) == sum(inst.capacities_exact) == Fraction(3, 10)
    assert infeasibility_reason(inst) is None


def test_kvopt_error_is_a_value_error() -> None:
    assert issubclass(KvoptError, ValueError)


def test_model_validates_on_direct_construction() -> None:
    """``Model(...)`` and ``Instance(...)`` check their fields like ``Instance.build`` (no ZeroDivisionError later)."""
    with pytest.raises(KvoptError, match=r"model 'a': field 'slo' must be > 0, got 0"):
        Model("a", 10, 1, 0)
    with pytest.raises(KvoptError, match=r"field 'size_gb': expected a number"):
        Instance("x", (Model("a", "10", 1, 1),), (80,))


# -- derived data and exact numbers --------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (3, Fraction(3)),
    (np.int64(7), Fraction(7)),
    (0.1, Fraction(1, 10)),
    (np.float64(0.2), Fraction(1, 5)),
    (26.7, Fraction(267, 10)),
    (Fraction(1, 3), Fraction(1, 3)),
])
def test_to_fraction_reads_the_decimal_written(value, expected: Fraction) -> None:
    assert to_fraction(value) == expected


def test_demand_is_rate_over_slo_exactly() -> None:
    m = Model.build("a", 10, 0.1, 0.3)
    assert m.demand_exact == Fraction(1, 3)
    assert m.demand == pytest.approx(1 / 3)
    assert m.size_exact == 10


def test_instance_arrays_follow_model_and_gpu_order() -> None:
    inst = Instance.build(
        [model("a", 10, 6, 2), model("b", 20.5, 1, 4), model("c", 5, 0, 1)], [80, 40], name="x",
    )
    assert inst.sizes.tolist() == [10, 20.5, 5]
    assert inst.demands.tolist() == [3, 0.25, 0]
    assert inst.capacities.tolist() == [80, 40]
    assert inst.sizes_exact == (10, Fraction(41, 2), 5)
    assert inst.demands_exact == (3, Fraction(1, 4), 0)
    assert inst.capacities_exact == (80, 40)
    assert inst.index_of == {"a": 0, "b": 1, "c": 2}
    assert (inst.num_gpus, inst.num_models, inst.is_homogeneous) == (2, 3, False)
    assert Instance.build([model()], [80, 80]).is_homogeneous


def test_numpy_scalars_become_plain_numbers() -> None:
    inst = Instance.build([model("a", np.int64(10), np.float64(1.5), np.int32(3))], [80])
    m = inst.models[0]
    assert type(m.size_gb) is int and type(m.req_rate) is float and type(m.slo) is int


def test_instance_is_immutable() -> None:
    inst = Instance.build([model()], [80])
    with pytest.raises(dataclasses.FrozenInstanceError):
        inst.name = "other"  # type: ignore[misc]


def test_with_gpus_revalidates() -> None:
    inst = Instance.build([model("a", size_gb=50)], [80])
    assert inst.with_gpus([60, 20]).gpu_mem_gb == (60, 20)
    assert "larger than every GPU" in infeasibility_reason(inst.with_gpus([40, 40]))
    with pytest.raises(KvoptError, match="GPU memory must be > 0"):
        inst.with_gpus([0, 80])


def test_placement_helpers() -> None:
    inst = Instance.build([model("a"), model("b"), model("c")], [80, 80])
    placement = check_assignment(inst, {"a": 1, "b": 0, "c": 1})
    assert placement.gpu_of == (1, 0, 1)
    assert placement.as_mapping(inst) == {"a": 1, "b": 0, "c": 1}
    assert placement.models_on(1) == [0, 2]
    assert placement.models_on(0) == [1]


def test_result_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        Result("x", "greedy", "solved", None, None)


@pytest.mark.parametrize("value, ref, expected", [
    (3.0, 2.0, 0.5),
    (2.0, 2.0, 0.0),
    (0.0, 0.0, 0.0),
    (1.0, 0.0, math.inf),
    (math.inf, 2.0, math.inf),
    (None, 1.0, None),
    (1.0, None, None),
])
def test_relative_gap(value, ref, expected) -> None:
    assert relative_gap(value, ref) == expected
