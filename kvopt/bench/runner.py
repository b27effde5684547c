"""Run methods on cases: one task per (suite, case, method), one plain record per task.

Tasks and records are plain picklable data (so any ``Executor`` — a local process
pool now, Ray or a resumable JSONL runner later — can carry them).  Every
placement, whatever produced it, is validated and evaluated here by
``kvopt.evaluate`` (the only place KVPR is computed); a method's own numbers are
never trusted.

A record holds: ``suite``, ``suite_key``, ``case``, ``method``, ``kind``,
``role`` (``method``, or ``reference`` for exact solves made only to get gaps),
``num_models``, ``num_gpus``, ``valid``, ``failure`` (a code), ``reason``,
``status``, ``peak_kvpr``, ``peak_kvpr_exact`` (``"p/q"``), ``peak_gpu``,
``gpu_kvpr``, ``gpu_of``, ``lower_bound``, ``lower_bound_exact``, ``seconds``
and, for failed programs, ``stdout_tail``/``stderr_tail``.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from kvopt.bench.cases import SuiteCases
from kvopt.bench.executors import Executor, Interrupted, WorkerFailure
from kvopt.bench.programs import (ProgramInfo, ProgramSpec, clean_text, probe_program, resolve_program,
                                  run_program, unsupported_reason)
from kvopt.bench.sandbox import Limits
from kvopt.evaluate import check_gpu_lists, evaluate, format_fraction
from kvopt.io import instance_from_dict, instance_to_dict
from kvopt.model import Instance, KvoptError, Placement, PlacementError

DEFAULT_EXACT_TIME_LIMIT_S = 60.0

# PlacementError messages from kvopt.evaluate, by failure code.
PLACEMENT_FAILURES = (
    ("placed twice", "placed_twice"),
    ("missing from the placement", "dropped_model"),
    ("GPU index", "bad_gpu_id"),
    ("memory overflow", "overflow"),
    ("unknown model", "bad_output"),
)


@dataclass(frozen=True)
class MethodSpec:
    """A method to run: ``kind`` is ``heuristic``, ``exact``, ``file`` or ``import``.

    ``name`` is the label in reports (for programs, the path or import path as the
    user gave it); ``style``/``accepts_gpu_mem`` come from probing a program.
    """

    name: str
    kind: str
    target: str
    style: str = ""
    accepts_gpu_mem: bool = False

    @property
    def is_program(self) -> bool:
        return self.kind in ("file", "import")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class RunSettings:
    """Limits for programs and the time limit of exact solves."""

    limits: Limits = field(default_factory=Limits)
    exact_time_limit_s: float = DEFAULT_EXACT_TIME_LIMIT_S

    def to_json(self) -> dict[str, Any]:
        isolation = self.limits.isolation
        return {"timeout_s": self.limits.timeout_s, "memory_mb": self.limits.memory_mb,
                "exact_time_limit_s": self.exact_time_limit_s,
                "isolation": isolation.to_json() if isolation is not None else None}


@dataclass(frozen=True)
class CaseTask:
    """One method on one case.  ``index`` fixes the order of results (independent of scheduling)."""

    index: int
    suite: str
    suite_key: str
    case: str
    method: MethodSpec
    role: str
    instance: Mapping[str, Any]
    settings: RunSettings


@dataclass(frozen=True)
class Skipped:
    """A (case, method) pair not run, and why (e.g. heterogeneous GPUs for a prism program)."""

    suite: str
    case: str
    method: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"suite": self.suite, "case": self.case, "method": self.method, "reason": self.reason}


# -- method resolution ---------------------------------------------------------------
def method_from_name(name: str) -> MethodSpec:
    """A built-in method: a kvopt heuristic name or ``exact``."""
    if name == "exact":
        return MethodSpec("exact", "exact", "exact")
    from kvopt.bench.programs import heuristic_names

    known = heuristic_names()
    if name in known:
        return MethodSpec(name, "heuristic", name)
    raise KvoptError(f"unknown method {name!r}; known methods: {', '.join([*known, 'exact'])} "
                     "(give programs with --programs)")


def method_from_program(text: str, limits: Limits) -> MethodSpec:
    """A program argument (file, import path or heuristic name), probed in the sandbox."""
    spec = resolve_program(text)
    info = probe_program(spec, limits)
    return method_from_spec(spec, info)


def method_from_spec(spec: ProgramSpec, info: ProgramInfo) -> MethodSpec:
    if spec.kind == "heuristic":
        return MethodSpec(spec.label, "heuristic", spec.target)
    return MethodSpec(spec.label, spec.kind, spec.target, info.style, info.accepts_gpu_mem)


def method_unsupported(method: MethodSpec, instance: Instance) -> str | None:
    if not method.is_program:
        return None
    return unsupported_reason(ProgramInfo(method.style, method.accepts_gpu_mem), instance)


# -- task building -------------------------------------------------------------------
def build_tasks(
    suites: Sequence[SuiteCases],
    methods: Sequence[MethodSpec],
    settings: RunSettings,
    *,
    reference_cases: Iterable[tuple[str, str]] = (),
) -> tuple[list[CaseTask], list[Skipped]]:
    """Tasks in a fixed order: suite, case, then the methods in the given order.

    ``reference_cases`` (``(suite_key, case)`` pairs) get an extra exact solve with
    role ``reference`` (``--solve-missing``).
    """
    wanted_refs = set(reference_cases)
    exact = MethodSpec("exact", "exact", "exact")
    tasks: list[CaseTask] = []
    skipped: list[Skipped] = []
    for suite in suites:
        for instance in suite.instances:
            data = instance_to_dict(instance)
            for method in methods:
                reason = method_unsupported(method, instance)
                if reason is not None:
                    skipped.append(Skipped(suite.name, instance.name, method.name, reason))
                    continue
                tasks.append(CaseTask(len(tasks), suite.name, suite.key, instance.name, method, "method",
                                      data, settings))
            if (suite.key, instance.name) in wanted_refs:
                tasks.append(CaseTask(len(tasks), suite.name, suite.key, instance.name, exact, "reference",
                                      data, settings))
    return tasks, skipped


class BatchInterrupted(Exception):
    """A batch stopped by SIGINT/SIGTERM: the records that finished (in task order) and the signal."""

    def __init__(self, records: list[dict[str, Any]], signum: int):
        super().__init__(signal.Signals(signum).name)
        self.records = records
        self.signum = signum


def run_tasks(tasks: Sequence[CaseTask], executor: Executor,
              on_done: Callable[[CaseTask, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every task; records come back in task order whatever the executor's scheduling.

    On Ctrl-C or SIGTERM the executor is closed at once (it kills its running
    calls) and ``BatchInterrupted`` carries the records finished so far.
    """
    by_index: dict[int, dict[str, Any]] = {}
    results = executor.run(tasks, run_task)
    try:
        for task, outcome in results:
            record = worker_failed_record(task, outcome) if isinstance(outcome, WorkerFailure) else outcome
            by_index[task.index] = record
            if on_done is not None:
                on_done(task, record)
    except (Interrupted, KeyboardInterrupt) as exc:
        close = getattr(results, "close", None)
        if close is not None:
            close()
        finished = [by_index[t.index] for t in tasks if t.index in by_index]
        raise BatchInterrupted(finished, getattr(exc, "signum", signal.SIGINT)) from None
    return [by_index[t.index] for t in tasks]


