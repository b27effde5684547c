"""Node-bounded exact packing search at a target, and the prove-or-improve loop built on it.

At target ``T`` a placement with every ``KVPR_g <= T`` is a bin packing of items
``w_i = n_i + T s_i`` into bins of capacity ``T C_g`` (see ``kvopt.heuristics.construct``).
``search_at_target`` decides it by depth-first search with a node budget: it returns a
packing, or a proof that none exists (the search finished), or neither (budget spent).
``tighten_by_search`` asks for peak ``< P (1 - rel_step)`` again and again; on small
instances this reaches (and proves) the optimum within ``rel_step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kvopt.evaluate import peak_kvpr
from kvopt.model import Instance, KvoptError, Placement


# One recursion level per item; beyond this many items the search answers "unknown"
# (it is meant for small instances, and Python's recursion limit is ~1000).
MAX_DEPTH = 600


@dataclass(frozen=True)
class SearchAnswer:
    """Depth-first packing at one target: a packing, or a proof there is none, or neither (budget)."""

    gpu_of: tuple[int, ...] | None
    proven_infeasible: bool
    nodes: int


class PackingSearch:
    """Depth-first bin packing of items ``n_i + T s_i`` into slacks ``T C_g``.

    A GPU's future is fully described by its slack ``T (C_g - S_g) - N_g`` (memory is
    implied), so GPUs with equal slack are interchangeable: only one of them is tried
    per item.  A branch is cut when the remaining weight exceeds the total slack.
    Items go largest first; GPUs are tried loosest first (worst fit: balanced packings,
    so a packing found at ``T`` tends to have a real peak well below ``T``).
    """

    def __init__(self, weights: list[float], capacities: list[float], target: float, node_limit: int,
                 order: list[int] | None = None, tightest_first: bool = False) -> None:
        self.order = order if order is not None else sorted(range(len(weights)), key=lambda i: (-weights[i], i))
        self.tightest_first = tightest_first
        self.weights = weights
        self.slack = [target * cap for cap in capacities]
        # suffix[k] = total weight of the items from position k on.
        self.suffix = [0.0] * (len(self.order) + 1)
        for pos in range(len(self.order) - 1, -1, -1):
            self.suffix[pos] = self.suffix[pos + 1] + weights[self.order[pos]]
        self.lightest = min(weights) if weights else 0.0
        self.gpu_of = [0] * len(weights)
        self.node_limit = node_limit
        self.nodes = 0
        self.out_of_budget = False

    def run(self) -> SearchAnswer:
        if len(self.order) > MAX_DEPTH:
            return SearchAnswer(None, False, 0)  # too deep for recursion: "unknown"
        found = self._place(0, sum(self.slack))
        if found:
            return SearchAnswer(tuple(self.gpu_of), False, self.nodes)
        return SearchAnswer(None, not self.out_of_budget, self.nodes)

    def _place(self, pos: int, total_slack: float) -> bool:
        if pos == len(self.order):
            return True
        if self.suffix[pos] > total_slack:
            return False
        # Slack on a GPU that not even the lightest item fits into is wasted.
        lightest = self.lightest
        if self.suffix[pos] > sum(s for s in self.slack if s >= lightest):
            return False
        self.nodes += 1
        if self.nodes > self.node_limit:
            self.out_of_budget = True
            return False
        model = self.order[pos]
        weight = self.weights[model]
        slack = self.slack
        options = sorted(((slack[g], g) for g in range(len(slack)) if slack[g] >= weight),
                         reverse=not self.tightest_first)
        tried_slack = None
        for gpu_slack, gpu in options:
            if gpu_slack == tried_slack:
                continue  # same slack as a GPU already tried: same subtree
            tried_slack = gpu_slack
            slack[gpu] = gpu_slack - weight
            self.gpu_of[model] = gpu
            if self._place(pos + 1, total_slack - weight):
                return True
            slack[gpu] = gpu_slack
            if self.out_of_budget:
                return False
        return False


def search_at_target(instance: Instance, target: float, node_limit: int) -> SearchAnswer:
    """Bounded exact search for a placement with every ``KVPR_g <= T`` (``T > 0``)."""
    if not target > 0:
        raise KvoptError(f"target: must be > 0, got {target!r}")
    weights = (instance.demands + target * instance.sizes).tolist()
    return PackingSearch(weights, instance.capacities.tolist(), target, node_limit).run()


def tighten_by_search(instance: Instance, placement: Placement, *, node_limit: int = 20000,
                      max_calls: int = 12, rel_step: float = 1e-7) -> Placement:
    """Prove-or-improve: search for a placement with peak ``< P (1 - rel_step)``; on success
    take it (its real peak is the new ``P``) and repeat, until the search proves there is
    none, runs out of nodes, or ``max_calls`` searches were made.  Never returns a worse peak.
    """
    best = placement
    best_peak = peak_kvpr(instance, placement.gpu_of)
    for _ in range(max_calls):
        if not (math.isfinite(best_peak) and best_peak > 0):
            break
        answer = search_at_target(instance, best_peak * (1.0 - rel_step), node_limit)
        if answer.gpu_of is None:
            break
        peak = peak_kvpr(instance, answer.gpu_of)
        if not peak < best_peak:
            break
        best, best_peak = Placement(answer.gpu_of), peak
    return best
