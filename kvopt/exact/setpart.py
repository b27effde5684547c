"""Set-partitioning (set-covering) feasibility model over feasible GPU loads at a target ``T``.

**Patterns.**  GPUs are grouped into *capacity classes* (equal ``C_g``; ``G_c``
GPUs in class ``c``).  At ``T = p/q`` a *pattern* of class ``c`` is a non-empty
set ``P`` of models that may share one GPU of that class, decided exactly on the
integer rows of ``kvopt.scaling``::

    sum_{i in P} weight_i <= cap_c        (cap_c - 1 if strict and P has demand)

where ``weight_i = q·M·nint_i + p·L·sint_i`` and ``cap_c = p·L·cint_c``.  The
memory row ``sum p·L·sint_i <= p·L·cint_c`` is implied (``q·M·nint_i >= 0``), so
every pattern also fits in memory; the final placement is nevertheless
re-checked on both rows.  Patterns are enumerated by a depth-first search over
the models sorted by weight (largest first) with Python integers only.

**Model.**  Binary ``y_P`` per pattern::

    sum_{P ∋ i} y_P >= 1     for every model i           (cover)
    sum_{P in class c} y_P <= G_c   for every class c     (GPU count)

over the *maximal* patterns (no model can be added) — the default — or, with
``maximal=False``, the exact partition ``= 1`` over *all* patterns.

*Proof that covering with maximal patterns is exact.*  (⇒) Take a placement with
every GPU at ``KVPR <= T``.  Every non-empty GPU load is a pattern of its class;
extend it greedily to a maximal pattern of that class (a superset; it may contain
models of other GPUs).  Selecting these maximal patterns covers every model and
selects at most ``G_c`` distinct patterns of class ``c`` (two GPUs extending to the
same pattern select it once).  (⇐) Given a cover, give every model to the first
selected pattern that contains it and drop it from the others.  Each selected
pattern shrinks to a subset, and a subset ``S`` of a pattern ``P`` is a pattern:
weights are non-negative, so ``load(S) <= load(P)``; in the strict case, if ``S``
carries demand so does ``P`` (same limit ``cap_c - 1``), and otherwise ``S`` only
needs the larger limit ``cap_c``.
Distinct selected patterns of class ``c`` go to distinct GPUs of class ``c``; at
most ``G_c`` exist.  Hence the cover is feasible iff the placement exists.  Maximal
patterns are fewer than all patterns, so this is the default for the MILP.

**Solving.**  Two ways, both behind ``SetPartitionBackend``:

* an exact *bin-completion search* (``search_partition``): the uncovered model of
  largest weight goes to a GPU together with a set of uncovered models that is
  maximal for that GPU's class (the same dominance argument as above), failed
  states are memoised, and the uncovered weight must fit the GPUs left.  It is
  pure integer arithmetic, so ``infeasible`` is a proof with no tolerance at all;
* the covering MILP with HiGHS (highspy, one ``passModel`` call), or CBC / HiGHS
  through PuLP, used when the search exceeds its node budget.

**Exactness of the MILP.**  Whether a set is a pattern is decided in exact
integer arithmetic.  The MILP has only 0/1 coefficients and integer right-hand
sides ``1`` and ``G_c``, so the floating-point solver introduces no rounding of
data; a ``feasible`` answer is re-verified exactly (``fits_target`` and memory,
on the read-back placement) and an ``infeasible`` answer is exact up to the
solver's integrality tolerance (1e-6 against a unit gap).  That is why this model
is a better proof model than the assignment model with its large integer rows.

**Speed** (adrs50, 50 cases, ``kvopt.exact.candidates.minimize_peak_setpart``, 2-core
machine): the search answers all checks in ~0.1-0.2 s total; the HiGHS MILP needs
~4-6 ms per check (~1-1.4 s total).  See ``scripts/bench_setpart.py`` (reports/setpart_bench.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence

import numpy as np

from kvopt.exact.backend import MIN_LIMIT_S, FeasibilityAnswer, FeasibilityQuery, TimedBackend, seconds_left
from kvopt.exact.solvers import (cbc_engine, configure_highs, highs_engine_for_pulp, highs_status, new_highs,
                                 pulp_status)
from kvopt.scaling import (CapacityClass, IntegerData, TargetRows, capacity_classes, integer_data,
                           placement_fits_target, target_rows)
from kvopt.model import Instance, KvoptError

DEFAULT_PATTERN_CAP = 200_000
SOLVERS = ("auto", "dfs", "highs", "pulp-highs", "cbc")
DEFAULT_NODE_LIMIT = 20_000


class PatternCapExceeded(Exception):
    """More patterns than the cap allows; the model would be too large to build."""


# -- capacity classes and pattern enumeration ------------------------------------------
@dataclass(frozen=True)
class ClassPatterns:
    """The patterns (model-index tuples, ascending) of one capacity class."""

    cls: CapacityClass
    patterns: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class _SearchItems:
    """Models in search order (weight descending) with what the DFS needs, as plain ints."""

    model: tuple[int, ...]
    weight: tuple[int, ...]
    has_demand: tuple[bool, ...]
    suffix_weight: tuple[int, ...]  # suffix_weight[k] = sum of weight[k:]


def _search_items(rows: TargetRows) -> _SearchItems:
    order = sorted(range(len(rows.weight)), key=lambda i: (-rows.weight[i], i))
    weight = tuple(rows.weight[i] for i in order)
    suffix = [0] * (len(order) + 1)
    for k in range(len(order) - 1, -1, -1):
        suffix[k] = suffix[k + 1] + weight[k]
    return _SearchItems(tuple(order), weight, tuple(rows.demand_weight[i] > 0 for i in order), tuple(suffix))


@dataclass(frozen=True)
class _Limits:
    """Row limit for a load without demand (``free``) and with demand (``loaded``)."""

    free: int
    loaded: int

    def of(self, has_demand: bool) -> int:
        return self.loaded if has_demand else self.free


def _limits(rows: TargetRows, cap: int) -> _Limits:
    return _Limits(cap, cap - 1 if rows.strict else cap)


def _all_patterns(items: _SearchItems, limits: _Limits, cap: int) -> list[tuple[int, ...]]:
    """Every non-empty pattern: DFS adding items in search order (each set visited once)."""
    out: list[tuple[int, ...]] = []
    _extend_all(items, limits, 0, 0, False, [], out, cap)
    return out


def _extend_all(items: _SearchItems, limits: _Limits, start: int, load: int, has_demand: bool,
                chosen: list[int], out: list[tuple[int, ...]], cap: int) -> None:
    # Weights are descending: skip straight to the first item that can fit at all.
    first = _first_fitting(items.weight, start, limits.free - load)
    for k in range(first, len(items.weight)):
        new_demand = has_demand or items.has_demand[k]
        new_load = load + items.weight[k]
        if new_load > limits.of(new_demand):
            continue
        chosen.append(k)
        out.append(tuple(chosen))
        if len(out) > cap:
            raise PatternCapExceeded(f"more than {cap} patterns")
        _extend_all(items, limits, k + 1, new_load, new_demand, chosen, out, cap)
        chosen.pop()


def _first_fitting(desc_weights: tuple[int, ...], start: int, slack: int) -> int:
    """First index ``>= start`` whose weight is ``<= slack`` (weights are descending)."""
    lo, hi = start, len(desc_weights)
    while lo < hi:
        mid = (lo + hi) // 2
        if desc_weights[mid] > slack:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _maximal_patterns(items: _SearchItems, limits: _Limits, cap: int) -> list[tuple[int, ...]]:
    """Every maximal pattern: include/exclude DFS, pruning subtrees with no maximal leaf."""
    out: list[tuple[int, ...]] = []
    _branch_maximal(items, limits, 0, 0, False, [], [], out, cap)
    return out


def _branch_maximal(items: _SearchItems, limits: _Limits, k: int, load: int, has_demand: bool,
                    chosen: list[int], excluded: list[int], out: list[tuple[int, ...]], cap: int) -> None:
    """Decide item ``k``; a leaf is kept iff no (voluntarily) excluded item can be added to it.

    Items that do not fit now never fit later (the load and the demand flag only
    grow), so they are skipped without branching and need no maximality check.
    Prune: an item excluded at load ``load`` still fits at the leaf if even taking
    every later item leaves room for it (``load + w_k + suffix_{k+1} <= loaded``
    limit, the smaller one), so such a subtree has no maximal leaf.
    """
    n = len(items.weight)
    while k < n and load + items.weight[k] > limits.of(has_demand or items.has_demand[k]):
        k += 1
    if k == n:
        if chosen and _is_maximal(items, limits, load, has_demand, excluded):
            out.append(tuple(chosen))
            if len(out) > cap:
                raise PatternCapExceeded(f"more than {cap} patterns")
        return
    chosen.append(k)
    _branch_maximal(items, limits, k + 1, load + items.weight[k], has_demand or items.has_demand[k],
                    chosen, excluded, out, cap)
    chosen.pop()
    if load + items.suffix_weight[k] <= limits.loaded:
        return  # excluding k: k would still fit on top of everything else
    excluded.append(k)
    _branch_maximal(items, limits, k + 1, load, has_demand, chosen, excluded, out, cap)
    excluded.pop()


def _is_maximal(items: _SearchItems, limits: _Limits, load: int, has_demand: bool,
                excluded: list[int]) -> bool:
    for k in excluded:
        if load + items.weight[k] <= limits.of(has_demand or items.has_demand[k]):
            return False
    return True


def class_patterns(rows: TargetRows, classes: Sequence[CapacityClass], *, maximal: bool = True,
                   cap: int = DEFAULT_PATTERN_CAP) -> list[ClassPatterns]:
    """Patterns of every class at ``rows`` (model indices, ascending).  Raises ``PatternCapExceeded``."""
    items = _search_items(rows)
    found: list[ClassPatterns] = []
    remaining = cap
    for cls in classes:
        row_cap = rows.capacity[cls.gpus[0]]
        limits = _limits(rows, row_cap)
        try:
            raw = _maximal_patterns(items, limits, remaining) if maximal else _all_patterns(items, limits, remaining)
        except RecursionError:  # patterns with ~1000 branch points: far too many anyway
            raise PatternCapExceeded("pattern search too deep") from None
        remaining -= len(raw)
        patterns = tuple(tuple(sorted(items.model[k] for k in pat)) for pat in raw)
        found.append(ClassPatterns(cls, patterns))
    return found


def count_patterns(instance: Instance, target: Fraction, cap: int, *, strict: bool = False,
                   maximal: bool = True) -> int | None:
    """Number of pattern columns the model has at ``target`` (all classes); ``None`` if over ``cap``.

    With ``maximal=True`` (the backend default) these are the maximal patterns.
    """
    data = integer_data(instance)
    rows = target_rows(data, Fraction(target), strict)
    try:
        found = class_patterns(rows, capacity_classes(data), maximal=maximal, cap=cap)
    except PatternCapExceeded:
        return None
    return sum(len(cp.patterns) for cp in found)


# -- the MILP -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverSolution:
    """Solver outcome: ``feasible``/``infeasible``/``unknown`` and the chosen columns."""

    status: str
    chosen: tuple[int, ...]  # column indices with y = 1
    solver_status: str


def _columns(found: Sequence[ClassPatterns]) -> tuple[list[tuple[int, ...]], list[int]]:
    """Flattened patterns and the class index of each column."""
    patterns: list[tuple[int, ...]] = []
    class_of: list[int] = []
    for c, cp in enumerate(found):
        patterns.extend(cp.patterns)
        class_of.extend([c] * len(cp.patterns))
    return patterns, class_of


def solve_cover_highs(num_models: int, patterns: Sequence[tuple[int, ...]], class_of: Sequence[int],
                      class_counts: Sequence[int], *, partition: bool, time_limit_s: float,
                      seed: int = 0, highs=None) -> CoverSolution:
    """Solve the cover (``partition=False``) or partition MILP with highspy directly.

    Rows ``0..n-1`` are the models, rows ``n..n+K-1`` the classes; the matrix is
    passed column-wise (CSC) in one call, which is what keeps a check at ~ms.
    """
    import highspy

    h = highs if highs is not None else new_highs()
    h.clearModel()
    configure_highs(h, time_limit_s=time_limit_s, seed=seed)
    num_cols = len(patterns)
    num_rows = num_models + len(class_counts)
    starts = np.zeros(num_cols + 1, dtype=np.int32)
    index: list[int] = []
    for j, pat in enumerate(patterns):
        index.extend(pat)
        index.append(num_models + class_of[j])
        starts[j + 1] = len(index)
    lp = highspy.HighsLp()
    lp.num_col_ = num_cols
    lp.num_row_ = num_rows
    lp.col_cost_ = np.zeros(num_cols)
    lp.col_lower_ = np.zeros(num_cols)
    lp.col_upper_ = np.ones(num_cols)
    inf = highspy.kHighsInf
    cover_upper = 1.0 if partition else inf
    lp.row_lower_ = np.array([1.0] * num_models + [0.0] * len(class_counts))
    lp.row_upper_ = np.array([cover_upper] * num_models + [float(g) for g in class_counts])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.ones(len(index))
    lp.integrality_ = [highspy.HighsVarType.kInteger] * num_cols
    h.passModel(lp)
    h.run()
    status, name = highs_status(h)
    if status == "feasible":
        values = h.getSolution().col_value
        return CoverSolution("feasible", tuple(j for j in range(num_cols) if values[j] > 0.5), name)
    return CoverSolution(status, (), name)


def solve_cover_pulp(num_models: int, patterns: Sequence[tuple[int, ...]], class_of: Sequence[int],
                     class_counts: Sequence[int], *, partition: bool, time_limit_s: float,
                     solver: str = "cbc") -> CoverSolution:
    """The same MILP through PuLP (``cbc`` or ``pulp-highs``): slower to build, solver-independent."""
    import pulp

    prob = pulp.LpProblem("setpart", pulp.LpMinimize)
    y = [prob.add_variable(f"y{j}", 0, 1, cat="Binary") for j in range(len(patterns))]
    prob += pulp.lpSum([])
    covering: list[list[pulp.LpVariable]] = [[] for _ in range(num_models)]
    per_class: list[list[pulp.LpVariable]] = [[] for _ in class_counts]
    for j, pat in enumerate(patterns):
        for i in pat:
            covering[i].append(y[j])
        per_class[class_of[j]].append(y[j])
    for i, cols in enumerate(covering):
        expr = pulp.lpSum(cols)
        prob += (expr == 1) if partition else (expr >= 1), f"model_{i}"
    for c, cols in enumerate(per_class):
        prob += pulp.lpSum(cols) <= class_counts[c], f"class_{c}"
    if solver == "cbc":
        engine = cbc_engine(timeLimit=max(MIN_LIMIT_S, time_limit_s))
    else:
        engine = highs_engine_for_pulp(time_limit_s=time_limit_s)
    prob.solve(engine)
    status, text = pulp_status(prob)
    if status == "feasible":
        return CoverSolution("feasible", tuple(j for j, var in enumerate(y) if (var.value() or 0) > 0.5), text)
    return CoverSolution(status, (), text)


# -- exact search (bin completion), no floating point at all -------------------------------
class NodeLimitReached(Exception):
    """The exact search used its node budget without an answer."""


@dataclass(frozen=True)
class _BinProblem:
    """Items in search order and, per capacity class, its row limits and GPU count."""

    items: _SearchItems
    limits: tuple[_Limits, ...]
    counts: tuple[int, ...]


def search_partition(rows: TargetRows, classes: Sequence[CapacityClass], node_limit: int,
                     deadline: float = math.inf) -> tuple[str, tuple[int, ...] | None, int]:
    """Exact partition search; returns ``(status, gpu_of, nodes)``.

    Raises ``NodeLimitReached`` past ``node_limit`` nodes or ``time.perf_counter() > deadline``.

    Bin completion: the uncovered model of largest weight must share some GPU of
    some class ``c`` with a set ``S`` of uncovered models.  Only sets ``S`` that are
    *maximal* among the uncovered models for class ``c`` are tried — if a placement
    puts a non-maximal ``S`` there, moving the models of ``S'`` not in ``S`` from their GPUs
    into this one keeps every GPU a pattern (subsets of patterns are patterns),
    so some placement uses the maximal ``S'``.  States ``(uncovered, GPUs left)``
    that failed are remembered.  Prune: the uncovered weight must fit in the
    remaining GPUs' limits.  Pure integer arithmetic: ``infeasible`` is a proof.
    """
    items = _search_items(rows)
    problem = _BinProblem(items, tuple(_limits(rows, rows.capacity[c.gpus[0]]) for c in classes),
                          tuple(len(c.gpus) for c in classes))
    budget = _Budget(node_limit, deadline)
    uncovered = (1 << len(items.weight)) - 1
    try:
        fills = _complete(problem, uncovered, problem.counts, set(), budget)
    except RecursionError:  # one stack frame per GPU: very large instances
        raise NodeLimitReached from None
    nodes = node_limit - budget.nodes_left
    if fills is None:
        return "infeasible", None, nodes
    gpu_of = [-1] * len(items.weight)
    used = [0] * len(classes)
    for c, positions in fills:
        gpu = classes[c].gpus[used[c]]
        used[c] += 1
        for k in positions:
            gpu_of[items.model[k]] = gpu
    return "feasible", tuple(gpu_of), nodes


@dataclass
class _Budget:
    """Nodes left and the wall-clock deadline of one search (mutable, shared down the recursion)."""

    nodes_left: int
    deadline: float

    def spend(self) -> None:
        self.nodes_left -= 1
        if self.nodes_left < 0:
            raise NodeLimitReached
        self.check_time()

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise NodeLimitReached


def _complete(problem: _BinProblem, uncovered: int, left: tuple[int, ...], failed: set,
              budget: _Budget) -> list[tuple[int, tuple[int, ...]]] | None:
    """Fills ``(class, positions)`` covering ``uncovered`` with ``left`` GPUs per class, or ``None``."""
    if uncovered == 0:
        return []
    key = (uncovered, left)
    if key in failed:
        return None
    items = problem.items
    positions = [k for k in range(len(items.weight)) if uncovered >> k & 1]
    room = sum(n * lim.free for n, lim in zip(left, problem.limits))
    if sum(items.weight[k] for k in positions) > room:
        failed.add(key)
        return None
    budget.spend()
    first, rest = positions[0], positions[1:]
    for c, limits in enumerate(problem.limits):
        if left[c] == 0:
            continue
        demand = items.has_demand[first]
        if items.weight[first] > limits.of(demand):
            continue
        next_left = left[:c] + (left[c] - 1,) + left[c + 1:]
        for fill in _maximal_fills(items, limits, rest, items.weight[first], demand, budget):
            chosen = (first, *fill)
            mask = 0
            for k in chosen:
                mask |= 1 << k
            sub = _complete(problem, uncovered & ~mask, next_left, failed, budget)
            if sub is not None:
                return [(c, chosen), *sub]
    failed.add(key)
    return None


def _maximal_fills(items: _SearchItems, limits: _Limits, candidates: Sequence[int], load: int,
                   has_demand: bool, budget: _Budget) -> Iterator[tuple[int, ...]]:
    """Subsets of ``candidates`` that, added to ``load``, fit and leave no candidate that still fits.

    Lazily, one at a time, and within the search's deadline: with many small models
    there are exponentially many (a mixed-capacity 24-GPU case ran for minutes
    listing them all before the first was tried)."""
    suffix = [0] * (len(candidates) + 1)
    for j in range(len(candidates) - 1, -1, -1):
        suffix[j] = suffix[j + 1] + items.weight[candidates[j]]
    yield from _fill_branch(items, limits, candidates, suffix, 0, load, has_demand, [], [], budget)


def _fill_branch(items: _SearchItems, limits: _Limits, candidates: Sequence[int], suffix: list[int], j: int,
                 load: int, has_demand: bool, chosen: list[int], excluded: list[int],
                 budget: _Budget) -> Iterator[tuple[int, ...]]:
    """Include/exclude over ``candidates`` (weights descending), as in ``_branch_maximal``."""
    budget.check_time()
    num = len(candidates)
    while j < num and load + items.weight[candidates[j]] > limits.of(has_demand or items.has_demand[candidates[j]]):
        j += 1
    if j == num:
        if _is_maximal(items, limits, load, has_demand, excluded):
            yield tuple(chosen)
        return
    k = candidates[j]
    chosen.append(k)
    yield from _fill_branch(items, limits, candidates, suffix, j + 1, load + items.weight[k],
                            has_demand or items.has_demand[k], chosen, excluded, budget)
    chosen.pop()
    if load + suffix[j] <= limits.loaded:
        return
    excluded.append(k)
    yield from _fill_branch(items, limits, candidates, suffix, j + 1, load, has_demand, chosen, excluded, budget)
    excluded.pop()


# -- read-back and exact verification ----------------------------------------------------
def placement_from_cover(num_models: int, found: Sequence[ClassPatterns], patterns: Sequence[tuple[int, ...]],
                         class_of: Sequence[int], chosen: Sequence[int]) -> tuple[int, ...] | None:
    """GPU per model: chosen patterns go to distinct GPUs of their class; duplicates keep the first.

    Returns ``None`` if the chosen columns do not cover every model or use more
    GPUs of a class than it has (a solver error; never expected).
    """
    gpu_of = [-1] * num_models
    used = [0] * len(found)
    for j in chosen:
        c = class_of[j]
        if used[c] >= len(found[c].cls.gpus):
            return None
        gpu = found[c].cls.gpus[used[c]]
        used[c] += 1
        for i in patterns[j]:
            if gpu_of[i] < 0:
                gpu_of[i] = gpu
    if min(gpu_of, default=0) < 0:
        return None
    return tuple(gpu_of)


def verify_placement(data: IntegerData, rows: TargetRows, gpu_of: Sequence[int]) -> bool:
    """Exact re-check of a placement at the rows' target (``scaling.placement_fits_target``)."""
    return placement_fits_target(data, rows, gpu_of)


