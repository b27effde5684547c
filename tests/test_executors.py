"""Executors (local, Ray), retry of infrastructure failures, and the resumable JSONL journal."""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kvopt.bench.executors import (LocalExecutor, RayExecutor, WorkerFailure, failure_reason, make_executor)
from kvopt.bench.journal import JOURNAL_NAME, JournaledExecutor, read_journal, record_key
from kvopt.bench.results import dumps, read_results, restrict, run_benchmark
from kvopt.bench.runner import RunSettings, build_tasks, method_from_name, run_task, run_tasks
from kvopt.bench.cases import load_all
from kvopt.cli import main
from kvopt.model import KvoptError

CASES = {"adrs50": ["adrs50_00", "adrs50_01", "adrs50_02", "adrs50_03"]}
METHODS = ("greedy", "pipeline")
TIMING_KEYS = {"seconds", "wall_seconds", "cpu_seconds"}


def without_timings(value: Any) -> Any:
    """``value`` with every ``seconds``/``wall_seconds``/``cpu_seconds`` field dropped (the run-dependent ones)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def results_text(document: dict) -> str:
    """The results.json text of a document, timings dropped."""
    return json.dumps(without_timings(json.loads(dumps(document))), sort_keys=True)


# -- task functions (module level: picklable for worker processes) ----------------------
def count_attempt(marker_dir: Path, task: int) -> int:
    """Record one attempt of ``task`` as a file; the number of attempts so far."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    attempts = len(list(marker_dir.glob(f"{task}-*"))) + 1
    (marker_dir / f"{task}-{attempts}-{os.getpid()}").touch()
    return attempts


def square_flaky(marker_dir: Path, failing: frozenset, task: int) -> int:
    """``task**2``; the tasks in ``failing`` raise on their first attempt."""
    if count_attempt(marker_dir, task) == 1 and task in failing:
        raise OSError(f"lost connection on task {task}")
    return task * task


def square_broken(marker_dir: Path, broken: frozenset, task: int) -> int:
    """``task**2``; the tasks in ``broken`` always raise."""
    count_attempt(marker_dir, task)
    if task in broken:
        raise OSError(f"disk gone on task {task}")
    return task * task


def square_dying_once(marker_dir: Path, dying: frozenset, task: int) -> int:
    """``task**2``; the worker process running a task of ``dying`` dies on its first attempt."""
    if count_attempt(marker_dir, task) == 1 and task in dying:
        os._exit(3)  # a crash: no exception, the worker process is gone
    return task * task


def square_always_dying(marker_dir: Path, dying: frozenset, task: int) -> int:
    count_attempt(marker_dir, task)
    if task in dying:
        os._exit(3)
    return task * task


def attempts_of(marker_dir: Path, task: int) -> int:
    return len(list(marker_dir.glob(f"{task}-*")))


def run_task_flaky(marker_dir: Path, failing_cases: frozenset, task) -> dict:
    """``run_task``; the cases in ``failing_cases`` raise on their first attempt."""
    marker = marker_dir / f"{task.case}-{task.method.name}"
    if task.case in failing_cases and not marker.exists():
        marker_dir.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise ConnectionError("worker lost")
    return run_task(task)


def run_task_broken(broken_case: str, task) -> dict:
    if task.case == broken_case:
        raise ConnectionError("worker lost")
    return run_task(task)


# -- retry in the local executor ----------------------------------------------------------
@pytest.mark.parametrize("jobs", [1, 2])
def test_local_retries_a_failed_task_once(tmp_path: Path, jobs: int) -> None:
    fn = partial(square_flaky, tmp_path, frozenset({2, 4}))
    results = dict(LocalExecutor(jobs).run(list(range(6)), fn))
    assert results == {t: t * t for t in range(6)}
    assert [attempts_of(tmp_path, t) for t in range(6)] == [1, 1, 2, 1, 2, 1]