def worker_failed_record(task: CaseTask, failure: WorkerFailure) -> dict[str, Any]:
    """The failed record of a task whose worker died or raised on every attempt."""
    base = base_record(task, instance_from_dict(task.instance))
    return failed(base, "worker_failed", f"worker failed: {failure.reason} (after {failure.attempts} attempts)",
                  0.0)


# -- one task ------------------------------------------------------------------------
def run_task(task: CaseTask) -> dict[str, Any]:
    """Run one method on one case and return its validated record (never raises)."""
    instance = instance_from_dict(task.instance)
    base = base_record(task, instance)
    try:
        if task.method.kind == "heuristic":
            return run_heuristic_task(base, instance, task.method.target)
        if task.method.kind == "exact":
            return run_exact_task(base, instance, task.settings.exact_time_limit_s)
        spec = ProgramSpec(task.method.kind, task.method.target, task.method.name)
        return run_program_task(base, instance, spec, task.settings.limits)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop the others
        return failed(base, "error", f"{type(exc).__name__}: {exc}", 0.0)


def base_record(task: CaseTask, instance: Instance) -> dict[str, Any]:
    return {
        "suite": task.suite, "suite_key": task.suite_key, "case": task.case, "method": task.method.name,
        "kind": task.method.kind, "role": task.role,
        "num_models": instance.num_models, "num_gpus": instance.num_gpus,
    }


