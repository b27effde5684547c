"""Instance suites: adrs50 reproduces the published benchmark; every family is
deterministic, packable, stored as generated, and has the shape it advertises."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from kvopt.evaluate import check_placement
from kvopt.io import instance_to_dict
from kvopt.model import Instance
from kvopt.suites import SUITES, load_suite
from kvopt.suites.adrs50 import generate_adrs50
from kvopt.suites.families import (
    LLM_SIZES_GB,
    build_case,
    case_seed,
    deal_bounded,
    recipe_for,
    split_integer,
)

INSTANCES = Path(__file__).resolve().parents[1] / "instances"
FAMILIES = ["tight", "dense", "llm", "hetero", "small", "large"]


@pytest.fixture(scope="module")
def generated() -> dict[str, list[Instance]]:
    return {name: SUITES[name].generate() for name in SUITES}


def first_fit_decreasing(instance: Instance) -> list[int] | None:
    """GPU per model from first-fit decreasing (largest models first, largest GPUs first), or None."""
    gpu_order = sorted(range(instance.num_gpus), key=lambda g: -instance.capacities_exact[g])
    free = list(instance.capacities_exact)
    gpu_of = [-1] * instance.num_models
    for i in sorted(range(instance.num_models), key=lambda i: -instance.sizes_exact[i]):
        size = instance.sizes_exact[i]
        first_fit = next((g for g in gpu_order if size <= free[g]), None)
        if first_fit is None:
            return None
        free[first_fit] -= size
        gpu_of[i] = first_fit
    return gpu_of


def utilisation(instance: Instance) -> Fraction:
    """Total weight over total memory, exactly."""
    return sum(instance.sizes_exact) / sum(instance.capacities_exact)


# -- adrs50 ------------------------------------------------------------------------------------
def test_adrs50_matches_the_stored_files_exactly() -> None:
    files = sorted((INSTANCES / "adrs50").glob("adrs50_*.json"))
    cases = generate_adrs50()
    assert [p.stem for p in files] == [f"adrs50_{c:02d}" for c in range(50)]
    for inst, path in zip(cases, files):
        assert instance_to_dict(inst) == json.loads(path.read_text()), path.name


def test_adrs50_case0_rederived_from_the_legacy_global_seed() -> None:
    saved = np.random.get_state()
    try:
        np.random.seed(42)
        gpu_num = int(np.random.randint(5, 10))
        first = (int(np.random.randint(10, 30)), int(np.random.randint(1, 10)), int(np.random.randint(5, 10)))
    finally:
        np.random.set_state(saved)
    assert (gpu_num, first) == (8, (24, 8, 9))
    case0 = generate_adrs50()[0]
    assert (case0.num_gpus, case0.num_models) == (8, 16)
    assert case0.gpu_mem_gb == (80,) * 8
    m = case0.models[0]
    assert (m.name, m.size_gb, m.req_rate, m.slo) == ("model_0", 24, 8, 9)


def test_adrs50_leaves_the_global_numpy_state_alone() -> None:
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    generate_adrs50()
    assert np.random.rand() == expected


# -- every suite -------------------------------------------------------------------------------
def test_all_families_are_registered() -> None:
    assert set(FAMILIES) | {"adrs50"} <= set(SUITES)
    assert [name for name in FAMILIES if not SUITES[name].small] == ["large"]


@pytest.mark.parametrize("name", FAMILIES)
def test_family_is_deterministic(name: str, generated: dict[str, list[Instance]]) -> None:
    again = SUITES[name].generate()
    assert [instance_to_dict(i) for i in again] == [instance_to_dict(i) for i in generated[name]]


@pytest.mark.parametrize("name", FAMILIES)
def test_cases_are_independent(name: str, generated: dict[str, list[Instance]]) -> None:
    # Building one case alone gives the same instance as building the whole suite.
    cases = generated[name]
    last = len(cases) - 1
    assert instance_to_dict(build_case(name, last, recipe_for(name, last))) == instance_to_dict(cases[last])
    assert len({json.dumps(instance_to_dict(i)["models"]) for i in cases}) == len(cases)


@pytest.mark.parametrize("name", FAMILIES)
def test_names_and_meta(name: str, generated: dict[str, list[Instance]]) -> None:
    for case, inst in enumerate(generated[name]):
        assert inst.name == f"{name}_{case:02d}"
        assert set(inst.meta) == {"generator", "seed", "family", "case"}
        assert (inst.meta["generator"], inst.meta["case"], inst.meta["seed"]) == (name, case, case_seed(name, case))
        json.dumps(dict(inst.meta))  # plain JSON types


@pytest.mark.parametrize("name", FAMILIES)
def test_family_is_memory_feasible(name: str, generated: dict[str, list[Instance]]) -> None:
    for inst in generated[name]:
        assert sum(inst.sizes_exact) <= sum(inst.capacities_exact), inst.name
        gpu_of = first_fit_decreasing(inst)
        assert gpu_of is not None, f"{inst.name}: first-fit decreasing found no packing"
        check_placement(inst, gpu_of)  # the library agrees the packing fits


@pytest.mark.parametrize("name", FAMILIES)
def test_numbers_are_short_decimals(name: str, generated: dict[str, list[Instance]]) -> None:
    for inst in generated[name]:
        for m in inst.models:
            assert isinstance(m.size_gb, int), (inst.name, m)
            assert (10 * Fraction(repr(m.req_rate))).denominator == 1 and m.req_rate > 0, (inst.name, m)
            assert (2 * Fraction(repr(m.slo))).denominator == 1, (inst.name, m)
        assert all(isinstance(c, int) for c in inst.gpu_mem_gb)


@pytest.mark.parametrize("name", FAMILIES + ["adrs50"])
def test_stored_files_equal_the_generator(name: str, generated: dict[str, list[Instance]]) -> None:
    files = sorted((INSTANCES / name).glob(f"{name}_*.json"))
    assert [p.stem for p in files] == [i.name for i in generated[name]]
    for inst, path in zip(generated[name], files):
        assert json.loads(path.read_text()) == instance_to_dict(inst), path.name


def test_load_suite_reads_the_files_back(generated: dict[str, list[Instance]]) -> None:
    loaded = load_suite("tight", INSTANCES)
    assert loaded == generated["tight"]
    assert [dict(i.meta) for i in loaded] == [dict(i.meta) for i in generated["tight"]]


def test_load_suite_regenerates_without_files(tmp_path: Path, generated: dict[str, list[Instance]]) -> None:
    assert load_suite("dense", tmp_path) == generated["dense"]


# -- advertised shapes -------------------------------------------------------------------------
def test_tight(generated: dict[str, list[Instance]]) -> None:
    cases = generated["tight"]
    assert len(cases) == 20
    for inst in cases:
        assert Fraction(3, 4) <= utilisation(inst) <= Fraction(9, 10), inst.name
        assert 4 <= inst.num_gpus <= 8 and inst.gpu_mem_gb == (80,) * inst.num_gpus
        assert 2 <= inst.num_models / inst.num_gpus <= 4, inst.name


def test_dense(generated: dict[str, list[Instance]]) -> None:
    cases = generated["dense"]
    assert len(cases) == 20
    for inst in cases:
        assert 4 <= inst.num_models / inst.num_gpus <= 8, inst.name
        assert 3 <= inst.num_gpus <= 5 and inst.num_models <= 24
        assert max(inst.sizes) <= 80 and np.median(inst.sizes) <= 16, inst.name
    # Heavy tails: across the suite the hottest model is far above the typical one.
    ratios = [inst.demands.max() / np.median(inst.demands) for inst in cases]
    assert np.median(ratios) >= 5


def test_llm(generated: dict[str, list[Instance]]) -> None:
    cases = generated["llm"]
    assert len(cases) == 20
    sizes_seen = set()
    for inst in cases:
        assert 4 <= inst.num_gpus <= 8 and inst.gpu_mem_gb == (80,) * inst.num_gpus
        assert {m.size_gb for m in inst.models} <= set(LLM_SIZES_GB), inst.name
        sizes_seen |= {m.size_gb for m in inst.models}
    assert sizes_seen == set(LLM_SIZES_GB)


def test_hetero(generated: dict[str, list[Instance]]) -> None:
    cases = generated["hetero"]
    assert len(cases) == 20
    for inst in cases:
        assert len(set(inst.gpu_mem_gb)) >= 2, inst.name
        assert 4 <= inst.num_gpus <= 8
    assert {c for inst in cases for c in inst.gpu_mem_gb} == {24, 40, 48, 80, 141}


def test_small(generated: dict[str, list[Instance]]) -> None:
    cases = generated["small"]
    assert len(cases) == 20
    for inst in cases:
        assert 2 <= inst.num_gpus <= 4 and inst.num_models <= 12, inst.name
    assert {inst.meta["family"] for inst in cases} == {"tight", "dense", "llm", "hetero"}


def test_large(generated: dict[str, list[Instance]]) -> None:
    cases = generated["large"]
    assert sorted(inst.num_gpus for inst in cases) == [64, 64, 256, 256, 1024, 1024]
    for inst in cases:
        assert 3.5 <= inst.num_models / inst.num_gpus <= 5, inst.name
        assert Fraction(6, 10) <= utilisation(inst) <= Fraction(8, 10), inst.name
    assert sum(not inst.is_homogeneous for inst in cases) == 3


# -- building blocks ---------------------------------------------------------------------------
@pytest.mark.parametrize("total, parts, min_part", [(80, 4, 4), (12, 3, 4), (7, 1, 2), (100, 10, 0)])
def test_split_integer(total: int, parts: int, min_part: int) -> None:
    for seed in range(20):
        out = split_integer(np.random.default_rng(seed), total, parts, min_part, concentration=0.5)
        assert len(out) == parts and sum(out) == total and min(out) >= min_part


def test_split_integer_refuses_an_impossible_split() -> None:
    with pytest.raises(ValueError, match="cannot split 5 into 3 parts of at least 2"):
        split_integer(np.random.default_rng(0), 5, 3, 2, concentration=1.0)


def test_deal_bounded_respects_bounds_and_total() -> None:
    lower, upper = [8, 12, 4, 16], [80, 80, 20, 80]
    for seed in range(50):
        for total in (sum(lower), 150, sum(upper)):
            out = deal_bounded(np.random.default_rng(seed), total, lower, upper, concentration=0.3)
            assert sum(out) == total
            assert all(lo <= x <= hi for lo, x, hi in zip(lower, out, upper))
    with pytest.raises(ValueError, match="outside"):
        deal_bounded(np.random.default_rng(0), sum(upper) + 1, lower, upper, concentration=1.0)