@pytest.mark.parametrize("jobs", [1, 2])
def test_local_reports_a_task_failing_twice(tmp_path: Path, jobs: int) -> None:
    fn = partial(square_broken, tmp_path, frozenset({1}))
    results = dict(LocalExecutor(jobs).run([0, 1, 2], fn))
    assert results[0] == 0 and results[2] == 4
    assert results[1] == WorkerFailure("OSError: disk gone on task 1", 2)
    assert attempts_of(tmp_path, 1) == 2


def test_local_survives_a_dying_worker(tmp_path: Path) -> None:
    """A worker that dies breaks the pool; the unfinished tasks are retried, each in its own process."""
    fn = partial(square_dying_once, tmp_path, frozenset({3}))
    results = dict(LocalExecutor(2).run(list(range(8)), fn))
    assert results == {t: t * t for t in range(8)}
    assert attempts_of(tmp_path, 3) == 2


def test_local_reports_a_worker_dying_twice(tmp_path: Path) -> None:
    fn = partial(square_always_dying, tmp_path, frozenset({1}))
    results = dict(LocalExecutor(2).run([0, 1, 2, 3], fn))
    assert isinstance(results[1], WorkerFailure) and "BrokenProcessPool" in results[1].reason
    assert attempts_of(tmp_path, 1) == 2
    # Other tasks charged for the broken pool succeed on their isolated retry.
    assert {t: results[t] for t in (0, 2, 3)} == {0: 0, 2: 4, 3: 9}


def test_failure_reason_is_the_first_line() -> None:
    assert failure_reason(ValueError("bad\ntraceback...")) == "ValueError: bad"
    assert failure_reason(RuntimeError()) == "RuntimeError"


# -- records of failed workers --------------------------------------------------------------
def small_tasks(cases: int = 2):
    suites = [restrict(s, CASES["adrs50"][:cases]) for s in load_all(["adrs50"])]
    tasks, _ = build_tasks(suites, [method_from_name(m) for m in METHODS], RunSettings())
    return tasks


def test_worker_failure_becomes_a_failed_record() -> None:
    tasks = small_tasks()
    broken = tasks[1].case
    records = run_tasks(tasks, FnExecutor(partial(run_task_broken, broken)))
    normal = run_task(tasks[0])
    for task, record in zip(tasks, records):
        assert record["method"] == task.method.name and record["case"] == task.case
        if task.case == broken:
            assert record["valid"] is False and record["failure"] == "worker_failed"
            assert record["reason"] == "worker failed: ConnectionError: worker lost (after 2 attempts)"
            assert set(record) == set(normal)  # shaped like a normal record
        else:
            assert record["valid"] is True


class FnExecutor:
    """``LocalExecutor(1)`` with ``fn`` replaced: lets a test inject failures into ``run_tasks``."""

    def __init__(self, fn):
        self.fn = fn
        self.ran: list = []

    def run(self, tasks, fn):
        self.ran.extend(tasks)
        yield from LocalExecutor(1).run(tasks, self.fn)


