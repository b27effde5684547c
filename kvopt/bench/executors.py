"""Where benchmark tasks run: the ``Executor`` protocol, a local process pool and Ray.

An executor takes plain, picklable tasks and a top-level function, and yields
``(task, result)`` pairs as they finish, in any order; callers put results back in
task order (``CaseTask.index``), so results never depend on the executor or the
number of jobs.

Fault tolerance: ``fn`` reports a program's failure in its result (it does not
raise), so an exception escaping ``fn`` — or a worker process dying under it — is
an infrastructure failure.  Every executor retries such a task once; if the retry
fails too, the task's result is a ``WorkerFailure`` carrying the reason, which the
caller turns into a failed record (``kvopt.bench.runner.run_tasks``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar

from kvopt.model import KvoptError

T = TypeVar("T")
R = TypeVar("R")

EXECUTOR_NAMES = ("local", "ray")
# Attempts per task: the first run plus one retry after an infrastructure failure.
MAX_ATTEMPTS = 2


class Executor(Protocol):
    """Runs ``fn`` on every task; yields ``(task, fn(task))`` in completion order.

    A task whose attempts all failed in the infrastructure yields a ``WorkerFailure``.
    """

    def run(self, tasks: Sequence[T], fn: Callable[[T], R]) -> Iterator[tuple[T, R | "WorkerFailure"]]:
        ...


@dataclass(frozen=True)
class WorkerFailure:
    """The result of a task whose worker died or raised on every attempt (``reason``: the last error)."""

    reason: str
    attempts: int


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM arrived: stop the batch at once (``signum`` says which).

    A ``BaseException`` like ``KeyboardInterrupt``, so that no ``except Exception``
    on the way swallows it.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """While active (main thread only), SIGINT and SIGTERM raise ``Interrupted``; the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the evaluator's own signal handling still stops the pool
        pass


def init_worker() -> None:
    """Pool workers leave Ctrl-C and SIGTERM to the evaluator (which kills them) and die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill every worker now (running calls die with them) and drop the queue, without waiting.

    ``ProcessPoolExecutor`` has no public way to kill its workers before Python 3.14.
    """
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)


def failure_reason(exc: BaseException) -> str:
    """``"ExceptionType: message"`` of the underlying error (first line only).

    Ray wraps an exception raised in a task in a ``RayTaskError`` whose text holds
    the worker's pid and traceback; its ``cause`` is the original exception, whose
    message does not depend on the run.
    """
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        return failure_reason(cause)
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def default_jobs() -> int:
    """``min(2, cpu count)``: the default number of parallel cases."""
    return max(1, min(2, os.cpu_count() or 1))


def make_executor(name: str, jobs: int | None = None, address: str | None = None) -> "LocalExecutor | RayExecutor":
    """The executor called ``name``: ``local`` (``jobs`` processes) or ``ray`` (cluster at ``address``).

    ``jobs`` limits the CPUs of a Ray instance started here (ignored when joining
    a cluster with ``address``); ``address`` is only meaningful for Ray.
    """
    if jobs is not None and jobs < 1:
        raise KvoptError(f"--jobs: must be >= 1, got {jobs}")
    if name == "local":
        if address is not None:
            raise KvoptError("--address: only used with --executor ray")
        return LocalExecutor(jobs or default_jobs())
    if name == "ray":
        return RayExecutor(address=address, num_cpus=None if address else jobs)
    raise KvoptError(f"--executor: unknown executor {name!r}; choose one of {', '.join(EXECUTOR_NAMES)}")


# -- local -----------------------------------------------------------------------------
def call_with_retry(fn: Callable[[T], R], task: T) -> R | WorkerFailure:
    """``fn(task)`` in this process, retried once if it raises."""
    reason = ""
    for _ in range(MAX_ATTEMPTS):
        try:
            return fn(task)
        except Exception as exc:  # noqa: BLE001 - an infrastructure failure becomes a result
            reason = failure_reason(exc)
    return WorkerFailure(reason, MAX_ATTEMPTS)


