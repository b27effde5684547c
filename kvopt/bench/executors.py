"""Where benchmark tasks run: the ``Executor`` protocol and a local process pool.

An executor takes plain, picklable tasks and a top-level function, and yields
``(task, result)`` pairs as they finish, in any order; callers put results back in
task order (``CaseTask.index``), so results never depend on the executor or the
number of jobs.  Other executors (a Ray cluster, a runner that appends JSONL and
resumes) only need the same ``run`` method.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` on every task; yields ``(task, fn(task))`` in completion order."""

    def run(self, tasks: Sequence[T], fn: Callable[[T], R]) -> Iterator[tuple[T, R]]:
        ...


def default_jobs() -> int:
    """``min(2, cpu count)``: the default number of parallel cases."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class LocalExecutor:
    """``jobs`` worker processes on this machine (``jobs == 1``: run in this process).

    ``fn`` must be a module-level function and tasks/results picklable.  Workers are
    forked, so they start fast and see the same kvopt code as the caller.
    """

    jobs: int = 1

    def run(self, tasks: Sequence[T], fn: Callable[[T], R]) -> Iterator[tuple[T, R]]:
        if self.jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, fn(task)
            return
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(tasks)), mp_context=context) as pool:
            pending: dict[Future, T] = {pool.submit(fn, task): task for task in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