# -- journal and resume --------------------------------------------------------------------
def test_journal_resume_gives_the_uninterrupted_results(tmp_path: Path) -> None:
    methods = [method_from_name(m) for m in METHODS]
    settings = RunSettings()
    full = run_benchmark(["adrs50"], methods, settings, executor=LocalExecutor(2), only_cases=CASES)

    journal = tmp_path / JOURNAL_NAME
    first = run_benchmark(["adrs50"], methods, settings, only_cases=CASES,
                          executor=JournaledExecutor.open(LocalExecutor(2), journal))
    lines = journal.read_text().splitlines()
    assert len(lines) == len(CASES["adrs50"]) * len(METHODS)
    assert results_text(first) == results_text(full)

    # Interrupted: half the lines kept, plus half of the next line (killed mid-write).
    kept = len(lines) // 2
    journal.write_text("\n".join(lines[:kept]) + "\n" + lines[kept][: len(lines[kept]) // 2])
    assert len(read_journal(journal)) == kept
    counting = FnExecutor(run_task)
    resumed = run_benchmark(["adrs50"], methods, settings, only_cases=CASES,
                            executor=JournaledExecutor.open(counting, journal, resume=True))
    assert len(counting.ran) == len(lines) - kept  # only the missing tasks ran
    assert results_text(resumed) == results_text(full)
    # The journal is whole again: one line per task, readable.
    journaled = read_journal(journal)
    assert len(journal.read_text().splitlines()) == len(lines) == len(journaled)
    assert {record_key(r) for r in full["cases"]} == set(journaled)


def test_journal_records_a_retried_and_a_failed_worker(tmp_path: Path) -> None:
    tasks = small_tasks(2)
    flaky_case, broken_case = tasks[0].case, tasks[-1].case
    journal = tmp_path / JOURNAL_NAME
    executor = JournaledExecutor.open(FnExecutor(partial(run_task_flaky, tmp_path / "m", frozenset({flaky_case}))),
                                      journal)
    records = run_tasks(tasks, executor)
    assert all(r["valid"] for r in records)  # the first failure was retried
    assert len(list((tmp_path / "m").iterdir())) == len(METHODS)  # it did fail once per method

    executor = JournaledExecutor.open(FnExecutor(partial(run_task_broken, broken_case)), journal)
    records = run_tasks(tasks, executor)
    journaled = read_journal(journal)
    for task, record in zip(tasks, records):
        assert journaled[record_key(record)] == record
        assert record["valid"] is (task.case != broken_case)
        if task.case == broken_case:
            assert record["reason"].startswith("worker failed: ConnectionError: worker lost")


def test_read_journal_rejects_a_bad_middle_line(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    path.write_text('{"oops": 1}\n{"suite_key": "s", "case": "c", "method": "m", "role": "method"}\n')
    with pytest.raises(KvoptError, match="line 1"):
        read_journal(path)
    assert read_journal(tmp_path / "missing.jsonl") == {}


def test_cli_report_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "rep"
    argv = ["report", "--suite", "adrs50", "--methods", "greedy", "--out", str(out), "--jobs", "1", "--json"]
    # A 3-case suite folder keeps this fast: copy three cases of adrs50.
    from kvopt.suites import load_suite
    from kvopt.io import save_instance

    folder = tmp_path / "three"
    folder.mkdir()
    for inst in load_suite("adrs50")[:3]:
        save_instance(inst, folder / f"{inst.name}.json")
    argv[2] = str(folder)
    assert main(argv) == 0
    full = read_results(out / "results.json")
    journal = out / JOURNAL_NAME
    lines = journal.read_text().splitlines()
    assert len(lines) == 3
    journal.write_text(lines[0] + "\n")
    assert main([*argv, "--resume"]) == 0
    assert results_text(read_results(out / "results.json")) == results_text(full)
    assert len(journal.read_text().splitlines()) == 3
    # Without --resume the journal starts afresh (still three lines, not six).
    assert main(argv) == 0
    assert len(journal.read_text().splitlines()) == 3
    capsys.readouterr()


# -- choosing an executor --------------------------------------------------------------------
def test_make_executor() -> None:
    assert make_executor("local", 3) == LocalExecutor(3)
    assert make_executor("ray", 2) == RayExecutor(None, 2)
    assert make_executor("ray", 2, "ray://head:10001") == RayExecutor("ray://head:10001", None)
    with pytest.raises(KvoptError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(KvoptError, match="--address"):
        make_executor("local", 1, "ray://head:10001")
    with pytest.raises(KvoptError, match="--jobs"):
        make_executor("local", 0)


def test_ray_missing_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(KvoptError, match=r"pip install kvopt\[ray\]"):
        list(RayExecutor().run([1], abs))


# -- Ray (a real local Ray instance) -------------------------------------------------------
@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # The test module is not importable in Ray workers: ship its functions by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    print(f"ray.init: {time.perf_counter() - start:.1f} s")
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def test_ray_report_matches_local(ray_instance, tmp_path: Path) -> None:
    methods = [method_from_name(m) for m in METHODS]
    start = time.perf_counter()
    on_ray = run_benchmark(["adrs50"], methods, RunSettings(), executor=RayExecutor(), only_cases=CASES)
    print(f"ray report: {time.perf_counter() - start:.1f} s")
    local = run_benchmark(["adrs50"], methods, RunSettings(), executor=LocalExecutor(2), only_cases=CASES)
    assert len(on_ray["cases"]) == len(CASES["adrs50"]) * len(METHODS)
    assert all(r["valid"] for r in on_ray["cases"])
    assert results_text(on_ray) == results_text(local)


def test_ray_retries_once_then_reports(ray_instance, tmp_path: Path) -> None:
    flaky = partial(square_flaky, tmp_path / "flaky", frozenset({1}))
    assert dict(RayExecutor().run([0, 1, 2], flaky)) == {0: 0, 1: 1, 2: 4}
    assert attempts_of(tmp_path / "flaky", 1) == 2
    broken = partial(square_broken, tmp_path / "broken", frozenset({2}))
    results = dict(RayExecutor().run([0, 1, 2], broken))
    assert results[2] == WorkerFailure("OSError: disk gone on task 2", 2)
    assert attempts_of(tmp_path / "broken", 2) == 2 and results[1] == 1


def test_ray_survives_a_dying_worker(ray_instance, tmp_path: Path) -> None:
    dying = partial(square_dying_once, tmp_path / "dying", frozenset({1}))
    assert dict(RayExecutor().run([0, 1, 2], dying)) == {0: 0, 1: 1, 2: 4}
    assert attempts_of(tmp_path / "dying", 1) == 2


def test_cli_evaluate_on_ray(ray_instance, tmp_path: Path, capsys) -> None:
    from kvopt.io import save_instance
    from kvopt.suites import load_suite

    folder = tmp_path / "two"
    folder.mkdir()
    for inst in load_suite("adrs50")[:2]:
        save_instance(inst, folder / f"{inst.name}.json")
    argv = ["evaluate", "greedy", "--suite", str(folder), "--json"]
    assert main([*argv, "--executor", "ray"]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert main([*argv, "--executor", "local"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert on_ray["summary"]["cases"] == 2
    assert json.dumps(without_timings(on_ray), sort_keys=True) == json.dumps(without_timings(local), sort_keys=True)


@pytest.mark.parametrize("program", ["kills_parent.py", "daemon.py"])
def test_hostile_programs_on_ray_are_contained_and_scored_as_locally(program, ray_instance, tmp_path: Path,
                                                                      capsys) -> None:
    """Ray workers run each call in the same sandbox: the verdict equals the local one, nothing survives."""
    from kvopt.bench.isolation import bwrap_binary, bwrap_problem
    from kvopt.io import save_instance
    from kvopt.suites import load_suite

    if bwrap_problem(bwrap_binary()) is not None:
        pytest.skip(f"no namespace sandbox here: {bwrap_problem(bwrap_binary())}")
    folder = tmp_path / "two"
    folder.mkdir()
    for inst in load_suite("adrs50")[:2]:
        save_instance(inst, folder / f"{inst.name}.json")
    hostile = Path(__file__).parent / "programs" / "hostile" / program
    argv = ["evaluate", str(hostile), "--suite", str(folder), "--json"]
    assert main([*argv, "--executor", "ray"]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert main([*argv, "--executor", "local"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert on_ray["summary"]["isolation"]["level"] == "namespaces" and on_ray["summary"]["valid"] == 2
    assert json.dumps(without_timings(on_ray), sort_keys=True) == json.dumps(without_timings(local), sort_keys=True)
    marker = b"kvopt-hostile-marker"
    survivors = [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)]
    assert survivors == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
