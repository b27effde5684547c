"""Score one program file for an evolution loop: sandboxed, against proven optima, never raising.

``score_program(path, suites, config)`` runs the program on every case of the
suites through ``kvopt.bench.evaluate.judge`` — the same sandbox, limits,
trusted-state fingerprints and integrity check as ``kvopt evaluate`` — and
returns a ``ProgramScore``: numeric ``metrics`` and short ``feedback`` texts
for the next prompt.  The adapters (``openevolve``, ``shinka``) only reshape it.

Metrics (all finite floats)::

    combined_score       kvopt.bench.fitness: mean over cases of 1/(1 + max(gap,0)/1 %),
                         invalid or infinite-peak cases 0          (KVOPT_SCORE=gap, default)
                         or adrs_combined_score                    (KVOPT_SCORE=adrs)
    kvopt_score          the first formula, whatever KVOPT_SCORE says
    valid_fraction       valid cases / cases run
    optimal_fraction     cases at the proven optimum / cases run
    mean_gap, max_gap    over valid cases with a finite peak; gap = peak / optimum - 1
                         (NO_GAP = 1000.0 when there is no such case)
    adrs_combined_score  1/mean(valid peaks) + valid fraction on adrs50 (all suites
                         when adrs50 is not run): the score of the public "prism"
                         evaluator, so old runs stay comparable
    mean_gap_<suite>, score_<suite>   the same per suite
    program_seconds      time inside the program, summed over calls
    call_timeout_s       the wall limit each call had (see ``call_timeout``)

A program that does not load, crashes or times out everywhere scores 0; kvopt
files changed during the run (a containment escape) also score 0.

Configuration: ``LoopConfig``, from keyword arguments and the environment
(``config_from``; the environment wins, so a run can be tuned without editing
the evaluator file).  A bad setting raises ``KvoptError`` naming the variable:
that is the user's error, not the program's.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from kvopt.model import KvoptError

FULL_SUITES = ("adrs50", "tight", "dense", "llm", "hetero", "small")
QUICK_SUITES = ("small",)
SCORES = ("gap", "adrs")
ISOLATION_LEVELS = ("auto", "namespaces", "landlock", "none")
NO_GAP = 1000.0
MAX_SCORE = 1.0e6
MIN_CALL_S = 1.0
LOOP_FORMAT = 1
REASON_CHARS = 240
FEEDBACK_CASES = 5

# Environment variable -> LoopConfig field.
ENVIRONMENT = {
    "KVOPT_SUITES": "suites",
    "KVOPT_QUICK_SUITES": "quick_suites",
    "KVOPT_TIMEOUT": "timeout_s",
    "KVOPT_MEMORY_MB": "memory_mb",
    "KVOPT_JOBS": "jobs",
    "KVOPT_ISOLATION": "isolation",
    "KVOPT_SCORE": "score",
    "KVOPT_BUDGET": "budget_s",
    "KVOPT_CACHE": "use_cache",
}


@dataclass(frozen=True)
class LoopConfig:
    """How programs are scored.

    ``suites``: the full evaluation (``evaluate``, stage 2); ``quick_suites``: the
    gate (stage 1).  ``timeout_s``/``memory_mb``: per program call.  ``budget_s``:
    the wall time one evaluation may take at most — calls get a shorter timeout
    when ``cases × timeout_s / jobs`` would exceed it (``call_timeout``), so an
    evaluation ends before OpenEvolve's own timeout (300 s by default).
    """

    suites: tuple[str, ...] = FULL_SUITES
    quick_suites: tuple[str, ...] = QUICK_SUITES
    timeout_s: float = 10.0
    memory_mb: int = 2048
    jobs: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))
    isolation: str = "auto"
    score: str = "gap"
    budget_s: float = 240.0
    use_cache: bool = True

    def __post_init__(self) -> None:
        check_config(self)


def check_config(config: LoopConfig) -> None:
    """``KvoptError`` naming the setting that is out of range."""
    if not config.suites or not config.quick_suites:
        raise KvoptError("KVOPT_SUITES/KVOPT_QUICK_SUITES: name at least one suite")
    if not (math.isfinite(config.timeout_s) and config.timeout_s > 0):
        raise KvoptError(f"KVOPT_TIMEOUT: must be a positive number of seconds, got {config.timeout_s!r}")
    if config.memory_mb < 256:
        raise KvoptError(f"KVOPT_MEMORY_MB: must be at least 256, got {config.memory_mb!r}")
    if config.jobs < 1:
        raise KvoptError(f"KVOPT_JOBS: must be >= 1, got {config.jobs!r}")
    if config.isolation not in ISOLATION_LEVELS:
        raise KvoptError(f"KVOPT_ISOLATION: one of {', '.join(ISOLATION_LEVELS)}, got {config.isolation!r}")
    if config.score not in SCORES:
        raise KvoptError(f"KVOPT_SCORE: one of {', '.join(SCORES)}, got {config.score!r}")
    if not (math.isfinite(config.budget_s) and config.budget_s >= MIN_CALL_S):
        raise KvoptError(f"KVOPT_BUDGET: must be at least {MIN_CALL_S} seconds, got {config.budget_s!r}")


def parse_setting(name: str, text: str, kind: Any) -> Any:
    """The value of environment variable ``name`` for a field of type ``kind``."""
    text = text.strip()
    try:
        if kind == "tuple[str, ...]":
            names = tuple(part.strip() for part in text.split(",") if part.strip())
            if not names:
                raise ValueError("no suite named")
            return names
        if kind == "float":
            return float(text)
        if kind == "int":
            return int(text)
        if kind == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected 0 or 1")
        return text
    except ValueError as exc:
        raise KvoptError(f"{name}: cannot read {text!r} ({exc})") from None


def config_from(environ: Mapping[str, str] | None = None, **overrides: Any) -> LoopConfig:
    """Defaults, then ``overrides`` (the evaluator file's arguments), then the environment."""
    environ = os.environ if environ is None else environ
    kinds = {f.name: f.type for f in fields(LoopConfig)}
    unknown = sorted(set(overrides) - set(kinds))
    if unknown:
        raise KvoptError(f"evaluator settings: unknown {', '.join(unknown)}; known: {', '.join(kinds)}")
    values = {k: (tuple(v.split(",")) if isinstance(v, str) and kinds[k] == "tuple[str, ...]" else v)
              for k, v in overrides.items()}
    for variable, name in ENVIRONMENT.items():
        if environ.get(variable, "").strip():
            values[name] = parse_setting(variable, environ[variable], kinds[name])
    return LoopConfig(**values)


@dataclass(frozen=True)
class ProgramScore:
    """What one evaluation found: ``metrics`` (numbers), ``feedback`` (texts), ``passed`` and the first ``error``.

    ``passed``: the program loaded and every case was valid.
    """

    metrics: Mapping[str, float]
    feedback: Mapping[str, str]
    passed: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"metrics": dict(self.metrics), "feedback": dict(self.feedback), "passed": self.passed,
                "error": self.error}


