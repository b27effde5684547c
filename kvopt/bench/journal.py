"""Incremental results and resume: one JSON line per finished task in ``<out>/results.jsonl``.

A ``JournaledExecutor`` wraps another executor: each record is appended (and
flushed) to the journal as soon as its task finishes, so an interrupted batch
loses at most the tasks that were running.  With ``resume=True`` the tasks whose
key is already in the journal are not run again; their journaled records are
yielded instead and merged with the new ones.  The records are plain JSON
(``json`` round-trips ints, floats, strings, lists and ``None`` exactly; the
non-finite floats are written as ``Infinity``/``NaN`` so they come back as
floats), so a resumed run gives the same results document as an uninterrupted
one, timings aside.

Key of a task/record: ``(suite_key, case, method, role)`` — the suite, the case
and the method; ``role`` only separates an exact *reference* solve from the
``exact`` method.  Resuming trusts the journal: resume only with the same suites,
methods and settings (a journal line does not record them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from kvopt.bench.executors import Executor, WorkerFailure
from kvopt.bench.runner import CaseTask, worker_failed_record
from kvopt.io import loads_json
from kvopt.model import KvoptError

JOURNAL_NAME = "results.jsonl"

Key = tuple[str, str, str, str]


def task_key(task: CaseTask) -> Key:
    return (task.suite_key, task.case, task.method.name, task.role)


def record_key(record: Mapping[str, Any]) -> Key:
    return (record["suite_key"], record["case"], record["method"], record["role"])


def journal_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / JOURNAL_NAME


def read_journal(path: str | Path) -> dict[Key, dict[str, Any]]:
    """The records of a journal by key (a later line wins); ``{}`` if there is no file.

    A cut-off last line (the batch was killed while writing it) is ignored; a bad
    line elsewhere is a ``KvoptError`` naming the line.
    """
    p = Path(path)
    if not p.is_file():
        return {}
    lines = p.read_text().splitlines()
    records: dict[Key, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads_json(line, f"{p}: line {number}")
            key = record_key(record)
        except (KvoptError, KeyError, TypeError):
            if number == len(lines):
                break  # the line being written when the batch stopped
            raise KvoptError(f"{p}: line {number} is not a kvopt result record") from None
        records[key] = record
    return records


def record_line(record: Mapping[str, Any]) -> str:
    """One journal line (non-finite floats as ``Infinity``/``NaN`` so they read back as floats)."""
    return json.dumps(record, allow_nan=True, separators=(",", ":"))


@dataclass(frozen=True)
class JournaledExecutor:
    """Runs tasks on ``inner``, appending every finished record to ``path``.

    ``resume``: skip tasks already journaled and yield their records; otherwise
    the journal is started afresh.  Worker failures are journaled as their failed
    records (``kvopt.bench.runner.worker_failed_record``), so a resume does not
    retry them; delete their lines to run them again.
    """

    inner: Executor
    path: Path
    resume: bool = False
    done: dict[Key, dict[str, Any]] = field(default_factory=dict, compare=False)

    @classmethod
    def open(cls, inner: Executor, path: str | Path, *, resume: bool = False) -> "JournaledExecutor":
        """The executor, with the already journaled records loaded when resuming."""
        p = Path(path)
        return cls(inner, p, resume, read_journal(p) if resume else {})

    def run(self, tasks: Sequence[CaseTask],
            fn: Callable[[CaseTask], dict[str, Any]]) -> Iterator[tuple[CaseTask, dict[str, Any]]]:
        todo = [t for t in tasks if task_key(t) not in self.done]
        for task in tasks:
            if task_key(task) in self.done:
                yield task, self.done[task_key(task)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.resume:
            self.path.write_text("")
        elif self.path.is_file():
            drop_partial_last_line(self.path)
        with self.path.open("a") as journal:
            for task, outcome in self.inner.run(todo, fn):
                record = worker_failed_record(task, outcome) if isinstance(outcome, WorkerFailure) else outcome
                journal.write(record_line(record) + "\n")
                # Flushed per record: an interruption loses only the tasks still running.
                journal.flush()
                yield task, record


def drop_partial_last_line(path: Path) -> None:
    """End the journal on a newline so appends start on a fresh line.

    A last line without its newline is kept (newline added) if it is a whole
    record, as ``read_journal`` counted it, and cut if it was cut off mid-write.
    """
    text = path.read_text()
    if not text or text.endswith("\n"):
        return
    head, _, last = text.rpartition("\n")
    try:
        loads_json(last, str(path))
    except KvoptError:
        path.write_text(head + "\n" if head else "")
        return
    path.write_text(text + "\n")
