"""The interface between the bisection driver and a feasibility backend.

A backend answers one question: *is there a placement with every GPU at
``KVPR_g <= T``* (or ``< T`` when ``strict``) for a rational target ``T``?  It
builds one model (assignment, set partitioning, ...), solves it and reads the
placement back.  It knows nothing about bisection, bounds or proofs; the driver
(``kvopt.exact.bisection``) knows nothing about which backend it drives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, Protocol

from kvopt.model import Instance

FeasibilityStatus = Literal["feasible", "infeasible", "unknown"]


@dataclass(frozen=True)
class MoveBudget:
    """At most ``limit`` move cost: ``sum_i cost[i]·(1 - x_{i,current[i]}) <= limit`` (all integers).

    ``current[i]`` is model ``i``'s GPU now (``None``: a new model, placing it costs nothing).
    """

    current: tuple[int | None, ...]
    cost: tuple[int, ...]
    limit: int


@dataclass(frozen=True)
class FeasibilityQuery:
    """Is there a placement with ``KVPR_g <= target`` (``< target`` if ``strict``) on every GPU?"""

    instance: Instance
    target: Fraction
    strict: bool = False
    hint: tuple[int, ...] | None = None  # a placement to warm-start from (GPU per model)
    time_limit_s: float = 60.0
    seed: int = 0
    workers: int = 1
    move_budget: MoveBudget | None = None  # one more row (re-placement); only assignment backends carry it


@dataclass(frozen=True)
class FeasibilityAnswer:
    """``feasible`` comes with a placement; ``infeasible`` is a proof; ``unknown`` is neither."""

    status: FeasibilityStatus
    gpu_of: tuple[int, ...] | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


class FeasibilityBackend(Protocol):
    """One job: build the model for a query, solve it, read the result back."""

    name: str

    def check(self, query: FeasibilityQuery) -> FeasibilityAnswer: ...


class TimedBackend:
    """The part every backend shares: timing a check and giving its body one deadline.

    A subclass implements ``answer(query, deadline)`` (``time.perf_counter()``
    seconds) and returns ``(status, gpu_of, details)``; the deadline counts model
    building too, so a backend's limit is wall time, not solver time.
    ``time_limit_s`` overrides the query's limit when set.
    """

    name: str = "backend"
    time_limit_s: float | None = None

    def check(self, query: FeasibilityQuery) -> FeasibilityAnswer:
        start = time.perf_counter()
        limit = self.time_limit_s if self.time_limit_s is not None else query.time_limit_s
        status, gpu_of, details = self.answer(query, start + limit)
        return FeasibilityAnswer(status, gpu_of, time.perf_counter() - start, details)

    def answer(self, query: FeasibilityQuery, deadline: float
               ) -> tuple[FeasibilityStatus, tuple[int, ...] | None, dict[str, Any]]:
        raise NotImplementedError


def seconds_left(deadline: float) -> float:
    """Time until ``deadline`` (``time.perf_counter`` clock), never below a solver's minimum."""
    return max(MIN_LIMIT_S, deadline - time.perf_counter())


MIN_LIMIT_S = 0.01  # solvers reject a zero or negative limit