def failed(base: Mapping[str, Any], failure: str, reason: str, seconds: float,
           status: str = "failed", **extra: Any) -> dict[str, Any]:
    """A record for a case without a valid placement (the reason cleaned: it may quote the program)."""
    return {**base, "valid": False, "failure": failure, "reason": clean_text(reason), "status": status,
            "peak_kvpr": None, "peak_kvpr_exact": None, "peak_gpu": None, "gpu_kvpr": None, "gpu_of": None,
            "lower_bound": extra.pop("lower_bound", None), "lower_bound_exact": extra.pop("lower_bound_exact", None),
            "seconds": seconds, **extra}


def placement_failure_code(message: str) -> str:
    for needle, code in PLACEMENT_FAILURES:
        if needle in message:
            return code
    return "invalid_placement"


def validated(base: Mapping[str, Any], instance: Instance, gpu_lists: Mapping[Any, Sequence[str]],
              seconds: float, status: str = "feasible", **extra: Any) -> dict[str, Any]:
    """Check ``{gpu: [model names]}`` and evaluate it; a failed record if it is not a valid placement."""
    try:
        placement = check_gpu_lists(instance, gpu_lists)
    except PlacementError as exc:
        return failed(base, placement_failure_code(str(exc)), str(exc), seconds, **extra)
    ev = evaluate(instance, placement)
    return {**base, "valid": True, "failure": None, "reason": None, "status": status,
            "peak_kvpr": ev.peak_kvpr, "peak_kvpr_exact": format_fraction(ev.peak_kvpr_exact),
            "peak_gpu": ev.peak_gpu, "gpu_kvpr": list(ev.gpu_kvpr), "gpu_of": list(placement.gpu_of),
            "lower_bound": extra.pop("lower_bound", None), "lower_bound_exact": extra.pop("lower_bound_exact", None),
            "seconds": seconds, **extra}


def gpu_lists_of(instance: Instance, placement: Placement) -> dict[Any, list[str]]:
    """``{gpu: [model names]}`` of a kvopt placement, so that it is checked like a program's answer."""
    lists: dict[Any, list[str]] = {}
    for model, gpu in zip(instance.models, placement.gpu_of):
        lists.setdefault(gpu, []).append(model.name)
    return lists


def run_heuristic_task(base: dict[str, Any], instance: Instance, name: str) -> dict[str, Any]:
    """A built-in heuristic, run in this process (trusted code: no sandbox, no timeout)."""
    from kvopt.heuristics import run_heuristic

    start = time.perf_counter()
    try:
        result = run_heuristic(name, instance)
    except KvoptError as exc:
        return failed(base, "no_placement", str(exc), time.perf_counter() - start)
    # The heuristic's own time (evaluation excluded), as ``kvopt solve`` reports it.
    seconds = result.seconds
    if result.placement is None:
        reason = str(result.details.get("reason", f"no placement (status {result.status})"))
        return failed(base, "no_placement", reason, seconds, status=result.status)
    return validated(base, instance, gpu_lists_of(instance, result.placement), seconds)


def run_exact_task(base: dict[str, Any], instance: Instance, time_limit_s: float) -> dict[str, Any]:
    """``solve_exact`` with its lower bound; the placement is re-evaluated, its status kept."""
    from kvopt.exact import solve_exact

    start = time.perf_counter()
    result = solve_exact(instance, time_limit_s=time_limit_s)
    seconds = time.perf_counter() - start
    bound = {"lower_bound": result.lower_bound,
             "lower_bound_exact": format_fraction(result.lower_bound_exact)
             if result.lower_bound_exact is not None else None}
    if result.placement is None:
        reason = ("proven infeasible" if result.status == "infeasible"
                  else f"no placement within {time_limit_s:g} s (status {result.status})")
        return failed(base, "no_placement", reason, seconds, status=result.status, **bound)
    return validated(base, instance, gpu_lists_of(instance, result.placement), seconds,
                     status=result.status, **bound)


def run_program_task(base: dict[str, Any], instance: Instance, spec: ProgramSpec, limits: Limits) -> dict[str, Any]:
    """A user program in the sandbox; its answer is validated here."""
    outcome = run_program(spec, instance, limits)
    tails = {"stdout_tail": outcome.stdout_tail, "stderr_tail": outcome.stderr_tail}
    # The CPU time of the call's whole process tree, beside its wall time (busy workers show here).
    cpu = {"cpu_seconds": outcome.cpu_seconds}
    if outcome.gpu_lists is None:
        return failed(base, outcome.failure or "error", outcome.reason or "failed", outcome.seconds, **tails, **cpu)
    record = validated(base, instance, outcome.gpu_lists, outcome.seconds, **cpu)
    if not record["valid"]:
        record.update(tails)
    return record