def unscored(reason: str, **metrics: float) -> ProgramScore:
    """The score of a program that could not be scored at all: 0, with the reason as feedback."""
    zero = {"combined_score": 0.0, "kvopt_score": 0.0, "valid_fraction": 0.0, "optimal_fraction": 0.0,
            "mean_gap": NO_GAP, "max_gap": NO_GAP, "adrs_combined_score": 0.0, "program_seconds": 0.0}
    return ProgramScore({**zero, **metrics}, {"kvopt_summary": f"kvopt could not score this program: {reason}"},
                        False, reason)


def call_timeout(config: LoopConfig, num_calls: int) -> float:
    """The per-call wall limit: ``timeout_s``, shortened so ``num_calls`` calls on ``jobs`` fit in ``budget_s``.

    ``min(timeout_s, max(MIN_CALL_S, budget_s × jobs / num_calls))``.
    """
    if num_calls <= 0:
        return config.timeout_s
    return min(config.timeout_s, max(MIN_CALL_S, config.budget_s * config.jobs / num_calls))


# -- metrics ------------------------------------------------------------------------
def finite_gaps(records: Sequence[Mapping[str, Any]]) -> list[float]:
    return [float(r["gap"]) for r in records
            if r["valid"] and r.get("gap") is not None and math.isfinite(float(r["gap"]))]


def legacy_score(records: Sequence[Mapping[str, Any]]) -> float:
    """The prism evaluator's ``1/mean(valid peaks) + valid/cases``, capped at ``MAX_SCORE`` (all peaks 0)."""
    from kvopt.bench.scoring import score_legacy

    peaks = [float(r["peak_kvpr"]) for r in records if r["valid"]]
    return min(MAX_SCORE, score_legacy(peaks, len(records)))


def suite_metric_name(suite: str) -> str:
    """A metric-safe name for a suite key (a folder path becomes its last part)."""
    tail = Path(suite).name or suite
    return "".join(ch if ch.isalnum() else "_" for ch in tail)


