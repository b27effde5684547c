"""Branch-and-price feasibility backend: exact bin packing at one target ``T``.

At ``T`` the question "every ``KVPR_g <= T``?" is one-dimensional bin packing
(``kvopt.exact.scaling``): item ``i`` weighs ``w_i = q·M·nint_i + p·L·sint_i``, a GPU
of capacity class ``c`` holds a set ``P`` (a *pattern*) iff ``Σ_{i∈P} w_i <= cap_c``
(``cap_c − 1`` when ``strict`` and ``P`` carries demand).  ``BranchPriceBackend``
answers in four stages, cheapest first, all decisions in Python integers:

1. **Cheap tests.**  A model fitting no GPU; the total weight above the total
   capacity; the Martello–Toth bound L2 on the relaxation where every GPU has the
   largest capacity (``l2_bins``: more bins needed than GPUs exist ⇒ infeasible).
   Then a small budget of the set-partitioning bin-completion search
   (``kvopt.exact.setpart.search_partition``), which settles easy targets outright.
2. **Column generation** on the Gilmore–Gomory LP
   ``min λ: Σ_{P∋i} y_P >= 1, Σ_{P∈c} y_P <= G_c·λ`` (HiGHS simplex, hot-started).
   Columns are priced by an exact 0/1 knapsack per class (``kvopt.exact.knapsack``:
   a dominance dynamic program on the integer weights, values ``floor(D·π_i)``),
   greedy first; the exact search returns the *most* violated pattern.  ``λ* > 1`` is turned into
   a proof only by the exact Farkas certificate ``Σπ > Σ_c G_c·max_P π(P)`` over
   integer-rounded duals — at the root ``kvopt.exact.colgen.verify_certificate``
   (the same check as the column-generation bound), at a branch node the same
   inequality with the node's rules in the knapsack.  Patterns are kept in a pool
   per instance: a pattern at ``T`` is a pattern at every ``T' >= T`` (``N <= T(C−S)``
   only gets easier), so later bisection steps start from the earlier columns
   (re-checked exactly, never trusted).
3. **Branch and price** (Ryan–Foster): at a fractional LP point pick the pair
   ``(i, j)`` whose together-mass ``Σ_{P∋i,j} y_P`` is closest to ½ and branch
   *together* (first: a dive) / *apart*.  Every placement obeys exactly one of the
   two, so the children partition the search; the knapsack merges together-groups
   into one item and forbids apart pairs.  A node is closed by the certificate, by
   a group fitting no GPU, or because a placement was found.
4. **Primal side.**  At every node the LP point is rounded (columns by ``y``
   descending, each model kept on the first chosen column) and repaired (best fit
   of the rest); a *feasible* answer always carries a placement re-checked exactly
   by ``kvopt.exact.scaling.placement_fits_target``.

Answers: ``feasible`` (placement), ``infeasible`` (cheap bound, exhausted search,
or every leaf closed by an exact argument), ``unknown`` (node/time budget, or a
node the LP could neither close nor branch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

import numpy as np

from kvopt.exact.backend import FeasibilityQuery, FeasibilityStatus, TimedBackend
from kvopt.exact.colgen import DUAL_SCALE, verify_certificate
from kvopt.exact.knapsack import Choice, best_pattern
from kvopt.exact.setpart import NodeLimitReached, search_partition
from kvopt.exact.solvers import configured_highs
from kvopt.scaling import (CapacityClass, IntegerData, TargetRows, capacity_classes, integer_data,
                           placement_fits_target, target_rows)

LP_TOL = 1e-9
SEARCH_NODES = 2_000  # bin-completion nodes tried before column generation ...
SEARCH_S = 0.2  # ... and seconds (it settles small instances; large ones go to the LP)
PRICING_NODES = 20_000  # knapsack states (dynamic program) / bound evaluations (branch and bound) per pricing call
PRICED_COLUMNS = 10  # patterns above the class dual one knapsack call may add (fewer LP rounds per node)
CERTIFY_NODES = 200_000  # knapsack bound evaluations per class in a node certificate
CERTIFY_EVERY = 25  # also try the certificate every this many LP rounds (cuts the LP tail) ...
CERTIFY_MARGIN = 1e-3  # ... when λ is this far above 1 (barely above 1, only near-optimal duals certify)
POOL_CAP = 50_000  # patterns remembered per instance across targets
DEFAULT_NODE_LIMIT = 5_000  # branch-and-price nodes per query


# -- the packing problem at one target ------------------------------------------------------
@dataclass(frozen=True)
class BinClass:
    """GPUs of one capacity: how many, the row limit with / without demand, and their indices."""

    count: int
    loaded: int
    free: int
    gpus: tuple[int, ...]

    def limit(self, has_demand: bool) -> int:
        return self.loaded if has_demand else self.free


@dataclass(frozen=True)
class Packing:
    """Integer bin packing at one target: item weights, demand flags, capacity classes."""

    weight: tuple[int, ...]
    has_demand: tuple[bool, ...]
    classes: tuple[BinClass, ...]

    @property
    def num_items(self) -> int:
        return len(self.weight)


def packing_at(rows: TargetRows, classes: Sequence[CapacityClass]) -> Packing:
    """The bin-packing view of the (strict) target rows."""
    bins = []
    for cls in classes:
        cap = rows.capacity[cls.gpus[0]]
        bins.append(BinClass(len(cls.gpus), cap - 1 if rows.strict else cap, cap, cls.gpus))
    return Packing(rows.weight, tuple(d > 0 for d in rows.demand_weight), tuple(bins))


def fits(packing: Packing, cls: int, models: Sequence[int]) -> bool:
    """Whether ``models`` form a pattern of class ``cls`` (exact)."""
    load = sum(packing.weight[i] for i in models)
    return load <= packing.classes[cls].limit(any(packing.has_demand[i] for i in models))


# -- cheap infeasibility tests -------------------------------------------------------------------
def l2_bins(weights: Sequence[int], capacity: int) -> int:
    """Martello–Toth lower bound L2 on the number of bins of ``capacity`` that hold ``weights``.

    For ``0 <= K <= capacity/2``: items above ``capacity − K`` (J1) and in
    ``(capacity/2, capacity − K]`` (J2) need a bin each, no two share one, and no
    J1 bin has room for an item ``>= K``; items in ``[K, capacity/2]`` (J3) must fit
    in what J2 leaves or in new bins: ``|J1| + |J2| + max(0, ceil((w(J3) − (|J2|·cap −
    w(J2))) / cap))``.  Only the distinct item weights ``<= capacity/2`` need trying as ``K``.
    """
    if any(w > capacity for w in weights):
        return math.inf  # type: ignore[return-value]
    positive = [w for w in weights if w > 0]
    best = -(-sum(positive) // capacity) if capacity > 0 else (math.inf if positive else 0)
    for k in sorted({w for w in positive if 2 * w <= capacity} | {0}):
        j1 = [w for w in positive if w > capacity - k]
        j2 = [w for w in positive if capacity - k >= w and 2 * w > capacity]
        j3 = [w for w in positive if k <= w and 2 * w <= capacity]
        spare = len(j2) * capacity - sum(j2)
        extra = max(0, -(-(sum(j3) - spare) // capacity))
        best = max(best, len(j1) + len(j2) + extra)
    return best


def cheap_infeasibility(packing: Packing) -> str | None:
    """A reason why no placement exists, from counting arguments alone (``None`` if none applies)."""
    for i, w in enumerate(packing.weight):
        if all(w > cls.limit(packing.has_demand[i]) for cls in packing.classes):
            return f"model {i} fits no GPU"
    if sum(packing.weight) > sum(cls.count * cls.free for cls in packing.classes):
        return "total weight above total capacity"
    # Relaxation: every GPU gets the largest limit a loaded GPU can have (demand-free items use `free`).
    all_loaded = all(packing.has_demand)
    capacity = max(cls.loaded if all_loaded else cls.free for cls in packing.classes)
    if l2_bins(packing.weight, capacity) > sum(cls.count for cls in packing.classes):
        return "Martello-Toth L2 bound"
    return None


# -- branching rules and the knapsack under them ------------------------------------------------
@dataclass(frozen=True)
class Rules:
    """Ryan–Foster decisions of one node: pairs that share a GPU and pairs that do not."""

    together: tuple[tuple[int, int], ...] = ()
    apart: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Groups:
    """Models merged by ``together`` (one knapsack item each) and the apart conflicts between groups."""

    members: tuple[tuple[int, ...], ...]
    group_of: tuple[int, ...]
    conflicts: tuple[frozenset[int], ...]  # per group: groups it may not share a GPU with


def node_groups(num_items: int, rules: Rules) -> Groups:
    """Union-find over the together pairs; apart pairs become conflicts between the groups."""
    parent = list(range(num_items))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in rules.together:
        parent[root(i)] = root(j)
    roots = sorted({root(i) for i in range(num_items)})
    index = {r: g for g, r in enumerate(roots)}
    group_of = tuple(index[root(i)] for i in range(num_items))
    members: list[list[int]] = [[] for _ in roots]
    for i in range(num_items):
        members[group_of[i]].append(i)
    conflicts: list[set[int]] = [set() for _ in roots]
    for i, j in rules.apart:
        a, b = group_of[i], group_of[j]
        conflicts[a].add(b)
        conflicts[b].add(a)
    return Groups(tuple(tuple(m) for m in members), group_of, tuple(frozenset(c) for c in conflicts))


# -- the restricted master LP ----------------------------------------------------------------------
@dataclass
class Master:
    """HiGHS LP ``min λ`` with cover rows ``0..n-1`` and class rows ``n..n+K-1``; column 0 is ``λ``."""

    highs: object
    num_items: int
    columns: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # (class, models); col k+1
    known: set = field(default_factory=set)
    holds: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))  # column × model

    def add(self, cls: int, models: Sequence[int]) -> bool:
        import highspy

        key = (cls, tuple(sorted(models)))
        if not models or key in self.known:
            return False
        self.known.add(key)
        self.columns.append(key)
        if len(self.columns) > len(self.holds):
            grown = np.zeros((max(64, 2 * len(self.holds)), self.num_items), dtype=bool)
            grown[: len(self.holds), : self.holds.shape[1]] = self.holds
            self.holds = grown
        self.holds[len(self.columns) - 1, key[1]] = True
        index = np.array([*key[1], self.num_items + cls], dtype=np.int32)
        self.highs.addCol(0.0, 0.0, highspy.kHighsInf, len(index), index, np.ones(len(index)))
        return True

    def restrict(self, rules: Rules) -> None:
        """Columns that break the node's rules get upper bound 0: a column holding one model of a
        together pair but not the other, or both models of an apart pair (pairwise suffices: a column
        splitting a together-group splits one of the pairs that joined it)."""
        import highspy

        if not self.columns:
            return
        holds = self.holds[: len(self.columns)]
        broken = np.zeros(len(self.columns), dtype=bool)
        for i, j in rules.together:
            broken |= holds[:, i] != holds[:, j]
        for i, j in rules.apart:
            broken |= holds[:, i] & holds[:, j]
        upper = np.where(broken, 0.0, highspy.kHighsInf)
        cols = np.arange(1, len(self.columns) + 1, dtype=np.int32)
        self.highs.changeColsBounds(len(cols), cols, np.zeros(len(cols)), upper)

    def solve(self) -> tuple[float, list[float], list[float], list[float]]:
        """(λ, y per column, cover duals π, class duals u >= 0)."""
        h = self.highs
        h.run()
        solution = h.getSolution()
        duals = list(solution.row_dual)
        n = self.num_items
        return (h.getObjectiveValue(), list(solution.col_value)[1:], duals[:n],
                [max(0.0, -d) for d in duals[n:]])


def new_master(packing: Packing) -> Master:
    import highspy

    n, k = packing.num_items, len(packing.classes)
    # Presolve off keeps the basis between re-solves; the caller's deadline bounds the whole tree.
    h = configured_highs(time_limit_s=math.inf, presolve="off", solver="simplex")
    inf = highspy.kHighsInf
    h.addRows(n + k, np.array([1.0] * n + [-inf] * k), np.array([inf] * n + [0.0] * k), 0,
              np.zeros(n + k, dtype=np.int32), np.array([], dtype=np.int32), np.array([]))
    h.addCol(1.0, 0.0, inf, k, np.arange(n, n + k, dtype=np.int32),
             -np.array([cls.count for cls in packing.classes], dtype=float))
    return Master(h, n)


# -- pricing and the node certificate --------------------------------------------------------------
def _group_data(packing: Packing, groups: Groups, values: Sequence[int]) -> tuple[list[int], list[int], list[bool]]:
    gv = [sum(values[i] for i in m) for m in groups.members]
    gw = [sum(packing.weight[i] for i in m) for m in groups.members]
    gd = [any(packing.has_demand[i] for i in m) for m in groups.members]
    return gv, gw, gd


def max_pattern_value(packing: Packing, groups: Groups, cls: int, values: Sequence[int],
                      node_limit: int, floor: int = 0, keep_sets: int = 1) -> Choice:
    """Best allowed pattern of class ``cls`` by ``values`` (``best_pattern`` semantics): loaded patterns
    under the loaded limit, demand-free ones (demand-free groups only) under the free limit."""
    gv, gw, gd = _group_data(packing, groups, values)
    bins = packing.classes[cls]
    loaded = best_pattern(gv, gw, groups.conflicts, bins.loaded, node_limit, floor, keep_sets)
    if bins.free == bins.loaded or all(gd):
        return loaded
    idle_values = [v if not d else 0 for v, d in zip(gv, gd)]
    idle = best_pattern(idle_values, gw, groups.conflicts, bins.free, node_limit, floor, keep_sets)
    best, other = (loaded, idle) if loaded.value >= idle.value else (idle, loaded)
    return Choice(best.value, best.groups, max(loaded.upper, idle.upper),
                  best.others + ((other.groups,) if other.groups else ()) + other.others)


def node_certificate(packing: Packing, groups: Groups, duals: Sequence[float]) -> bool | None:
    """Exact Farkas check: ``Σπ > Σ_c G_c·max_{allowed P} π(P)`` with ``π = floor(D·dual) >= 0``.

    This is the certificate of ``kvopt.exact.colgen`` extended to a branch node: any
    placement obeying the node's rules puts an allowed pattern (or nothing) on each
    GPU, so ``Σ_i π_i = Σ_g π(P_g) <= Σ_c G_c·max π(P)``; the strict inequality
    contradicts it.  Integers only.  Each class's knapsack only has to show that no
    pattern is worth more than what the inequality still allows (its ``floor``).
    ``True``: certified; ``False``: these duals cannot certify; ``None``: a knapsack
    stopped at its state budget before deciding (another argument may still succeed).
    """
    values = [max(0, math.floor(d * DUAL_SCALE)) for d in duals]
    total = sum(values)
    spent = 0
    exact = True
    for c, cls in enumerate(packing.classes):
        # Later classes need >= 0 each, so this class may use everything left: G_c·max <= total − 1 − spent.
        allowance = (total - 1 - spent) // cls.count
        if allowance < 0:
            return False if exact else None
        floor = allowance if c == len(packing.classes) - 1 else 0
        found = max_pattern_value(packing, groups, c, values, CERTIFY_NODES, floor=floor)
        exact = exact and found.upper == max(found.value, floor)
        spent += cls.count * found.upper
        if spent >= total:
            return False if exact else None
    return True


def price(master: Master, packing: Packing, groups: Groups, pi: Sequence[float], u: Sequence[float],
          budgets: Sequence[int] = (PRICING_NODES, CERTIFY_NODES)) -> int:
    """Add columns of negative reduced cost (``π(P) > u_c``) per class; how many were added.

    Greedy first (each group as a seed, filled by value/weight with allowed groups),
    the knapsack (the most violated pattern, filled up) only when the greedy finds nothing:
    with each state budget of ``budgets`` in turn, a larger one only where a smaller
    search was cut short (a complete search would only repeat its answer).
    """
    values = [max(0, math.floor(p * DUAL_SCALE)) for p in pi]
    gv, gw, gd = _group_data(packing, groups, values)
    ratio_order = sorted(range(len(gv)), key=lambda g: (-gv[g] / max(gw[g], 1), g))
    added = 0
    for c, bins in enumerate(packing.classes):
        threshold = (u[c] + LP_TOL) * DUAL_SCALE
        for seed in sorted(range(len(gv)), key=lambda g: -gv[g])[: max(32, len(gv) // 4)]:
            chosen = _greedy_fill(seed, ratio_order, gv, gw, gd, groups, bins)
            if chosen is not None and sum(gv[g] for g in chosen) > threshold:
                added += master.add(c, [i for g in chosen for i in groups.members[g]])
    floors = [math.floor((u[c] + LP_TOL) * DUAL_SCALE) for c in range(len(packing.classes))]
    undecided = [] if added else list(range(len(packing.classes)))
    for budget in budgets:
        if added or not undecided:
            break
        cut = []
        for c in undecided:
            # The most violated pattern, not the first above u_c: a pattern barely above u_c can already be
            # in the LP (its reduced cost within HiGHS's dual tolerance), and stopping there ends the column
            # generation early with a better column left unfound.
            found = max_pattern_value(packing, groups, c, values, budget, floor=floors[c], keep_sets=PRICED_COLUMNS)
            for pattern in (found.groups,) + found.others if found.groups else ():
                chosen = _fill_up(list(pattern), ratio_order, gw, gd, groups, packing.classes[c])
                added += master.add(c, [i for g in chosen for i in groups.members[g]])
            if found.upper > max(found.value, floors[c]):  # cut short: a larger budget may find more
                cut.append(c)
        undecided = cut
    return added


def _greedy_fill(seed: int, order: Sequence[int], gv: Sequence[int], gw: Sequence[int], gd: Sequence[bool],
                 groups: Groups, bins: BinClass) -> list[int] | None:
    if gw[seed] > bins.limit(gd[seed]) or gv[seed] <= 0:
        return None
    return _fill_up([seed], order, gw, gd, groups, bins)


def _fill_up(chosen: list[int], order: Sequence[int], gw: Sequence[int], gd: Sequence[bool],
             groups: Groups, bins: BinClass) -> list[int]:
    """Add further groups (in ``order``) while the pattern stays allowed and fits: larger columns cover more."""
    load = sum(gw[g] for g in chosen)
    demand = any(gd[g] for g in chosen)
    banned = set(chosen).union(*(groups.conflicts[g] for g in chosen))
    for g in order:
        if g in banned or load + gw[g] > bins.limit(demand or gd[g]):
            continue
        chosen.append(g)
        load += gw[g]
        demand = demand or gd[g]
        banned |= {g} | groups.conflicts[g]
    return chosen


# -- primal heuristic ----------------------------------------------------------------------------
def round_and_repair(packing: Packing, columns: Sequence[tuple[int, tuple[int, ...]]],
                     y: Sequence[float]) -> tuple[int, ...] | None:
    """A placement from an LP point: columns by ``y`` descending onto free GPUs of their class (each
    model on the first column that holds it), then the rest by weight, best fit; ``None`` if stuck."""
    n = packing.num_items
    gpu_of = [-1] * n
    free_gpus = [list(cls.gpus) for cls in packing.classes]
    class_of_gpu = {g: c for c, cls in enumerate(packing.classes) for g in cls.gpus}
    load: dict[int, int] = {}
    demand: dict[int, bool] = {}
    for k in sorted((k for k in range(min(len(columns), len(y))) if y[k] > 1e-6), key=lambda k: (-y[k], k)):
        cls, models = columns[k]
        rest = [i for i in models if gpu_of[i] < 0]
        if not rest or not free_gpus[cls]:
            continue
        gpu = free_gpus[cls].pop(0)
        for i in rest:
            gpu_of[i] = gpu
        load[gpu] = sum(packing.weight[i] for i in rest)
        demand[gpu] = any(packing.has_demand[i] for i in rest)
    for i in sorted((i for i in range(n) if gpu_of[i] < 0), key=lambda i: (-packing.weight[i], i)):
        best_gpu, best_slack = None, None
        candidates = list(load) + [cls_gpus[0] for cls_gpus in free_gpus if cls_gpus]
        for gpu in candidates:
            limit = packing.classes[class_of_gpu[gpu]].limit(demand.get(gpu, False) or packing.has_demand[i])
            slack = limit - load.get(gpu, 0) - packing.weight[i]
            if slack >= 0 and (best_slack is None or slack < best_slack):
                best_gpu, best_slack = gpu, slack
        if best_gpu is None:
            return None
        if best_gpu not in load:
            free_gpus[class_of_gpu[best_gpu]].remove(best_gpu)
        gpu_of[i] = best_gpu
        load[best_gpu] = load.get(best_gpu, 0) + packing.weight[i]
        demand[best_gpu] = demand.get(best_gpu, False) or packing.has_demand[i]
    return tuple(gpu_of)


def fractional_pair(columns: Sequence[tuple[int, tuple[int, ...]]], y: Sequence[float]) -> tuple[int, int] | None:
    """The pair whose together-mass ``Σ_{P∋i,j} y_P`` is fractional and closest to ½ (``None`` if none)."""
    mass: dict[tuple[int, int], float] = {}
    for k, (_, models) in enumerate(columns[: len(y)]):  # columns added after the last solve have no y
        if y[k] <= 1e-9:
            continue
        for a in range(len(models)):
            for b in range(a + 1, len(models)):
                key = (models[a], models[b])
                mass[key] = mass.get(key, 0.0) + y[k]
    best, best_distance = None, None
    for key in sorted(mass):
        value = mass[key]
        if 1e-6 < value < 1 - 1e-6:
            distance = abs(value - 0.5)
            if best_distance is None or distance < best_distance:
                best, best_distance = key, distance
    return best


# -- the tree ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeOutcome:
    """``closed`` (proven empty), ``placement``, ``branch`` (on ``pair``) or ``open`` (undecided)."""

    kind: str
    gpu_of: tuple[int, ...] | None = None
    pair: tuple[int, int] | None = None
    lp_value: float = math.inf


def solve_node(master: Master, packing: Packing, rules: Rules, data: IntegerData, rows: TargetRows,
               deadline: float, root: bool) -> NodeOutcome:
    """Column generation at one node, then close, round to a placement, or pick a branching pair."""
    groups = node_groups(packing.num_items, rules)
    for g, members in enumerate(groups.members):
        fitting = [c for c in range(len(packing.classes)) if fits(packing, c, members)]
        if not fitting:
            return NodeOutcome("closed")  # a together-group fits no GPU
        for c in fitting:
            master.add(c, members)
    master.restrict(rules)
    lp_value, y, pi, u = math.inf, [], [], []
    rounds = 0
    while time.perf_counter() < deadline:
        rounds += 1
        lp_value, y, pi, u = master.solve()
        if lp_value <= 1 + LP_TOL:
            break
        if rounds % CERTIFY_EVERY == 0 and lp_value > 1 + CERTIFY_MARGIN and _certified(packing, groups, data, rows, pi, root):
            return NodeOutcome("closed", lp_value=lp_value)
        # The certificate needs LP-optimal duals: search harder for a column before trying it.
        if price(master, packing, groups, pi, u):
            continue
        if _certified(packing, groups, data, rows, pi, root):
            return NodeOutcome("closed", lp_value=lp_value)
        break  # LP optimal above 1 but the rounded duals did not certify it: branch on
    if not y:
        return NodeOutcome("open", lp_value=lp_value)
    if lp_value <= 1 + LP_TOL:
        gpu_of = round_and_repair(packing, master.columns, y)
        if gpu_of is not None and placement_fits_target(data, rows, gpu_of):
            return NodeOutcome("placement", gpu_of, lp_value=lp_value)
    pair = fractional_pair(master.columns, y)
    if pair is None:
        return NodeOutcome("open", lp_value=lp_value)
    return NodeOutcome("branch", pair=pair, lp_value=lp_value)


def _certified(packing: Packing, groups: Groups, data: IntegerData, rows: TargetRows,
               pi: Sequence[float], root: bool) -> bool:
    certified = node_certificate(packing, groups, pi)
    if certified is not None:
        return certified
    # At the root (no rules) colgen's check applies as is; its exact (size, demand) table can decide
    # where a knapsack above stopped at its state budget.
    return root and verify_certificate(data, rows, capacity_classes(data), pi)


@dataclass(frozen=True)
class TreeOutcome:
    status: str  # feasible | infeasible | unknown
    gpu_of: tuple[int, ...] | None
    nodes: int
    root_lp: float
    reason: str = ""


def branch_and_price(master: Master, packing: Packing, data: IntegerData, rows: TargetRows,
                     deadline: float, node_limit: int) -> TreeOutcome:
    """Depth-first Ryan–Foster tree (together child first).  ``infeasible`` iff every node closed."""
    stack = [Rules()]
    nodes, root_lp, undecided = 0, math.inf, False
    while stack:
        if nodes >= node_limit or time.perf_counter() >= deadline:
            return TreeOutcome("unknown", None, nodes, root_lp, "node or time limit")
        rules = stack.pop()
        outcome = solve_node(master, packing, rules, data, rows, deadline, root=nodes == 0)
        if nodes == 0:
            root_lp = outcome.lp_value
        nodes += 1
        if outcome.kind == "placement":
            return TreeOutcome("feasible", outcome.gpu_of, nodes, root_lp)
        if outcome.kind == "branch":
            assert outcome.pair is not None
            stack.append(Rules(rules.together, rules.apart + (outcome.pair,)))
            stack.append(Rules(rules.together + (outcome.pair,), rules.apart))
        elif outcome.kind == "open":
            undecided = True
    if undecided:
        return TreeOutcome("unknown", None, nodes, root_lp, "a node was neither closed nor branched")
    return TreeOutcome("infeasible", None, nodes, root_lp)


# -- the backend ---------------------------------------------------------------------------------
class BranchPriceBackend(TimedBackend):
    """``FeasibilityBackend``: cheap bounds, bin-completion search, column generation, branch and price.

    Keeps a pattern pool per instance (its integer data) across queries: columns
    found at one target seed the LP at the next (re-checked exactly first).
    """

    name = "branch-price"

    def __init__(self, node_limit: int = DEFAULT_NODE_LIMIT, search_nodes: int = SEARCH_NODES) -> None:
        self.node_limit = node_limit
        self.search_nodes = search_nodes
        self._pools: dict[IntegerData, dict[tuple[int, tuple[int, ...]], None]] = {}

    def answer(self, query: FeasibilityQuery, deadline: float
               ) -> tuple[FeasibilityStatus, tuple[int, ...] | None, dict]:
        if query.move_budget is not None or query.instance.scenarios:
            return "unknown", None, {"reason": "bin packing cannot carry the move budget / scenario rows"}
        data = integer_data(query.instance)
        rows = target_rows(data, Fraction(query.target), query.strict)
        num_gpus = len(data.cap_int)
        hint = query.hint
        if hint is not None and len(hint) == len(data.size_int) and all(0 <= g < num_gpus for g in hint) \
                and placement_fits_target(data, rows, hint):
            return "feasible", tuple(hint), {"via": "hint"}
        classes = capacity_classes(data)
        packing = packing_at(rows, classes)
        reason = cheap_infeasibility(packing)
        if reason is not None:
            return "infeasible", None, {"via": "bound", "reason": reason}
        try:
            status, gpu_of, nodes = search_partition(rows, classes, self.search_nodes,
                                                     min(deadline, time.perf_counter() + SEARCH_S))
        except NodeLimitReached:
            pass
        else:
            if status == "infeasible" or (gpu_of is not None and placement_fits_target(data, rows, gpu_of)):
                return status, gpu_of, {"via": "search", "nodes": nodes}
        master = self._seeded_master(data, packing, hint)
        try:
            tree = branch_and_price(master, packing, data, rows, deadline, self.node_limit)
        finally:
            self._remember(data, packing, master)
        details = {"via": "branch-and-price", "nodes": tree.nodes, "columns": len(master.columns),
                   "root_lp": round(tree.root_lp, 9) if math.isfinite(tree.root_lp) else None}
        if tree.reason:
            details["reason"] = tree.reason
        return tree.status, tree.gpu_of, details

    def _seeded_master(self, data: IntegerData, packing: Packing, hint: Sequence[int] | None) -> Master:
        """A master LP with singletons, the hint's GPU loads (where they fit) and the pooled patterns."""
        master = new_master(packing)
        for c in range(len(packing.classes)):
            for i in range(packing.num_items):
                if fits(packing, c, (i,)):
                    master.add(c, (i,))
        candidates: list[tuple[int, tuple[int, ...]]] = []
        if hint is not None and len(hint) == packing.num_items:
            by_gpu: dict[int, list[int]] = {}
            for i, g in enumerate(hint):
                by_gpu.setdefault(g, []).append(i)
            for g, models in sorted(by_gpu.items()):
                if 0 <= g < len(data.cap_int):
                    candidates.append((data.cap_int[g], tuple(models)))
        candidates.extend(self._pools.get(data, {}))
        for _, models in candidates:
            for c in range(len(packing.classes)):
                # A load seen on one GPU size is tried on every class; the exact row decides.
                if fits(packing, c, models):
                    master.add(c, models)
        return master

    def _remember(self, data: IntegerData, packing: Packing, master: Master) -> None:
        pool = self._pools.setdefault(data, {})
        for cls, models in master.columns:
            if len(models) > 1:
                pool[(_class_cap(data, packing.classes[cls]), models)] = None
        while len(pool) > POOL_CAP:
            pool.pop(next(iter(pool)))


def _class_cap(data: IntegerData, cls: BinClass) -> int:
    return data.cap_int[cls.gpus[0]]
