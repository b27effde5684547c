"""Exact large-neighbourhood search (LNS) for the peak-KVPR placement problem.

Start from a placement (the pipeline heuristic by default) and repeat:

1. pick a small set ``H`` of GPUs: a GPU at the global peak (up to
   ``max_peak_gpus`` of them when several tie) plus others chosen by a rule
   that rotates with the iteration number (``RULES``): ``least_loaded``
   (lowest KVPR), ``random`` (a seeded ``numpy`` Generator),
   ``most_free_memory`` (largest ``C_g - S_g``).  ``H`` has
   ``neighbourhood_gpus`` GPUs, one more after every ``grow_after`` rejected
   moves in a row, up to ``max_neighbourhood_gpus`` (lowered for the rest of
   the run to ``k - 1`` when a sub-solve of ``k`` GPUs runs out of time);
2. cut out the sub-instance: the models placed on ``H`` and the capacities of ``H``;
3. solve it exactly (``kvopt.exact.solve_exact``), warm-started from the current
   sub-placement, with a small time limit; every other GPU stays as it is;
4. accept the sub-placement when the KVPR values of ``H``, sorted in decreasing
   order, get lexicographically smaller (exact rational arithmetic).

Why the acceptance rule is right.  Models only move between GPUs of ``H``, so
every GPU outside ``H`` keeps its KVPR.  If the sorted KVPR vector of ``H``
decreases lexicographically, its largest entry does not increase, hence the
global peak never increases; and the sorted KVPR vector of *all* GPUs (the
"leximax" order) strictly decreases, so the search never cycles.  When ``H``
holds every GPU at the global peak, "minimise the largest KVPR on ``H``" (what
the exact sub-solve does) is exactly "minimise the global peak with the rest
fixed"; when several GPUs tie at the peak, a sub-solve that takes the chosen
ones below the peak is a sideways move that shrinks the set of peak GPUs
(accepted: the leximax order decreased).

Why the defaults (``neighbourhood_gpus=2``, ``max_neighbourhood_gpus=8``,
``grow_after=30``, ``max_peak_gpus=1``): measured in ``reports/scale.md`` and
below.  Pairs (the peak GPU and one receiver) solve in a few milliseconds, so
several times more moves fit in the budget than with 4-GPU neighbourhoods; on a
random 1024-GPU x 4096-model instance and 60 s, starting from pairs left a gap
to the root bound of 0.08-0.12 % against 0.20 % when starting from 4 GPUs (and
0.13-0.16 % from 3).  Growing up to 8 GPUs only when stuck costs little on large
instances and lets small ones (up to 8 GPUs) end with one exact solve of the
whole instance, i.e. a proven optimum (tight/llm suite cases: about 1 s).
Putting several tied peak GPUs into one neighbourhood hurts: the exact
sub-objective (the largest KVPR in ``H``) only improves if *all* of them drop,
whereas one tied GPU at a time can always be taken below the peak by a
sideways move.

Determinism.  Every decision is driven by the iteration counter and the seeded
generator, never by the clock.  With ``max_iterations`` and no binding time
limit, and every sub-solve finishing within ``sub_time_limit_s``, the result is
a function of ``(instance, seed, parameters)``.  The wall-clock limits only stop
work: a run that ends on ``time_limit_s`` (or whose sub-solves hit
``sub_time_limit_s``) can depend on machine speed; ``details`` records both.

The lower bound reported is the best certified bound kvopt has: the root bound
(``kvopt.bounds.root_lower_bound``) and, if ``colgen_time_s > 0`` and a gap is
left, the column-generation bound (``kvopt.exact.colgen.colgen_lower_bound``).
Colgen is off by default: on 64-GPU instances it needed 40-70 s and raised the
bound by at most 1e-4 relative, and it grows quickly with the cluster.  The status
is ``optimal`` only when the peak equals a proven bound exactly (or when one
neighbourhood covered every GPU and its exact solve was proven optimal).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Sequence

import numpy as np

from kvopt.bounds import root_lower_bound
from kvopt.evaluate import check_placement, evaluate, exact_gpu_kvpr, kvpr_exact, objective_peak_exact
from kvopt.heuristics.state import LoadState
from kvopt.exact import solve_exact
from kvopt.exact.colgen import colgen_lower_bound
from kvopt.exact.packing import finite_peak_packing, memory_packing
from kvopt.heuristics.start import start_placement
from kvopt.model import ExactValue, Instance, KvoptError, Placement, Result, relative_gap

RULES = ("least_loaded", "random", "most_free_memory")


# Largest neighbourhood a stalled search grows to (unless told otherwise).
DEFAULT_MAX_NEIGHBOURHOOD_GPUS = 8

# Relative precision asked of the column-generation bound search.
COLGEN_REL_TOL = 1e-5

# Below this many seconds left there is no point starting another sub-solve.
MIN_SUB_SOLVE_S = 0.05


# -- exact per-GPU values ---------------------------------------------------------
def leximax_key(values: Sequence[ExactValue]) -> tuple[ExactValue, ...]:
    """The values sorted in decreasing order: the leximax order compares these tuples."""
    return tuple(sorted(values, reverse=True))


def accept_move(old_kvpr: Sequence[ExactValue], new_kvpr: Sequence[ExactValue]) -> bool:
    """Whether a neighbourhood's new KVPR values improve on the old ones.

    True iff ``sorted_desc(new) < sorted_desc(old)`` lexicographically (exact).
    Implies ``max(new) <= max(old)``, so the global peak cannot rise, and the
    global leximax vector strictly decreases, so the search cannot cycle.
    """
    if len(old_kvpr) != len(new_kvpr):
        raise KvoptError(f"accept_move: {len(old_kvpr)} old values but {len(new_kvpr)} new ones")
    return leximax_key(new_kvpr) < leximax_key(old_kvpr)


# -- the current placement and its per-GPU loads ---------------------------------------
def load_state(instance: Instance, gpu_of: Sequence[int]) -> LoadState:
    """The heuristics' per-GPU load state of a (checked) placement, with exact sums ``S_g``, ``N_g`` kept too.

    Floats drive the (cheap) selection of neighbourhoods; the exact ``Fraction``
    sums decide peaks and acceptance.
    """
    return LoadState(instance, gpu_of, exact=True)


def exact_kvpr_of(instance: Instance, state: LoadState, gpu: int) -> ExactValue:
    """Exact ``KVPR_g = N_g / (C_g - S_g)`` of one GPU in the current state."""
    free_mem = instance.capacities_exact[gpu] - state.used_exact[gpu]
    return kvpr_exact(state.demand_exact[gpu], free_mem)


def peak_gpu_set(instance: Instance, state: LoadState) -> tuple[tuple[int, ...], ExactValue]:
    """Every GPU whose exact KVPR equals the exact peak (increasing index), and the peak.

    Floats screen the candidates (within a relative 1e-9 of the float peak, which
    is far wider than float rounding); exact arithmetic decides the ties.
    """
    gpu_kvpr = np.asarray(state.gpu_kvpr)
    float_peak = float(gpu_kvpr.max())
    if math.isinf(float_peak):
        candidates = np.nonzero(np.isinf(gpu_kvpr))[0]
    else:
        candidates = np.nonzero(gpu_kvpr >= float_peak * (1.0 - 1e-9))[0]
    exact = {int(g): exact_kvpr_of(instance, state, int(g)) for g in candidates}
    peak = max(exact.values())
    return tuple(g for g in sorted(exact) if exact[g] == peak), peak


# -- neighbourhoods ---------------------------------------------------------------
def select_neighbourhood(
    rule: str,
    *,
    peak_gpus: Sequence[int],
    gpu_kvpr: np.ndarray,
    free_mem: np.ndarray,
    neighbourhood_gpus: int,
    attempt: int,
    rng: np.random.Generator,
    max_peak_gpus: int = 1,
) -> tuple[int, ...]:
    """The ``neighbourhood_gpus`` GPUs of one neighbourhood (all GPUs if fewer), in increasing index order.

    The head is the first ``max_peak_gpus`` peak GPUs (at least one; default
    one, see the module docstring); the rest of the neighbourhood is filled by
    the rule:

    - ``least_loaded``: lowest KVPR first (ties: lower index);
    - ``most_free_memory``: largest ``C_g - S_g`` first (ties: lower index);
    - ``random``: uniformly at random from ``rng`` (the only rule that draws).

    For the two ranked rules, ``attempt`` (failures of this rule since the last
    accepted move) slides a window down the ranking, so a rule that failed does
    not propose the same GPUs again on an unchanged placement.
    """
    if neighbourhood_gpus < 1:
        raise KvoptError(f"field 'neighbourhood_gpus': must be >= 1, got {neighbourhood_gpus}")
    num_gpus = len(gpu_kvpr)
    head = [int(g) for g in peak_gpus[:max(1, max_peak_gpus)]]
    in_head = np.zeros(num_gpus, dtype=bool)
    in_head[head] = True
    others = np.nonzero(~in_head)[0]
    fill_count = min(neighbourhood_gpus - len(head), len(others))
    if fill_count <= 0:
        return tuple(sorted(head))
    if rule == "random":
        fill = rng.choice(others, size=fill_count, replace=False)
    elif rule in ("least_loaded", "most_free_memory"):
        score = gpu_kvpr[others] if rule == "least_loaded" else -free_mem[others]
        ranked = others[np.argsort(score, kind="stable")]
        start = (attempt * fill_count) % len(ranked)
        fill = np.roll(ranked, -start)[:fill_count]
    else:
        raise KvoptError(f"neighbourhood rule {rule!r}: unknown; known rules: {', '.join(RULES)}")
    return tuple(sorted(head + [int(g) for g in fill]))


def neighbourhood_size(base_gpus: int, failures: int, *, grow_after: int, max_gpus: int) -> int:
    """Neighbourhood size after ``failures`` rejected moves in a row: one GPU more per ``grow_after``.

    ``min(max_gpus, base_gpus + failures // grow_after)``: a search that stalls
    looks at larger neighbourhoods; any accepted move resets ``failures`` to 0.
    """
    return max(base_gpus, min(max_gpus, base_gpus + failures // max(1, grow_after)))


def capped_size(size_cap: int, size: int, sub_status: str, *, floor: int) -> int:
    """The growth cap after a sub-solve of ``size`` GPUs ended with ``sub_status``.

    A sub-solve that ran out of time (not ``optimal``) shows that neighbourhoods
    of that size are too big for the time limit here: grow to ``size - 1`` at
    most from now on (never below ``floor``).  Only timeouts change the cap, so
    a run whose sub-solves all finish stays deterministic.
    """
    if sub_status == "optimal" or size > size_cap:
        return size_cap
    return max(floor, min(size_cap, size - 1))


@dataclass(frozen=True)
class SubProblem:
    """A neighbourhood cut out of the instance.

    Sub-GPU ``j`` is global GPU ``gpus[j]``; sub-model ``k`` is global model
    ``models[k]``; ``start`` is the current placement of those models in sub-GPU
    indices.
    """

    gpus: tuple[int, ...]
    models: tuple[int, ...]
    instance: Instance
    start: Placement


def extract_subproblem(instance: Instance, gpu_of: Sequence[int], gpus: Sequence[int]) -> SubProblem:
    """The models on ``gpus`` and those GPUs' capacities, as an instance of its own.

    Every KVPR of the sub-placement equals the KVPR of the same GPU globally,
    because a GPU's load only depends on the models on it.
    """
    gpus_t = tuple(int(g) for g in gpus)
    if len(set(gpus_t)) != len(gpus_t):
        raise KvoptError(f"neighbourhood {gpus_t}: a GPU is listed twice")
    local_of = {g: j for j, g in enumerate(gpus_t)}
    models = tuple(i for i, g in enumerate(gpu_of) if g in local_of)
    if not models:
        raise KvoptError(f"neighbourhood {gpus_t}: no model is placed on these GPUs")
    sub_instance = Instance.build(
        [instance.models[i] for i in models],
        [instance.gpu_mem_gb[g] for g in gpus_t],
        name=f"{instance.name}[lns]",
        meta={"parent": instance.name, "gpus": list(gpus_t)},
    )
    start = Placement(tuple(local_of[gpu_of[i]] for i in models))
    return SubProblem(gpus_t, models, sub_instance, start)


def merge_back(gpu_of: Sequence[int], sub: SubProblem, sub_gpu_of: Sequence[int]) -> tuple[int, ...]:
    """The global placement with the sub-models moved to ``sub_gpu_of`` (sub-GPU indices)."""
    if len(sub_gpu_of) != len(sub.models):
        raise KvoptError(f"merge_back: {len(sub_gpu_of)} GPU indices for {len(sub.models)} sub-models")
    merged = list(gpu_of)
    for model, local in zip(sub.models, sub_gpu_of):
        if not 0 <= local < len(sub.gpus):
            raise KvoptError(f"merge_back: sub-GPU index {local} out of range 0..{len(sub.gpus) - 1}")
        merged[model] = sub.gpus[local]
    return tuple(merged)


def apply_move(state: LoadState, sub: SubProblem, sub_gpu_of: Sequence[int]) -> None:
    """Move the sub-models to ``sub_gpu_of``; only the neighbourhood's GPUs are recomputed."""
    for model, local in zip(sub.models, sub_gpu_of):
        if state.gpu_of[model] != sub.gpus[local]:
            state.move(model, sub.gpus[local])


# -- one neighbourhood solve ------------------------------------------------------------
@dataclass(frozen=True)
class SubOutcome:
    """What one exact sub-solve gave: the new sub-placement (if any) and the KVPR values before/after."""

    sub_gpu_of: tuple[int, ...] | None
    old_kvpr: tuple[ExactValue, ...]
    new_kvpr: tuple[ExactValue, ...] | None
    status: str
    lower_bound_exact: Fraction | None


def solve_subproblem(sub: SubProblem, *, backend: str, time_limit_s: float, seed: int) -> SubOutcome:
    """Solve a neighbourhood exactly, warm-started from its current placement.

    The solver's numbers are not trusted: the returned placement is checked and
    re-evaluated with ``kvopt.evaluate``.
    """
    old_kvpr = tuple(exact_gpu_kvpr(sub.instance, sub.start.gpu_of))
    result = solve_exact(sub.instance, backend=backend, time_limit_s=time_limit_s,
                         warm_start=sub.start, seed=seed, workers=1)
    if result.placement is None:
        return SubOutcome(None, old_kvpr, None, result.status, result.lower_bound_exact)
    sub_gpu_of = check_placement(sub.instance, result.placement)
    new_kvpr = tuple(exact_gpu_kvpr(sub.instance, sub_gpu_of))
    return SubOutcome(sub_gpu_of, old_kvpr, new_kvpr, result.status, result.lower_bound_exact)


# -- bounds and start -------------------------------------------------------------
def certified_lower_bound(instance: Instance, *, colgen_time_s: float = 0.0,
                          known: Fraction | None = None,
                          target: Fraction | None = None) -> tuple[Fraction, str]:
    """The best certified lower bound on the optimal peak, and which bound it is.

    The root bound always; the column-generation bound too when
    ``colgen_time_s > 0`` and the root bound does
    not already reach ``target`` (the peak we hold: no better bound can help).
    """
    bound = known if known is not None else root_lower_bound(instance)
    source = "root"
    if colgen_time_s <= 0 or (target is not None and bound >= target):
        return bound, source
    # The LNS gaps are often below colgen's default tolerance (1e-3): ask for a finer one.
    found = colgen_lower_bound(instance, upper=target, time_limit_s=colgen_time_s, rel_tol=COLGEN_REL_TOL)
    # A ColgenBound carries ``.bound`` (the mediant or a verified certificate: both valid bounds).
    colgen_bound = getattr(found, "bound", found)
    if isinstance(colgen_bound, Fraction) and colgen_bound > bound:
        return colgen_bound, "colgen"
    return bound, source


# -- progress -----------------------------------------------------------------------
@dataclass(frozen=True)
class LnsProgress:
    """One iteration, as shown to a progress callback."""

    iteration: int
    seconds: float
    peak_kvpr: float
    accepted: bool
    rule: str
    neighbourhood: tuple[int, ...]


class _Reporter:
    """Sends ``LnsProgress`` to a callback, or draws a tqdm bar (only on a terminal)."""

    def __init__(self, progress: Any, total: int | None) -> None:
        self.callback: Callable[[LnsProgress], None] | None = None
        self.bar = None
        if callable(progress):
            self.callback = progress
        elif progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="lns", unit="it", disable=not sys.stderr.isatty())

    def report(self, event: LnsProgress) -> None:
        if self.callback is not None:
            self.callback(event)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(peak=f"{event.peak_kvpr:.6g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- the search ---------------------------------------------------------------------
@dataclass
class _SearchLog:
    """Counters for ``Result.details``."""

    iterations: int = 0
    accepted: int = 0
    sub_solves_not_optimal: int = 0
    accepted_by_rule: dict[str, int] = field(default_factory=lambda: {r: 0 for r in RULES})
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (iteration, seconds, peak)
    stop_reason: str = "max_iterations"
    proven_bound: ExactValue | None = None
    adopted: int = 0  # placements taken from ``incumbents``


def solve_lns(
    instance: Instance,
    *,
    time_limit_s: float = 60.0,
    seed: int = 0,
    neighbourhood_gpus: int = 2,
    sub_time_limit_s: float = 2.0,
    start: Placement | None = None,
    progress: Any = None,
    max_iterations: int | None = None,
    backend: str = "setpart",  # what reports/scale.md measured on 2-8 GPU sub-problems
    colgen_time_s: float = 0.0,
    max_neighbourhood_gpus: int | None = None,
    grow_after: int = 30,
    max_peak_gpus: int = 1,
    stop_when: Callable[[], bool] | None = None,
    on_improve: Callable[[tuple[int, ...]], None] | None = None,
    incumbents: Callable[[], Sequence[int] | None] | None = None,
) -> Result:
    """Improve a placement by exact re-optimisation of small GPU neighbourhoods (see the module docstring).

    ``time_limit_s`` bounds the whole run (start heuristic and bounds included);
    ``max_iterations`` bounds the number of neighbourhood solves (use it for
    results that do not depend on machine speed).  ``progress``: a callable
    receiving ``LnsProgress`` per iteration, or truthy for a tqdm bar on a
    terminal.  ``colgen_time_s`` > 0 also tries the column-generation bound
    (when ``kvopt.exact.colgen`` exists) after the search, on top of the time
    limit.  ``max_neighbourhood_gpus`` defaults to ``max(8, neighbourhood_gpus)``.
    ``stop_when``: asked before every neighbourhood; ``True`` ends the run (the anytime
    exact method stops LNS once its proof process has answered).  ``on_improve``: called with the
    placement (GPU per model) each time the global peak drops (the anytime exact method hands it to
    its proof process).  ``incumbents``: asked before every neighbourhood for a placement found
    elsewhere (the proof process's); a valid one with a smaller exact peak replaces the current one
    (``details["adopted"]`` counts them).

    ``details``: ``iterations``, ``accepted`` (moves), ``accepted_by_rule``,
    ``sub_solves_not_optimal`` (sub-solves stopped by ``sub_time_limit_s``: if
    not 0, the run may depend on machine speed), ``stop_reason``,
    ``lower_bound_source``, ``start_peak`` and ``history`` (``(iteration,
    seconds, peak)`` each time the global peak dropped).
    """
    if max_neighbourhood_gpus is None:
        max_neighbourhood_gpus = max(DEFAULT_MAX_NEIGHBOURHOOD_GPUS, neighbourhood_gpus)
    _check_parameters(time_limit_s=time_limit_s, sub_time_limit_s=sub_time_limit_s,
                      neighbourhood_gpus=neighbourhood_gpus, max_neighbourhood_gpus=max_neighbourhood_gpus,
                      grow_after=grow_after, max_peak_gpus=max_peak_gpus, max_iterations=max_iterations)
    clock = time.perf_counter()
    gpu_of, start_source = start_placement(instance, start)
    if gpu_of is None:
        packing = memory_packing(instance, time_limit_s=time_limit_s, seed=seed)
        if packing.status != "feasible":
            return _no_start_result(instance, packing.status, clock)
        gpu_of, start_source = packing.gpu_of, "exact packing"
    state = load_state(instance, gpu_of)
    start_peak = state.peak()
    root_bound = certified_lower_bound(instance)[0]
    log = _SearchLog()
    reporter = _Reporter(progress, max_iterations)
    rng = np.random.default_rng(seed)
    failures = {rule: 0 for rule in RULES}  # rejected moves per rule since the last accepted one
    stall = 0  # rejected moves in a row
    size_cap = max_neighbourhood_gpus  # lowered when a sub-solve of that size runs out of time
    log.history.append((0, time.perf_counter() - clock, start_peak))
    try:
        while True:
            peak_gpus, peak = peak_gpu_set(instance, state)
            better = better_placement(instance, incumbents(), peak) if incumbents is not None else None
            if better is not None:
                state = load_state(instance, better)
                peak_gpus, peak = peak_gpu_set(instance, state)
                log.adopted += 1
                log.history.append((log.iterations, time.perf_counter() - clock, state.peak()))
                failures = {r: 0 for r in RULES}
                stall = 0
            stop = _stop_reason(log, peak, root_bound, max_iterations, time_limit_s - (time.perf_counter() - clock))
            if stop is None and stop_when is not None and stop_when():
                stop = "stopped by the caller"
            if stop is not None:
                log.stop_reason = stop
                break
            rule = RULES[log.iterations % len(RULES)]
            size = neighbourhood_size(neighbourhood_gpus, stall, grow_after=grow_after,
                                      max_gpus=size_cap)
            gpus = select_neighbourhood(
                rule, peak_gpus=peak_gpus, gpu_kvpr=np.asarray(state.gpu_kvpr),
                free_mem=instance.capacities - np.asarray(state.used_mem), neighbourhood_gpus=size,
                attempt=failures[rule], rng=rng, max_peak_gpus=max_peak_gpus)
            sub = extract_subproblem(instance, state.gpu_of, gpus)
            remaining = time_limit_s - (time.perf_counter() - clock)
            outcome = solve_subproblem(sub, backend=backend, time_limit_s=min(sub_time_limit_s, remaining),
                                       seed=seed)
            log.iterations += 1
            accepted = outcome.new_kvpr is not None and accept_move(outcome.old_kvpr, outcome.new_kvpr)
            _record(log, rule, outcome, accepted)
            size_cap = capped_size(size_cap, len(gpus), outcome.status, floor=neighbourhood_gpus)
            if accepted:
                apply_move(state, sub, outcome.sub_gpu_of)  # type: ignore[arg-type]
                failures = {r: 0 for r in RULES}
                stall = 0
                new_peak = state.peak()
                if new_peak < log.history[-1][2]:
                    log.history.append((log.iterations, time.perf_counter() - clock, new_peak))
                    if on_improve is not None:
                        on_improve(tuple(int(g) for g in state.gpu_of))
            else:
                failures[rule] += 1
                stall += 1
            if len(gpus) == instance.num_gpus:
                # The neighbourhood is the whole instance: its exact solve settles everything.
                if outcome.status == "optimal" and outcome.new_kvpr is not None:
                    optimum = max(outcome.new_kvpr)
                    log.proven_bound = optimum
                if not accepted:
                    log.stop_reason = "whole instance solved" if outcome.status == "optimal" else "no improving move"
                    break
            reporter.report(LnsProgress(log.iterations, time.perf_counter() - clock,
                                        state.peak(), accepted, rule, gpus))
    finally:
        reporter.close()
    return _final_result(instance, state, log, root_bound, clock, time_limit_s, colgen_time_s,
                         start_peak=start_peak, start_source=start_source, seed=seed,
                         neighbourhood_gpus=neighbourhood_gpus, max_neighbourhood_gpus=max_neighbourhood_gpus,
                         max_peak_gpus=max_peak_gpus, grow_after=grow_after, sub_time_limit_s=sub_time_limit_s)


def better_placement(instance: Instance, offered: Sequence[int] | None, peak: ExactValue) -> tuple[int, ...] | None:
    """``offered`` if it is a valid placement with an exact peak below ``peak``, else ``None``."""
    if offered is None:
        return None
    try:
        checked = check_placement(instance, offered)
    except KvoptError:
        return None
    return checked if objective_peak_exact(instance, checked) < peak else None


def _check_parameters(**values: Any) -> None:
    """Raise ``KvoptError`` naming the first bad parameter."""
    for name in ("time_limit_s", "sub_time_limit_s"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise KvoptError(f"field {name!r}: must be a number > 0, got {value!r}")
    for name, least in (("neighbourhood_gpus", 1), ("max_neighbourhood_gpus", 1), ("grow_after", 1),
                        ("max_peak_gpus", 1), ("max_iterations", 0)):
        value = values[name]
        if name == "max_iterations" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise KvoptError(f"field {name!r}: must be an integer >= {least}, got {value!r}")
    if values["max_neighbourhood_gpus"] < values["neighbourhood_gpus"]:
        raise KvoptError(f"field 'max_neighbourhood_gpus': must be >= neighbourhood_gpus "
                         f"({values['neighbourhood_gpus']}), got {values['max_neighbourhood_gpus']}")


def _no_start_result(instance: Instance, packing_status: str, clock: float) -> Result:
    """No placement to start from: proven ``infeasible``, or ``unknown``."""
    proven = packing_status == "infeasible"
    reason = "no placement fits in memory (proven)" if proven else "no placement found and no proof that none exists"
    return Result(instance.name, "lns", "infeasible" if proven else "unknown", None, None,
                  seconds=time.perf_counter() - clock, details={"reason": reason})


def _stop_reason(log: _SearchLog, peak: ExactValue, bound: Fraction, max_iterations: int | None,
                 remaining_s: float) -> str | None:
    """Why the search should stop before the next iteration, or None to go on."""
    if peak == 0:
        return "peak is 0"
    if peak == bound:
        return "peak equals the lower bound"
    if log.proven_bound is not None and peak == log.proven_bound:
        return "whole instance solved"
    if max_iterations is not None and log.iterations >= max_iterations:
        return "max_iterations"
    if remaining_s < MIN_SUB_SOLVE_S:
        return "time limit"
    return None


def _record(log: _SearchLog, rule: str, outcome: SubOutcome, accepted: bool) -> None:
    if outcome.status != "optimal":
        log.sub_solves_not_optimal += 1
    if accepted:
        log.accepted += 1
        log.accepted_by_rule[rule] += 1


def _final_result(instance: Instance, state: LoadState, log: _SearchLog, root_bound: Fraction, clock: float,
                  time_limit_s: float, colgen_time_s: float, **info: Any) -> Result:
    """Evaluate the final placement with ``kvopt.evaluate`` and attach the best certified bound."""
    placement = Placement(tuple(state.gpu_of))
    ev = evaluate(instance, placement)
    peak_exact = ev.peak_kvpr_exact
    bound, bound_source = root_bound, "root"
    if log.proven_bound is not None and log.proven_bound > bound:
        bound, bound_source = log.proven_bound, "exact solve of the whole instance"
    if peak_exact == math.inf and bound < math.inf:
        left_s = max(MIN_SUB_SOLVE_S, time_limit_s - (time.perf_counter() - clock))
        finite = finite_peak_packing(instance, time_limit_s=left_s, hint=state.gpu_of)
        if finite.status == "infeasible":
            bound, bound_source = math.inf, "finite-peak check (every placement has an infinite peak)"
    if bound < peak_exact < math.inf and colgen_time_s > 0:
        bound, bound_source = certified_lower_bound(instance, colgen_time_s=colgen_time_s, known=bound,
                                                    target=peak_exact)
    optimal = peak_exact == bound
    details = {
        **info,
        "iterations": log.iterations,
        "accepted": log.accepted,
        "accepted_by_rule": dict(log.accepted_by_rule),
        "adopted": log.adopted,
        "sub_solves_not_optimal": log.sub_solves_not_optimal,
        "stop_reason": log.stop_reason,
        "time_limit_s": time_limit_s,
        "lower_bound_source": bound_source,
        "history": list(log.history),
    }
    return Result(
        instance=instance.name, method="lns", status="optimal" if optimal else "feasible",
        placement=placement, peak_kvpr=ev.peak_kvpr, peak_kvpr_exact=peak_exact,
        lower_bound=float(bound), lower_bound_exact=bound, gap=relative_gap(peak_exact, bound),
        seconds=time.perf_counter() - clock, details=details,
    )