def metrics_of(records: Sequence[Mapping[str, Any]], score: str = "gap") -> dict[str, float]:
    """The metrics of the module docstring from one program's case records (gaps attached)."""
    from kvopt.bench.fitness import combined_score

    cases = len(records)
    gaps = finite_gaps(records)
    adrs = [r for r in records if r["suite"] == "adrs50"] or list(records)
    kvopt_score = combined_score(records)
    metrics = {
        "kvopt_score": kvopt_score,
        "valid_fraction": sum(1 for r in records if r["valid"]) / cases if cases else 0.0,
        "optimal_fraction": sum(1 for r in records if r["optimal"]) / cases if cases else 0.0,
        "mean_gap": sum(gaps) / len(gaps) if gaps else NO_GAP,
        "max_gap": max(gaps) if gaps else NO_GAP,
        "adrs_combined_score": legacy_score(adrs),
        "program_seconds": sum(float(r["seconds"] or 0.0) for r in records),
    }
    metrics["combined_score"] = kvopt_score if score == "gap" else metrics["adrs_combined_score"]
    for suite in dict.fromkeys(r["suite"] for r in records):
        chosen = [r for r in records if r["suite"] == suite]
        suite_gaps = finite_gaps(chosen)
        name = suite_metric_name(suite)
        metrics[f"mean_gap_{name}"] = sum(suite_gaps) / len(suite_gaps) if suite_gaps else NO_GAP
        metrics[f"score_{name}"] = combined_score(chosen)
    return {"combined_score": metrics.pop("combined_score"), **metrics}


# -- feedback -----------------------------------------------------------------------
def short(text: Any, limit: int = REASON_CHARS) -> str:
    """One line of at most ``limit`` characters (program-controlled text goes into a prompt)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def percent(gap: float) -> str:
    return "inf" if math.isinf(gap) else f"{100 * gap:.2f} %"


def invalid_feedback(records: Sequence[Mapping[str, Any]], call_timeout_s: float) -> str:
    """Invalid cases grouped by failure: count, a few case names, the first reason."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        if not r["valid"]:
            groups.setdefault(r["failure"] or "invalid", []).append(r)
    lines = []
    for failure, chosen in sorted(groups.items(), key=lambda item: -len(item[1])):
        names = ", ".join(f"{r['suite']}/{r['case']}" for r in chosen[:FEEDBACK_CASES])
        more = f" and {len(chosen) - FEEDBACK_CASES} more" if len(chosen) > FEEDBACK_CASES else ""
        reason = short(chosen[0]["reason"] or failure)
        if failure == "timeout":
            reason += f" (each call had {call_timeout_s:.3g} s)"
        lines.append(f"{failure} on {len(chosen)} case(s) ({names}{more}): {reason}")
    return "\n".join(lines)


def reference_words(record: Mapping[str, Any]) -> str:
    status = record.get("reference_status")
    return {"optimal": "proven optimum", "bound": "lower bound"}.get(status, "best known")


def worst_gap_feedback(records: Sequence[Mapping[str, Any]]) -> str:
    """The valid cases farthest from their reference: size, peak, reference and gap."""
    scored = [r for r in records if r["valid"] and r.get("gap") is not None and float(r["gap"]) > 1e-12]
    scored.sort(key=lambda r: (-float(r["gap"]), r["suite"], r["case"]))
    lines = []
    for r in scored[:FEEDBACK_CASES]:
        peak = float(r["peak_kvpr"])
        why = " (a GPU with load and no free memory)" if math.isinf(peak) else ""
        lines.append(f"{r['suite']}/{r['case']} ({r['num_models']} models, {r['num_gpus']} GPUs): peak KVPR "
                     f"{peak:.6g}{why}, {reference_words(r)} {float(r['reference']):.6g}, "
                     f"gap {percent(float(r['gap']))}")
    return "\n".join(lines)


def summary_feedback(records: Sequence[Mapping[str, Any]], metrics: Mapping[str, float], wall_s: float,
                     skipped: int) -> str:
    cases = len(records)
    valid = round(metrics["valid_fraction"] * cases)
    optimal = round(metrics["optimal_fraction"] * cases)
    gap_text = ("no valid case with a finite peak" if metrics["mean_gap"] == NO_GAP else
                f"mean gap {percent(metrics['mean_gap'])}, max gap {percent(metrics['max_gap'])}")
    lines = [f"{valid}/{cases} cases valid, {optimal} at the proven optimum; {gap_text} "
             "(gap = peak KVPR / optimum - 1, lower is better).",
             f"combined_score {metrics['combined_score']:.4f}; kvopt_score {metrics['kvopt_score']:.4f} = mean over "
             "cases of 1/(1 + gap/1 %), invalid cases 0.",
             f"time: {metrics['program_seconds']:.2f} s inside the program, {wall_s:.1f} s wall."]
    if skipped:
        lines.append(f"{skipped} heterogeneous-GPU case(s) skipped: compute_model_placement takes no gpu_mem "
                     "keyword.")
    return "\n".join(lines)