def run_isolated(fn: Callable[[T], R], task: T, context: Any) -> R | WorkerFailure:
    """``fn(task)`` alone in a fresh worker process, or a ``WorkerFailure`` if it raised or
    the worker died (no other task shares the process, so the failure is this task's own)."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=init_worker)
    try:
        result: R | WorkerFailure = pool.submit(fn, task).result()
    except Exception as exc:  # noqa: BLE001 - includes BrokenProcessPool (the worker died)
        result = WorkerFailure(failure_reason(exc), MAX_ATTEMPTS)
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown()
    return result


@dataclass(frozen=True)
class LocalExecutor:
    """``jobs`` worker processes on this machine (``jobs == 1``: run in this process).

    ``fn`` must be a module-level function and tasks/results picklable.  Workers are
    forked, so they start fast and see the same kvopt code as the caller.  A task
    whose first attempt failed (it raised, or a worker died and broke the pool — then
    every unfinished task is charged, since the culprit is unknown) is retried alone
    in a fresh process, so its second verdict is its own.
    """

    jobs: int = 1

    def run(self, tasks: Sequence[T], fn: Callable[[T], R]) -> Iterator[tuple[T, R | WorkerFailure]]:
        if self.jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield task, call_with_retry(fn, task)
            return
        context = multiprocessing.get_context("fork")
        to_retry: list[T] = []
        pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(tasks)), mp_context=context,
                                   initializer=init_worker)
        try:
            pending: dict[Future, T] = {pool.submit(fn, task): task for task in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    if future.exception() is None:
                        yield task, future.result()
                    else:
                        to_retry.append(task)
        except BaseException:  # Interrupted, KeyboardInterrupt, GeneratorExit: stop within moments
            stop_pool(pool)
            raise
        pool.shutdown()
        for task in to_retry:
            yield task, run_isolated(fn, task, context)


# -- Ray -------------------------------------------------------------------------------
def import_ray() -> Any:
    """The ``ray`` module, or a ``KvoptError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise KvoptError("the ray executor needs `pip install kvopt[ray]`") from None
    return ray


def call_task(fn: Callable[[T], R], task: T) -> R:
    """``fn(task)``: the body of every Ray task."""
    return fn(task)


@dataclass(frozen=True)
class RayExecutor:
    """Tasks as Ray remote tasks (one CPU each), on the cluster at ``address`` or a local Ray.

    Ray is started only if it is not running in this process yet (a caller — a
    test, a notebook — may have started it with its own settings).  Ray's own
    retries are off (``max_retries=0``): a failed task is resubmitted once here,
    exactly like ``LocalExecutor``, and then reported as a ``WorkerFailure``.
    """

    address: str | None = None
    num_cpus: int | None = None

    def ensure_started(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, num_cpus=self.num_cpus, include_dashboard=False,
                     ignore_reinit_error=True, log_to_driver=False)
        return ray

    def run(self, tasks: Sequence[T], fn: Callable[[T], R]) -> Iterator[tuple[T, R | WorkerFailure]]:
        if not tasks:
            return
        ray = self.ensure_started()
        # ``fn`` travels once as an object (it may be any picklable callable, e.g. a partial).
        remote_call = ray.remote(num_cpus=1, max_retries=0)(call_task)
        fn_ref = ray.put(fn)
        # ref -> (task, attempt number)
        pending: dict[Any, tuple[T, int]] = {remote_call.remote(fn_ref, task): (task, 1) for task in tasks}
        try:
            yield from self._collect(ray, remote_call, fn_ref, pending)
        except BaseException:  # interrupted: running tasks are killed, queued ones dropped
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    @staticmethod
    def _collect(ray: Any, remote_call: Any, fn_ref: Any,
                 pending: dict[Any, tuple[T, int]]) -> Iterator[tuple[T, R | WorkerFailure]]:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task, attempt = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...
                    if attempt < MAX_ATTEMPTS:
                        pending[remote_call.remote(fn_ref, task)] = (task, attempt + 1)
                        continue
                    yield task, WorkerFailure(failure_reason(exc), attempt)
                    continue
                yield task, result