# -- the backend -------------------------------------------------------------------------
class SetPartitionBackend(TimedBackend):
    """``FeasibilityBackend`` on the set-partitioning model (see module docstring).

    ``solver``:

    * ``auto`` (default): the exact bin-completion search (``search_partition``)
      with ``node_limit`` nodes and half the time limit, then the covering MILP
      with HiGHS if the budget runs out.  On adrs50 the search answers every check (max 239 nodes).
    * ``dfs``: the search only (``unknown`` past the node or time limit).
    * ``highs`` (highspy directly), ``pulp-highs``, ``cbc`` (through PuLP): the MILP.

    ``pattern_cap``: the MILP answers ``unknown`` past that many columns.
    ``time_limit_s`` overrides the query's limit when given.
    """

    name = "setpart"

    def __init__(self, solver: str = "auto", pattern_cap: int = DEFAULT_PATTERN_CAP,
                 time_limit_s: float | None = None, maximal: bool = True,
                 node_limit: int = DEFAULT_NODE_LIMIT) -> None:
        if solver not in SOLVERS:
            raise KvoptError(f"setpart: unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        if pattern_cap < 1:
            raise KvoptError(f"setpart: pattern_cap must be >= 1, got {pattern_cap!r}")
        self.solver = solver
        self.pattern_cap = pattern_cap
        self.time_limit_s = time_limit_s
        self.maximal = maximal
        self.node_limit = node_limit
        self._highs = None  # one reusable highspy object per backend (not thread-safe)

    def answer(self, query: FeasibilityQuery, deadline: float) -> tuple[str, tuple[int, ...] | None, dict]:
        answer = self._answer(query, deadline)
        return answer.status, answer.gpu_of, answer.details

    def _answer(self, query: FeasibilityQuery, deadline: float) -> FeasibilityAnswer:
        instance = query.instance
        data = integer_data(instance)
        rows = target_rows(data, Fraction(query.target), query.strict)
        if query.hint is not None and len(query.hint) == instance.num_models and \
                _valid_indices(query.hint, instance.num_gpus) and verify_placement(data, rows, query.hint):
            return FeasibilityAnswer("feasible", tuple(query.hint), details={"via": "hint"})
        classes = capacity_classes(data)
        details: dict = {}
        if self.solver in ("auto", "dfs"):
            try:
                # In auto mode the search gets half the time left; the MILP fallback the rest.
                now = time.perf_counter()
                search_deadline = deadline if self.solver == "dfs" else now + (deadline - now) / 2
                status, gpu_of, nodes = search_partition(rows, classes, self.node_limit, search_deadline)
            except NodeLimitReached:
                details["search"] = f"node limit {self.node_limit} or time limit reached"
            else:
                details.update(via="search", nodes=nodes)
                return self._verified(status, gpu_of, data, rows, details)
            if self.solver == "dfs":
                return FeasibilityAnswer("unknown", details=details)
        return self._check_milp(query, data, rows, classes, details, seconds_left(deadline))

    def _check_milp(self, query: FeasibilityQuery, data: IntegerData, rows: TargetRows,
                    classes: Sequence[CapacityClass], details: dict, limit: float) -> FeasibilityAnswer:
        num_models = query.instance.num_models
        try:
            found = class_patterns(rows, classes, maximal=self.maximal, cap=self.pattern_cap)
        except PatternCapExceeded:
            details["reason"] = f"more than {self.pattern_cap} patterns"
            return FeasibilityAnswer("unknown", details=details)
        patterns, class_of = _columns(found)
        details.update(via="milp", patterns=len(patterns), maximal=self.maximal)
        covered = set().union(*patterns) if patterns else set()
        if len(covered) < num_models:
            # A model that fits no GPU alone at T: infeasible without a solver (exact).
            details["uncoverable_model"] = query.instance.models[min(set(range(num_models)) - covered)].name
            return FeasibilityAnswer("infeasible", details=details)
        counts = [len(cp.cls.gpus) for cp in found]
        if self.solver in ("auto", "highs"):
            if self._highs is None:
                self._highs = new_highs()
            solution = solve_cover_highs(num_models, patterns, class_of, counts, partition=not self.maximal,
                                         time_limit_s=limit, seed=query.seed, highs=self._highs)
        else:
            solution = solve_cover_pulp(num_models, patterns, class_of, counts, partition=not self.maximal,
                                        time_limit_s=limit, solver=self.solver)
        details["solver_status"] = solution.solver_status
        gpu_of = None
        if solution.status == "feasible":
            gpu_of = placement_from_cover(num_models, found, patterns, class_of, solution.chosen)
        return self._verified(solution.status, gpu_of, data, rows, details)

    @staticmethod
    def _verified(status: str, gpu_of: tuple[int, ...] | None, data: IntegerData, rows: TargetRows,
                  details: dict) -> FeasibilityAnswer:
        """Pass ``infeasible``/``unknown`` through; a ``feasible`` placement only after the exact re-check."""
        if status != "feasible":
            return FeasibilityAnswer(status, details=details)
        if gpu_of is None or not verify_placement(data, rows, gpu_of):
            details["reason"] = "solution failed the exact re-check"
            return FeasibilityAnswer("unknown", details=details)
        return FeasibilityAnswer("feasible", gpu_of, details=details)


def _valid_indices(gpu_of: Sequence[int], num_gpus: int) -> bool:
    return all(isinstance(g, (int, np.integer)) and 0 <= g < num_gpus for g in gpu_of)
