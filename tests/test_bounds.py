"""Lower bounds (kvopt.bounds): hand-derived values, and every bound <= the brute-force optimum."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kvopt.bounds import (
    finite_peak_ceiling,
    infeasibility_argument,
    is_infinite_bound,
    lp_relaxation_feasible,
    mediant_bound,
    pair_bound,
    relaxation_bound,
    root_lower_bound,
    simple_fraction_between,
    simple_lower_bound,
    single_model_bound,
    triplet_bound,
)
from kvopt.model import Instance, Model, infeasibility_reason

BOUNDS = {
    "mediant": mediant_bound,
    "single": single_model_bound,
    "simple": simple_lower_bound,
    "pair": pair_bound,
    "triplet": triplet_bound,
    "relaxation": relaxation_bound,
    "root": root_lower_bound,
}


def make(models: list[tuple[float, float]], caps: list[float]) -> Instance:
    """Models given as (size_gb, demand) with slo 1."""
    return Instance.build([Model(f"m{i}", s, d, 1) for i, (s, d) in enumerate(models)], caps)


# -- an independent brute force (plain Fractions, no kvopt code) -------------------------
def brute_optimum(inst: Instance) -> tuple[bool, Fraction | float | None]:
    """(some placement fits memory, optimal peak: math.inf when every placement's is infinite; None if none fits)."""
    sizes = [Fraction(repr(float(m.size_gb))) for m in inst.models]
    demands = [Fraction(repr(float(m.req_rate))) / Fraction(repr(float(m.slo))) for m in inst.models]
    caps = [Fraction(repr(float(c))) for c in inst.gpu_mem_gb]
    fits, best = False, None
    for gpu_of in itertools.product(range(len(caps)), repeat=len(sizes)):
        used = [sum((sizes[i] for i in range(len(sizes)) if gpu_of[i] == g), Fraction(0)) for g in range(len(caps))]
        need = [sum((demands[i] for i in range(len(sizes)) if gpu_of[i] == g), Fraction(0)) for g in range(len(caps))]
        if any(u > c for u, c in zip(used, caps)):
            continue
        fits = True
        values = []
        for u, n, c in zip(used, need, caps):
            values.append(Fraction(0) if n == 0 else (None if u == c else n / (c - u)))
        if None in values:
            continue
        peak = max(values)
        if best is None or peak < best:
            best = peak
    return fits, (best if best is not None else (math.inf if fits else None))


@st.composite
def tiny_instances(draw: st.DrawFn) -> Instance:
    num_gpus = draw(st.integers(1, 3))
    if draw(st.booleans()):
        caps = [draw(st.sampled_from([10, 16, 24]))] * num_gpus
    else:
        caps = [draw(st.sampled_from([8, 10, 16, 24])) for _ in range(num_gpus)]
    num_models = draw(st.integers(1, 6))
    models = [(draw(st.sampled_from([1, 2, 2.5, 3, 4, 6, 8, 10])), draw(st.sampled_from([0, 0.5, 1, 2, 3, 7])))
              for _ in range(num_models)]
    inst = make(models, caps)
    assume(infeasibility_reason(inst) is None)
    return inst


# -- hand-derived values ----------------------------------------------------------------
def test_closed_forms_on_a_hand_example() -> None:
    inst = make([(2, 3), (4, 1)], [10, 10])
    assert mediant_bound(inst) == Fraction(4, 14)  # (3 + 1) / (20 - 6)
    assert single_model_bound(inst) == Fraction(3, 8)  # max(3/(10-2), 1/(10-4))
    assert simple_lower_bound(inst) == Fraction(3, 8)


def test_pair_bound_three_models_on_two_gpus() -> None:
    # Two of the three 4 GB models share a 10 GB GPU: 2 / (10 - 8) = 1, which is also the optimum.
    inst = make([(4, 1)] * 3, [10, 10])
    assert simple_lower_bound(inst) == Fraction(3, 8)
    assert pair_bound(inst) == 1
    assert root_lower_bound(inst) == 1
    assert brute_optimum(inst) == (True, Fraction(1))


def test_triplet_bound_five_models_on_two_gpus() -> None:
    # Three of the five 3 GB models share a 10 GB GPU: 3 / (10 - 9) = 3 (the optimum, split 3 + 2).
    inst = make([(3, 1)] * 5, [10, 10])
    assert pair_bound(inst) < 3
    assert triplet_bound(inst) == 3
    assert root_lower_bound(inst) == 3
    assert brute_optimum(inst) == (True, Fraction(3))


def test_relaxation_bound_heterogeneous() -> None:
    # A (12 GB) only fits the 20 GB GPU; below T = 1 B (4 GB) does not fit the 5 GB GPU either,
    # so both sit on 20 GB: (1 + 1) <= T (20 - 16) needs T >= 1/2, the optimum.
    inst = make([(12, 1), (4, 1)], [20, 5])
    assert simple_lower_bound(inst) == Fraction(2, 9)
    assert relaxation_bound(inst) == Fraction(1, 2)
    assert not lp_relaxation_feasible(inst, Fraction(49, 100))
    assert lp_relaxation_feasible(inst, Fraction(1, 2))
    assert brute_optimum(inst) == (True, Fraction(1, 2))


def test_infinite_optimum_is_reported_by_the_bounds() -> None:
    # The 80 GB model with demand fills the only GPU it fits: every placement has infinite peak.
    inst = make([(80, 1), (10, 1)], [80, 40])
    assert brute_optimum(inst) == (True, math.inf)
    assert is_infinite_bound(single_model_bound(inst))
    assert is_infinite_bound(root_lower_bound(inst))
    assert not is_infinite_bound(finite_peak_ceiling(inst))


def test_zero_demand_gives_zero() -> None:
    inst = make([(3, 0), (5, 0)], [10])
    assert all(bound(inst) == 0 for bound in BOUNDS.values())


def test_simple_fraction_between_is_strictly_inside() -> None:
    for lo, hi in [(Fraction(1, 3), Fraction(1, 2)), (Fraction(0), Fraction(1, 10**9)),
                   (Fraction(123456, 1000001), Fraction(123457, 1000001))]:
        mid = simple_fraction_between(lo, hi)
        assert mid is not None and lo < mid < hi
    assert simple_fraction_between(Fraction(1, 3), Fraction(2, 5)).denominator <= 40
    assert simple_fraction_between(Fraction(1), Fraction(1)) is None


# -- properties against brute force ---------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_instances())
def test_every_bound_is_at_most_the_optimum(inst: Instance) -> None:
    fits, optimum = brute_optimum(inst)
    assume(fits)
    values = {name: bound(inst) for name, bound in BOUNDS.items()}
    assert all(isinstance(v, Fraction) or v == math.inf for v in values.values())
    assert values["root"] >= values["simple"] == max(values["mediant"], values["single"])
    for name, value in values.items():
        assert value <= optimum, (name, value, optimum)  # against +inf every bound is valid
    if optimum < math.inf:
        assert not is_infinite_bound(values["root"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_instances(), st.fractions(min_value=Fraction(1, 50), max_value=4, max_denominator=50))
def test_infeasibility_arguments_are_sound(inst: Instance, target: Fraction) -> None:
    fits, optimum = brute_optimum(inst)
    assume(fits and optimum < math.inf)
    if infeasibility_argument(inst, target, strict=False) is not None:
        assert optimum > target
    if infeasibility_argument(inst, target, strict=True) is not None:
        assert optimum >= target
    # At the optimum itself a placement exists, so nothing may claim infeasibility (<= optimum).
    assert infeasibility_argument(inst, optimum, strict=False) is None
    assert lp_relaxation_feasible(inst, optimum)
