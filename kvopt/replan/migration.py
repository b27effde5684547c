"""A safe order for the moves from the current placement to a target placement.

Semantics (memory is checked in exact arithmetic after every step):

* ``copy`` (default): a model being moved from ``a`` to ``b`` is loaded on ``b``
  while it still serves from ``a``; the step needs ``S_b + s_i <= C_b`` and frees
  ``a`` when it completes.  The model never stops.
* ``stop-start``: a ``move`` step frees ``a`` first (the model is briefly
  unavailable); when no move fits, a model may be ``stop``-ped (unloaded) and
  ``start``-ed later on its target.  Such a plan always exists (stop every
  blocked model, then start them: the states are subsets of the target).

Order: any move whose target has room is made (moves out of GPUs that blocked
moves are waiting for first).  When none has room (a cycle of full GPUs), under
``copy`` one blocked model is routed through a GPU with room (an extra step,
marked ``via_buffer``), chosen so that it unblocks another move; if no model can
be routed anywhere the migration is impossible (``MigrationError``).  Under
``stop-start`` one blocked model is stopped instead.  New models (no current
GPU) are added last: the state before them is a subset of the target, so they fit.
The number of extra steps is kept small greedily (one per blocked cycle), not
proven minimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from kvopt.model import Instance, KvoptError

SEMANTICS = ("copy", "stop-start")


class MigrationError(Exception):
    """No order of steps keeps every GPU within memory (the reason names the blocked models)."""


@dataclass(frozen=True)
class Step:
    """One step: ``move`` (copy or stop-start), ``stop`` (unload), ``start`` (load a stopped model), ``add`` (new)."""

    action: str
    model: str
    source: int | None
    target: int | None
    via_buffer: bool = False  # an extra step through a GPU with room (not part of the final placement)

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "model": self.model, "from": self.source, "to": self.target,
                **({"via_buffer": True} if self.via_buffer else {})}


def check_semantics(semantics: str) -> None:
    if semantics not in SEMANTICS:
        raise KvoptError(f"--migration: expected one of {', '.join(SEMANTICS)}, got {semantics!r}")


class _Cluster:
    """Exact used memory per GPU while the plan is built."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.used = [Fraction(0)] * instance.num_gpus
        for i, m in enumerate(instance.models):
            if m.current_gpu is not None:
                self.used[m.current_gpu] += instance.sizes_exact[i]

    def room(self, gpu: int) -> Fraction:
        return self.instance.capacities_exact[gpu] - self.used[gpu]

    def fits(self, model: int, gpu: int) -> bool:
        return self.instance.sizes_exact[model] <= self.room(gpu)

    def shift(self, model: int, source: int | None, target: int | None) -> None:
        size = self.instance.sizes_exact[model]
        if source is not None:
            self.used[source] -= size
        if target is not None:
            self.used[target] += size


def plan_migration(instance: Instance, target_gpu_of: Sequence[int], semantics: str = "copy") -> list[Step]:
    """Ordered steps from the instance's current placement to ``target_gpu_of`` (see the module docstring)."""
    check_semantics(semantics)
    cluster = _Cluster(instance)
    at: dict[int, int | None] = {i: m.current_gpu for i, m in enumerate(instance.models)}
    pending = [i for i, m in enumerate(instance.models)
               if m.current_gpu is not None and m.current_gpu != target_gpu_of[i]]
    stopped: list[int] = []
    steps: list[Step] = []
    name = [m.name for m in instance.models]
    # Every step (or buffer step) moves a model closer; a model is routed at most once per GPU.
    for _ in range(4 * (len(pending) + 1) * instance.num_gpus + 4):
        if not pending and not stopped:
            break
        ready = _ready_stopped(cluster, stopped, target_gpu_of)
        if ready is not None:
            stopped.remove(ready)
            cluster.shift(ready, None, target_gpu_of[ready])
            at[ready] = target_gpu_of[ready]
            steps.append(Step("start", name[ready], None, target_gpu_of[ready]))
            continue
        move = _next_move(cluster, pending, at, target_gpu_of)
        if move is not None:
            pending.remove(move)
            cluster.shift(move, at[move], target_gpu_of[move])
            steps.append(Step("move", name[move], at[move], target_gpu_of[move]))
            at[move] = target_gpu_of[move]
            continue
        if semantics == "stop-start":
            victim = _stop_choice(cluster, pending, at, target_gpu_of)
            pending.remove(victim)
            cluster.shift(victim, at[victim], None)
            steps.append(Step("stop", name[victim], at[victim], None))
            at[victim] = None
            stopped.append(victim)
            continue
        routed = _buffer_choice(cluster, pending, at, target_gpu_of)
        if routed is None:
            blocked = ", ".join(f"{name[i]!r} {at[i]}->{target_gpu_of[i]}" for i in pending)
            raise MigrationError(f"no order of copies fits in memory: every pending move is blocked "
                                 f"({blocked}) and no GPU has room to stage one of them; "
                                 "try --migration stop-start")
        model, buffer = routed
        cluster.shift(model, at[model], buffer)
        steps.append(Step("move", name[model], at[model], buffer, via_buffer=True))
        at[model] = buffer
    else:  # pragma: no cover - the bound above is never reached by the rules
        raise MigrationError("migration planning did not converge")
    for i, m in enumerate(instance.models):
        if m.current_gpu is None:
            cluster.shift(i, None, target_gpu_of[i])
            steps.append(Step("add", m.name, None, target_gpu_of[i]))
    return steps