def feedback_of(records: Sequence[Mapping[str, Any]], metrics: Mapping[str, float], wall_s: float,
                skipped: int = 0) -> dict[str, str]:
    """``{"kvopt_summary", "invalid_cases", "worst_gaps"}`` (empty parts left out)."""
    parts = {"kvopt_summary": summary_feedback(records, metrics, wall_s, skipped),
             "invalid_cases": invalid_feedback(records, metrics.get("call_timeout_s", 0.0)),
             "worst_gaps": worst_gap_feedback(records)}
    return {k: v for k, v in parts.items() if v}


# -- running ------------------------------------------------------------------------
_TRUSTED: dict[tuple[str, ...], Any] = {}
_TRUSTED_LOCK = threading.Lock()


def trusted_state(suites: tuple[str, ...]) -> Any:
    """The trusted state of ``suites``, loaded once per process (frameworks call us once per program).

    Keeping the first fingerprints also means a later run's integrity check
    compares against kvopt's files as they were before any program ran.
    """
    from kvopt.bench.trust import load_trusted

    with _TRUSTED_LOCK:
        if suites not in _TRUSTED:
            _TRUSTED[suites] = load_trusted(suites)
        return _TRUSTED[suites]


def score_program(program_path: str, suites: Sequence[str], config: LoopConfig, stage: str = "full") -> ProgramScore:
    """Run the program file on the suites and score it (see the module docstring); never raises for the program.

    Cached (``kvopt.bench.cache``) by program bytes, suites, kvopt's code, the
    settings and ``stage``, unless ``config.use_cache`` is off or isolation is none.
    """
    import time

    from kvopt.bench import cache
    from kvopt.bench.evaluate import integrity_problem, judge
    from kvopt.bench.executors import make_executor
    from kvopt.bench.isolation import resolve_isolation
    from kvopt.bench.results import method_records
    from kvopt.bench.runner import RunSettings
    from kvopt.bench.sandbox import Limits

    start = time.perf_counter()
    suites = tuple(suites)
    if not Path(program_path).is_file():
        return unscored(f"{program_path}: no such program file")
    try:
        state = trusted_state(suites)
        num_cases = sum(len(s.instances) for s in state.suites)
        per_call = call_timeout(config, num_cases + 1)
        isolation = resolve_isolation(config.isolation)
        settings = RunSettings(Limits(timeout_s=per_call, memory_mb=config.memory_mb, isolation=isolation))
    except KvoptError as exc:
        return unscored(str(exc))
    use_cache = config.use_cache and isolation.level != "none"
    key = None
    if use_cache:
        key = cache.program_key(program_path, state.to_json(), {**settings.to_json(), "loop": LOOP_FORMAT,
                                                                "stage": stage, "score": config.score})
        hit = cache.load_row(key) if key else None
        if hit is not None:
            return ProgramScore(hit["metrics"], hit["feedback"], hit["passed"], hit["error"])
    try:
        document = judge(suites, (), [program_path], settings, isolation=config.isolation,
                         executor=make_executor("local", config.jobs), keep_going=True, trusted=state)
    except KvoptError as exc:
        return unscored(str(exc), call_timeout_s=per_call)
    except Exception as exc:  # kvopt's own failure must not crash the user's evolution run
        return unscored(f"kvopt internal error {type(exc).__name__}: {short(exc)}", call_timeout_s=per_call)
    problem = integrity_problem(document)
    if problem is not None:
        return unscored(problem, call_timeout_s=per_call)
    if document.get("load_failures"):
        return unscored(short(document["load_failures"][0]["reason"], 600), call_timeout_s=per_call)
    records = method_records(document, document["methods"][0]["name"])
    if not records:
        return unscored("no case to run: " + short("; ".join(sorted({s["reason"] for s in document["skipped"]}))),
                        call_timeout_s=per_call)
    metrics = {**metrics_of(records, config.score), "call_timeout_s": per_call}
    feedback = feedback_of(records, metrics, time.perf_counter() - start, len(document["skipped"]))
    invalid = [r for r in records if not r["valid"]]
    error = (f"{invalid[0]['suite']}/{invalid[0]['case']}: {short(invalid[0]['reason'] or invalid[0]['failure'])}"
             if invalid else None)
    result = ProgramScore(metrics, feedback, not invalid, error)
    if key is not None:
        cache.store_row(key, result.to_json())
    return result
