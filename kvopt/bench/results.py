"""A benchmark run as one results document (``results.json``), shared by evaluate, report and regress.

Document::

    {"format": "kvopt-results/1", "kvopt_version", "command",
     "suites":   [{"key", "name", "cases": [case, ...]}, ...],
     "methods":  [{"name", "kind"}, ...],
     "settings": {"timeout_s", "memory_mb", "exact_time_limit_s"},
     "summary":  {method: summary},             # kvopt.bench.scoring.summarize
     "by_suite": {suite: {method: summary}},
     "cases":    [record, ...],                 # kvopt.bench.runner, plus reference/gap/optimal
     "skipped":  [{"suite", "case", "method", "reason"}, ...],
     "wall_seconds": float}

Records are sorted by suite, case and method (in the order given), so a
document does not depend on the number of jobs; only ``seconds`` fields vary.
Non-finite floats are written as the strings ``"inf"``/``"-inf"``.
"""

from __future__ import annotations

import json
import math
import signal
from fractions import Fraction
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from kvopt import __version__
from kvopt.bench.cases import SuiteCases, load_all, missing_reference_cases, missing_reference_warnings
from kvopt.bench.executors import Executor, LocalExecutor, default_jobs
from kvopt.bench.progress import Progress
from kvopt.bench.runner import BatchInterrupted, MethodSpec, RunSettings, build_tasks, run_tasks
from kvopt.bench.scoring import attach_gaps, choose_references, summaries_by_method, summaries_by_suite
from kvopt.io import read_json
from kvopt.model import KvoptError

FORMAT = "kvopt-results/1"


def _print_warning(line: str) -> None:
    print(line, file=sys.stderr)


class RunInterrupted(Exception):
    """``run_benchmark`` was stopped by a signal: ``document`` holds the cases that finished."""

    def __init__(self, document: dict[str, Any], signum: int):
        super().__init__(signal.Signals(signum).name)
        self.document = document
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, as shells report them."""
        return 128 + self.signum


def stored_frontiers(suites: Sequence[SuiteCases]) -> dict[str, list[dict[str, Any]]]:
    """``{"suite/case": [{"max_moves", "peak", "status"}, ...]}`` from references that store a
    (moves, peak) frontier (``kvopt reference`` on the replan family); empty when none do."""
    out: dict[str, list[dict[str, Any]]] = {}
    for suite in suites:
        for instance in suite.instances:
            points = (suite.references.get(instance.name) or {}).get("frontier")
            if isinstance(points, list) and points:
                out[f"{suite.name}/{instance.name}"] = [
                    {"max_moves": int(p["max_moves"]), "peak": float(Fraction(p["value"])) if p.get("value") not in
                     (None, "inf") else math.inf, "status": p.get("status")} for p in points]
    return out


def run_benchmark(
    suite_names: Sequence[str] | Sequence[SuiteCases],
    methods: Sequence[MethodSpec],
    settings: RunSettings,
    *,
    executor: Executor | None = None,
    progress: bool = False,
    solve_missing: bool = False,
    command: str | None = None,
    only_cases: Mapping[str, Sequence[str]] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every method on every case of the suites and return the results document.

    ``suite_names`` may be names (loaded here) or suites already loaded
    (``kvopt.bench.trust.load_trusted``).  On SIGINT/SIGTERM raises
    ``RunInterrupted`` with the document of the cases that finished.
    ``warn`` receives one line per suite with cases lacking a stored reference
    (default: printed to stderr — a missing reference must not pass unnoticed).

    ``only_cases`` (``{suite key: [case, ...]}``) restricts the run to those cases
    (``kvopt regress`` re-runs exactly the cases of its baseline).
    """
    if not methods:
        raise KvoptError("no methods to run")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise KvoptError(f"methods: each method may appear once, got {', '.join(names)}")
    start = time.perf_counter()
    suites = [s for s in suite_names if isinstance(s, SuiteCases)]
    if len(suites) != len(suite_names):
        suites = load_all([str(s) for s in suite_names])
    if only_cases is not None:
        suites = [restrict(s, only_cases.get(s.key, ())) for s in suites]
    for line in missing_reference_warnings(suites):
        (warn or _print_warning)(line)
    wants_refs = solve_missing and not any(m.kind == "exact" for m in methods)
    tasks, skipped = build_tasks(suites, methods, settings,
                                 reference_cases=missing_reference_cases(suites) if wants_refs else ())
    runner = executor or LocalExecutor(default_jobs())
    interrupted: int | None = None
    with Progress(len(tasks), enabled=progress) as bar:
        try:
            records = run_tasks(tasks, runner, lambda task, record: bar.update(f"{task.case} {task.method.name}"))
        except BatchInterrupted as stop:
            records, interrupted = stop.records, stop.signum
    scored = attach_gaps(records, choose_references(suites, records))
    suite_display = [s.name for s in suites]
    document = {
        "format": FORMAT,
        "kvopt_version": __version__,
        "command": command,
        "suites": [{"key": s.key, "name": s.name, "cases": [i.name for i in s.instances]} for s in suites],
        "methods": [m.to_json() for m in methods],
        "settings": settings.to_json(),
        "summary": summaries_by_method(scored, names),
        "by_suite": summaries_by_suite(scored, suite_display, names),
        "cases": scored,
        "skipped": [s.to_json() for s in skipped],
        "wall_seconds": time.perf_counter() - start,
    }
    frontiers = stored_frontiers(suites)
    if frontiers:
        document["frontiers"] = frontiers
    if interrupted is not None:
        document["interrupted"] = signal.Signals(interrupted).name
        raise RunInterrupted(document, interrupted)
    return document


def restrict(suite: SuiteCases, cases: Sequence[str]) -> SuiteCases:
    """The suite with only the named cases (in the suite's order)."""
    wanted = set(cases)
    return replace(suite, instances=tuple(i for i in suite.instances if i.name in wanted))


def method_records(document: Mapping[str, Any], method: str) -> list[dict[str, Any]]:
    return [r for r in document["cases"] if r["method"] == method and r["role"] == "method"]


# -- JSON ------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as ``"inf"``/``"-inf"``/``None`` (strict JSON)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def number(value: Any) -> float | None:
    """A float from a results file (``"inf"`` → ``inf``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return float(value)
    return float(value)


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(document), indent=1, allow_nan=False)


def write_results(document: Mapping[str, Any], path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(document) + "\n")
    return out


def read_results(path: str | Path) -> dict[str, Any]:
    """A results document written by ``write_results``; ``KvoptError`` if it is not one."""
    p = Path(path)
    data = read_json(p)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise KvoptError(f"{p}: not a kvopt results file (expected field 'format' = {FORMAT!r})")
    for key in ("suites", "methods", "settings", "cases", "summary"):
        if key not in data:
            raise KvoptError(f"{p}: missing field {key!r}")
    return data
