"""Session set-up shared by every test module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_knapsack() -> None:
    """Compile (or load from numba's cache) the branch-and-price knapsack before any test runs.

    The first call on a fresh machine compiles for a few seconds (README, *Decisions*);
    tests that check time limits should measure the solver, not that one-off compile.
    """
    from kvopt.exact.knapsack import dp_knapsack

    assert dp_knapsack([3, 4, 5], [3, 4, 5], [frozenset({1}), frozenset({0}), frozenset()], 8).value == 8