def _ready_stopped(cluster: _Cluster, stopped: list[int], target: Sequence[int]) -> int | None:
    return next((i for i in stopped if cluster.fits(i, target[i])), None)


def _next_move(cluster: _Cluster, pending: list[int], at: dict[int, int | None],
               target: Sequence[int]) -> int | None:
    """A move whose target has room; first those leaving a GPU that a blocked move waits for."""
    fitting = [i for i in pending if cluster.fits(i, target[i])]
    if not fitting:
        return None
    wanted = {target[i] for i in pending if i not in fitting}
    return min(fitting, key=lambda i: (at[i] not in wanted, -cluster.instance.sizes_exact[i], i))


def _unblocks(cluster: _Cluster, model: int, source: int | None, dest: int | None, pending: list[int],
              at: dict[int, int | None], target: Sequence[int]) -> bool:
    """Whether taking ``model`` from ``source`` to ``dest`` lets another pending move (or its own) fit."""
    cluster.shift(model, source, dest)
    try:
        return any(cluster.fits(j, target[j]) for j in pending if j != model or dest is not None)
    finally:
        cluster.shift(model, dest, source)


def _buffer_choice(cluster: _Cluster, pending: list[int], at: dict[int, int | None],
                   target: Sequence[int]) -> tuple[int, int] | None:
    """A blocked model and a GPU with room to stage it, preferring a choice that unblocks a move."""
    options = [(i, h) for i in pending for h in range(cluster.instance.num_gpus)
               if h not in (at[i], target[i]) and cluster.fits(i, h)]
    if not options:
        return None
    useful = [(i, h) for i, h in options if _unblocks(cluster, i, at[i], h, pending, at, target)]
    pool = useful or options
    return min(pool, key=lambda ih: (-cluster.instance.sizes_exact[ih[0]], -cluster.room(ih[1]), ih))


def _stop_choice(cluster: _Cluster, pending: list[int], at: dict[int, int | None], target: Sequence[int]) -> int:
    """The blocked model to stop: one whose unloading unblocks a move, largest first."""
    useful = [i for i in pending if _unblocks(cluster, i, at[i], None, pending, at, target)]
    return min(useful or pending, key=lambda i: (-cluster.instance.sizes_exact[i], i))


def replay_plan(instance: Instance, target_gpu_of: Sequence[int], steps: Sequence[Step],
                semantics: str = "copy") -> None:
    """Replay ``steps`` in exact arithmetic; ``MigrationError`` at the first step that breaks memory or the end state.

    ``copy`` moves need room on the target while the source still holds the model.
    """
    cluster = _Cluster(instance)
    index = instance.index_of
    at: dict[int, int | None] = {i: m.current_gpu for i, m in enumerate(instance.models)}
    for k, step in enumerate(steps):
        i = index[step.model]
        if at[i] != step.source:
            raise MigrationError(f"step {k}: model {step.model!r} is on {at[i]}, not {step.source}")
        if step.target is not None and not cluster.fits(i, step.target):
            raise MigrationError(f"step {k}: GPU {step.target} has no room for model {step.model!r}")
        if step.action == "move" and semantics == "stop-start" and step.target is None:
            raise MigrationError(f"step {k}: a move needs a target")
        cluster.shift(i, step.source, step.target)
        at[i] = step.target
    wrong = [instance.models[i].name for i, g in at.items() if g != target_gpu_of[i]]
    if wrong:
        raise MigrationError(f"the plan does not end at the target placement (models {wrong})")
