"""The suite registry: a name -> ``Suite`` table that generator modules add themselves to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kvopt.model import Instance


@dataclass(frozen=True)
class Suite:
    """A named suite: its generator and what it is for."""

    name: str
    description: str
    generate: Callable[[], list[Instance]]
    small: bool = True  # small enough for exact reference optima / CI baselines


SUITES: dict[str, Suite] = {}


def register(suite: Suite) -> Suite:
    SUITES[suite.name] = suite
    return suite
