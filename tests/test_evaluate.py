"""KVPR evaluation and placement checks: hand examples, exact arithmetic, and every bad placement."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kvopt.evaluate import (
    check_assignment,
    check_gpu_lists,
    check_placement,
    evaluate,
    exact_gpu_kvpr,
    exact_peak_kvpr,
    format_fraction,
    gpu_loads,
    kvpr,
    kvpr_exact,
    kvpr_vector,
    parse_fraction,
    peak_kvpr,
)
from kvopt.model import Instance, Placement, PlacementError


def build(specs: list[tuple], caps: list) -> Instance:
    """Models from ``(name, size_gb, req_rate, slo)`` tuples."""
    return Instance.build(
        [{"name": n, "size_gb": s, "req_rate": r, "slo": t} for n, s, r, t in specs], caps, name="t",
    )


@pytest.fixture
def hand() -> Instance:
    # Demands: a = 6/2 = 3, b = 4/4 = 1, c = 10/5 = 2.
    return build([("a", 20, 6, 2), ("b", 30, 4, 4), ("c", 40, 10, 5)], [80, 80, 80])


# -- KVPR values ---------------------------------------------------------------------------
def test_hand_example(hand: Instance) -> None:
    # GPU 0: a+b, S = 50, N = 4 -> 4/30; GPU 1: c, S = 40, N = 2 -> 2/40; GPU 2 empty -> 0.
    ev = evaluate(hand, [0, 0, 1])
    assert ev.used_mem_gb == (50, 40, 0)
    assert ev.demand == (4, 2, 0)
    assert ev.gpu_kvpr == pytest.approx((4 / 30, 2 / 40, 0))
    assert ev.peak_gpu == 0
    assert ev.peak_kvpr == pytest.approx(2 / 15)
    assert ev.peak_kvpr_exact == Fraction(2, 15)
    assert ev.is_finite


def test_everything_on_one_gpu(hand: Instance) -> None:
    # S = 90 > 80 would overflow, so use a 100 GB GPU: N = 6, free = 10 -> 3/5.
    inst = hand.with_gpus([100, 80])
    ev = evaluate(inst, [0, 0, 0])
    assert ev.peak_kvpr_exact == Fraction(3, 5)
    assert ev.gpu_kvpr[1] == 0.0


def test_exact_values_per_gpu(hand: Instance) -> None:
    assert exact_gpu_kvpr(hand, [0, 1, 2]) == [Fraction(3, 60), Fraction(1, 50), Fraction(2, 40)]
    assert exact_peak_kvpr(hand, [0, 1, 2]) == Fraction(1, 20)


def test_gpu_loads(hand: Instance) -> None:
    used_mem, demand = gpu_loads(hand, [2, 2, 0])
    assert used_mem.tolist() == [40, 0, 50]
    assert demand.tolist() == [2, 0, 4]


def test_empty_gpu_has_zero_kvpr(hand: Instance) -> None:
    ev = evaluate(hand, [0, 1, 0])
    assert ev.gpu_kvpr[2] == 0.0
    assert ev.used_mem_gb[2] == 0.0


def test_full_gpu_with_load_is_infinite() -> None:
    inst = build([("a", 80, 1, 1), ("b", 10, 1, 1)], [80, 80])
    ev = evaluate(inst, [0, 1])
    assert ev.gpu_kvpr[0] == math.inf
    assert ev.peak_kvpr == math.inf and ev.peak_gpu == 0
    assert ev.peak_kvpr_exact == math.inf  # the one encoding of +inf, exact values included
    assert not ev.is_finite
    assert peak_kvpr(inst, [0, 1]) == math.inf


def test_full_gpu_without_load_is_zero() -> None:
    inst = build([("idle", 80, 0, 1), ("b", 10, 2, 1)], [80, 80])
    ev = evaluate(inst, [0, 1])
    assert ev.gpu_kvpr[0] == 0.0
    assert ev.peak_kvpr_exact == Fraction(2, 70)


@pytest.mark.parametrize("demand, free_mem, expected", [
    (0.0, 10.0, 0.0), (0.0, 0.0, 0.0), (3.0, 0.0, math.inf), (3.0, -1.0, math.inf), (3.0, 2.0, 1.5),
])
def test_scalar_and_vector_kvpr_agree(demand: float, free_mem: float, expected: float) -> None:
    assert kvpr(demand, free_mem) == expected
    assert kvpr_vector(np.array([demand]), np.array([free_mem]))[0] == expected
    exact = kvpr_exact(Fraction(demand), Fraction(free_mem))
    assert (math.inf if exact is None else float(exact)) == expected


# -- exact arithmetic on decimals ----------------------------------------------------------
def test_exact_peak_on_decimal_inputs() -> None:
    # Two models of 0.1 GB with rate 0.1 and SLO 0.3 (demand 1/3 each) on a 0.3 GB GPU:
    # free = 1/10 exactly, so KVPR = (2/3) / (1/10) = 20/3.  In floats 0.3 - 0.2 is 0.09999999999999998.
    inst = build([("a", 0.1, 0.1, 0.3), ("b", 0.1, 0.1, 0.3)], [0.3])
    ev = evaluate(inst, [0, 0])
    assert ev.peak_kvpr_exact == Fraction(20, 3)
    assert ev.peak_kvpr == pytest.approx(20 / 3, rel=1e-12)


def test_placement_filling_a_gpu_exactly_is_valid() -> None:
    # 0.1 + 0.2 = 0.30000000000000004 > 0.3 in floats, but it fits exactly.
    inst = build([("a", 0.1, 0, 1), ("b", 0.2, 0, 1), ("c", 5, 1, 1)], [0.3, 80])
    assert check_placement(inst, [0, 0, 1]) == (0, 0, 1)
    ev = evaluate(inst, [0, 0, 1])
    assert ev.gpu_kvpr[0] == 0.0  # no demand on the full GPU
    assert ev.peak_kvpr_exact == Fraction(1, 75)


def test_exactly_full_loaded_gpu_is_infinite_even_when_floats_leave_a_residue() -> None:
    # Ten 0.1 GB models on a 1 GB GPU: the float sum is 0.9999999999999999, the exact sum is 1,
    # so the GPU is full and its KVPR is +inf -- the float value must not be a huge finite number.
    inst = build([(f"m{i}", 0.1, 1, 1) for i in range(10)], [1, 1])
    ev = evaluate(inst, [0] * 10)
    assert ev.peak_kvpr_exact == math.inf
    assert ev.peak_kvpr == math.inf
    assert ev.gpu_kvpr[0] == math.inf


def test_one_decimal_too_much_is_an_overflow() -> None:
    inst = build([("a", 0.1, 0, 1), ("b", 0.2, 0, 1)], [0.3, 0.2])
    with pytest.raises(PlacementError, match=r"GPU 1: memory overflow"):
        check_placement(inst, [1, 1])


@pytest.mark.parametrize("value, text", [
    (Fraction(2, 15), "2/15"), (Fraction(3), "3/1"), (Fraction(0), "0/1"), (math.inf, "inf"),
])
def test_fraction_text_round_trip(value, text: str) -> None:
    assert format_fraction(value) == text
    assert parse_fraction(text) == value


# -- bad placements ------------------------------------------------------------------------
def test_wrong_length(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"placement has 2 entries for 3 models"):
        check_placement(hand, [0, 1])


@pytest.mark.parametrize("bad", [1.0, "1", True, None, 0.5])
def test_non_integer_gpu_index(hand: Instance, bad) -> None:
    with pytest.raises(PlacementError, match=rf"model 'b': GPU index must be an integer, got {bad!r}"):
        check_placement(hand, [0, bad, 1])


@pytest.mark.parametrize("bad", [-1, 3, 99])
def test_gpu_index_out_of_range(hand: Instance, bad: int) -> None:
    with pytest.raises(PlacementError, match=rf"model 'c': GPU index {bad} out of range 0\.\.2"):
        check_placement(hand, [0, 1, bad])


def test_numpy_indices_are_accepted(hand: Instance) -> None:
    assert check_placement(hand, np.array([2, 1, 0])) == (2, 1, 0)


def test_memory_overflow_names_gpu_models_and_sizes(hand: Instance) -> None:
    with pytest.raises(PlacementError,
                       match=r"GPU 1: memory overflow, models \['a', 'b', 'c'\] need 90 GB but the GPU has 80 GB"):
        check_placement(hand, [1, 1, 1])
    with pytest.raises(PlacementError, match="memory overflow"):
        evaluate(hand, Placement((1, 1, 1)))


def test_assignment_unknown_model(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"model 'ghost': unknown model \(not in instance 't'\)"):
        check_assignment(hand, {"a": 0, "b": 0, "c": 1, "ghost": 2})


def test_assignment_missing_models(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"model 'b': missing from the placement \(and 1 more\)$"):
        check_assignment(hand, {"a": 0})
    with pytest.raises(PlacementError, match=r"model 'c': missing from the placement$"):
        check_assignment(hand, {"a": 0, "b": 1})


def test_assignment_must_be_a_mapping(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"assignment must be an object .*got list"):
        check_assignment(hand, [0, 1, 2])  # type: ignore[arg-type]


def test_assignment_checks_indices(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"model 'a': GPU index must be an integer, got '0'"):
        check_assignment(hand, {"a": "0", "b": 0, "c": 1})


def test_gpu_lists_valid(hand: Instance) -> None:
    assert check_gpu_lists(hand, {0: ["c"], 2: ["a", "b"]}).gpu_of == (2, 2, 0)


def test_gpu_lists_model_placed_twice(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"model 'a': placed twice \(GPU 0 and GPU 2\)"):
        check_gpu_lists(hand, {0: ["a", "b"], 2: ["c", "a"]})


def test_gpu_lists_unknown_and_missing(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"model 'zz': unknown model"):
        check_gpu_lists(hand, {0: ["a", "b", "c", "zz"]})
    with pytest.raises(PlacementError, match=r"model 'c': missing from the placement"):
        check_gpu_lists(hand, {0: ["a"], 1: ["b"]})


def test_gpu_lists_index_out_of_range(hand: Instance) -> None:
    with pytest.raises(PlacementError, match=r"GPU index 5 out of range"):
        check_gpu_lists(hand, {0: ["a", "b"], 5: ["c"]})


# -- property: the float peak agrees with the exact one ------------------------------------
decimal_size = st.integers(1, 400).map(lambda tenths: tenths / 10)          # 0.1 .. 40.0 GB
decimal_rate = st.integers(0, 200).map(lambda tenths: tenths / 10)          # 0 .. 20 req/s
decimal_slo = st.integers(1, 100).map(lambda tenths: tenths / 10)           # 0.1 .. 10 s
slack_tenths = st.sampled_from([0, 0, 1, 3, 10, 55, 400])                   # free GB x 10 on each GPU


@st.composite
def placed_instances(draw) -> tuple[Instance, list[int]]:
    """A random instance with decimal data and a valid placement of it.

    Capacities are built as (exact sum of the sizes placed there) + a drawn slack,
    so GPUs that are filled exactly (slack 0) are common.
    """
    num_gpus = draw(st.integers(1, 4))
    num_models = draw(st.integers(1, 10))
    sizes = draw(st.lists(decimal_size, min_size=num_models, max_size=num_models))
    gpu_of = draw(st.lists(st.integers(0, num_gpus - 1), min_size=num_models, max_size=num_models))
    caps = []
    for g in range(num_gpus):
        used = sum((Fraction(str(s)) for s, gg in zip(sizes, gpu_of) if gg == g), Fraction(0))
        slack = Fraction(max(draw(slack_tenths), 0 if used else 1), 10)
        caps.append(float(used + slack))  # a value with at most one decimal: repr is exact
    models = [
        {"name": f"m{i}", "size_gb": s, "req_rate": draw(decimal_rate), "slo": draw(decimal_slo)}
        for i, s in enumerate(sizes)
    ]
    return Instance.build(models, caps, name="prop"), gpu_of


@settings(max_examples=300, deadline=None)
@given(placed_instances())
def test_peaks_match_an_independent_exact_computation(case: tuple[Instance, list[int]]) -> None:
    """evaluate's exact peak and the float-only hot-loop peak against Fractions of the decimal inputs."""
    inst, gpu_of = case
    used = [Fraction(0)] * inst.num_gpus
    load = [Fraction(0)] * inst.num_gpus
    for model, g in zip(inst.models, gpu_of):
        used[g] += Fraction(str(model.size_gb))
        load[g] += Fraction(str(model.req_rate)) / Fraction(str(model.slo))
    values = [Fraction(0) if n == 0 else (math.inf if u == Fraction(str(c)) else n / (Fraction(str(c)) - u))
              for u, n, c in zip(used, load, inst.gpu_mem_gb)]
    expected = max(values)
    ev = evaluate(inst, gpu_of)
    assert ev.peak_kvpr_exact == expected
    assert ev.peak_kvpr == float(expected)
    if expected < math.inf:
        assert peak_kvpr(inst, gpu_of) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(placed_instances(), st.data())
def test_shrinking_a_loaded_gpu_below_its_load_is_an_overflow(case: tuple[Instance, list[int]], data) -> None:
    inst, gpu_of = case
    g = data.draw(st.sampled_from(sorted(set(gpu_of))))
    used = sum(inst.sizes_exact[i] for i, gg in enumerate(gpu_of) if gg == g)
    caps = list(inst.gpu_mem_gb)
    caps[g] = float(used - Fraction(1, 10))
    assume(caps[g] > 0 and max(inst.sizes) <= max(caps) and sum(inst.sizes_exact) <= sum(map(Fraction, map(str, caps))))
    with pytest.raises(PlacementError, match=rf"GPU {g}: memory overflow"):
        check_placement(inst.with_gpus(caps), gpu_of)
