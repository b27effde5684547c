"""``kvopt evaluate``: score one placement program against reference optima.

Each case of the chosen suites runs the program once (a file or import path in
the sandbox, a built-in heuristic in-process) and is reported as valid with its
peak KVPR, reference and gap, or invalid with the reason.  Programs that cannot
take heterogeneous GPUs (no ``gpu_mem`` keyword) skip heterogeneous cases.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from dataclasses import replace
from typing import Any, Mapping, Sequence

from kvopt.bench.executors import Executor
from kvopt.bench.programs import probe_program, resolve_program
from kvopt.bench.results import RunInterrupted, method_records, run_benchmark
from kvopt.bench.runner import MethodSpec, RunSettings, method_from_name, method_from_spec
from kvopt.bench.sandbox import run_folder, sweep_stale
from kvopt.bench.trust import TrustedState, changed_code, load_trusted
from kvopt.bench.isolation import NO_ISOLATION_WARNING, describe, resolve_isolation
from kvopt.model import KvoptError
from kvopt.tables import format_table

DEFAULT_SUITES = ("adrs50",)
SUMMARY_KEYS = ("cases", "valid", "optimal", "mean_gap", "median_gap", "max_gap", "score_legacy",
                "score_bounded", "seconds", "missing_references")


def judge(
    suites: Sequence[str],
    method_names: Sequence[str] = (),
    programs: Sequence[str] = (),
    settings: RunSettings | None = None,
    *,
    isolation: str = "auto",
    executor: Executor | None = None,
    progress: bool = False,
    solve_missing: bool = False,
    command: str | None = None,
    keep_going: bool = False,
    trusted: TrustedState | None = None,
) -> dict[str, Any]:
    """Run built-in methods and untrusted programs on the suites; the results document.

    ``keep_going``: a program that cannot be loaded is listed in the document's
    ``load_failures`` (``{"program", "reason"}``) instead of stopping the run
    (a generation of evolved programs).  ``trusted``: the state already loaded
    for these suites by the caller (loaded here otherwise).

    Trusted state first (``kvopt.bench.trust``): the suites, references and
    scoring code are loaded and fingerprinted before any program is probed; each
    program call is contained at ``isolation`` (resolved once here, recorded in
    ``settings.isolation``).  The document gets ``trusted`` (fingerprints) and
    ``integrity`` (kvopt's files unchanged after the run).  Raises ``KvoptError``
    for bad input and ``RunInterrupted`` (with the finished cases) on a signal.
    """
    settings = settings or RunSettings()
    sweep_stale()
    state = trusted if trusted is not None else load_trusted(suites)
    methods: list[MethodSpec] = [method_from_name(name) for name in method_names]
    load_failures: list[dict[str, str]] = []
    specs = []
    for text in programs:
        try:
            specs.append(resolve_program(text))
        except KvoptError as exc:
            if not keep_going:
                raise
            load_failures.append({"program": text, "reason": str(exc)})
    if any(spec.kind != "heuristic" for spec in specs) and settings.limits.isolation is None:
        settings = replace(settings, limits=replace(settings.limits, isolation=resolve_isolation(isolation)))
        if settings.limits.isolation.level == "none":
            print(NO_ISOLATION_WARNING, file=sys.stderr)
    if specs:
        run_folder()  # before any worker starts: they share it
    for spec in specs:
        try:
            methods.append(method_from_spec(spec, probe_program(spec, settings.limits)))
        except KvoptError as exc:
            if not keep_going:
                raise
            load_failures.append({"program": spec.label, "reason": str(exc)})
    if not methods and keep_going and load_failures:
        # A generation where nothing loads is a result (every program scores 0), not bad input.
        return seal({"methods": [], "summary": {}, "cases": [], "skipped": [], "load_failures": load_failures,
                     "settings": settings.to_json()}, state)
    if not methods:
        raise KvoptError("no program could be loaded: " + "; ".join(f["reason"] for f in load_failures))
    try:
        document = run_benchmark(state.suites, methods, settings, executor=executor, progress=progress,
                                 solve_missing=solve_missing, command=command)
    except RunInterrupted as stop:
        seal(stop.document, state)
        raise
    document["load_failures"] = load_failures
    return seal(document, state)


def seal(document: dict[str, Any], state: TrustedState) -> dict[str, Any]:
    """Add the fingerprints and the after-run integrity check to a results document."""
    changed = changed_code(state)
    document["trusted"] = state.to_json()
    document["integrity"] = {"ok": not changed, "changed_files": changed}
    return document


def evaluate_program(program: str, suites: Sequence[str] = DEFAULT_SUITES, settings: RunSettings | None = None,
                     **options: Any) -> dict[str, Any]:
    """Run ``program`` on the suites: ``judge`` with one program (``options``: ``judge``'s keywords).

    Raises ``KvoptError`` (bad input) for a missing/unloadable program, an unknown
    suite, missing containment, or when the program can run on none of the cases.
    """
    document = judge(suites, (), [program], settings, **options)
    method = document["methods"][0]["name"]
    if not method_records(document, method):
        reasons = sorted({s["reason"] for s in document["skipped"]})
        raise KvoptError(f"{program}: no case to run ({'; '.join(reasons) or 'the suites are empty'})")
    return document


def program_files(arguments: Sequence[str]) -> list[str]:
    """The programs named: files, import paths and heuristic names as given, a folder as its ``*.py`` files."""
    out: list[str] = []
    for text in arguments:
        folder = Path(text)
        if folder.is_dir():
            found = sorted(str(p) for p in folder.glob("*.py") if not p.name.startswith("_"))
            if not found:
                raise KvoptError(f"{text}: folder holds no program files (*.py)")
            out += found
        else:
            out.append(text)
    if len(set(out)) != len(out):
        raise KvoptError("programs: each program may be named once")
    return out


def ranking(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per program, best first: ``combined_score`` (``kvopt.bench.fitness``), then the summary.

    Programs that could not be loaded rank last with score 0.
    """
    from kvopt.bench.fitness import combined_score

    rows = []
    for method in document["methods"]:
        name = method["name"]
        records = method_records(document, name)
        summary = document["summary"][name]
        rows.append({"program": name, "combined_score": combined_score(records), "loaded": True,
                     "reason": None, **{k: summary[k] for k in SUMMARY_KEYS}, "failures": summary["failures"]})
    for failure in document.get("load_failures", []):
        rows.append({"program": failure["program"], "combined_score": 0.0, "loaded": False,
                     "reason": failure["reason"], **{k: None for k in SUMMARY_KEYS}, "failures": {}})
    return ranked(rows)


def ranked(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted best first (score, then name) with ``rank`` set."""
    out = sorted((dict(r) for r in rows), key=lambda r: (-r["combined_score"], r["program"]))
    for rank, row in enumerate(out, 1):
        row["rank"] = rank
    return out


def format_ranking(ranked_rows: Sequence[Mapping[str, Any]], isolation: Mapping[str, Any] | None,
                   wall_seconds: float) -> str:
    """The ranked table of a multi-program evaluation, for people."""
    rows = []
    for r in ranked_rows:
        if not r["loaded"]:
            rows.append([r["rank"], r["program"], "0", "-", "-", "-", "-", "-", "not loaded"])
            continue
        rows.append([r["rank"], r["program"], f"{r['combined_score']:.4f}", f"{r['valid']}/{r['cases']}",
                     r["optimal"], format_percent(r["mean_gap"]), format_percent(r["max_gap"]),
                     f"{r['seconds']:.2f}", ", ".join(f"{k} {v}" for k, v in r["failures"].items())])
    lines = [format_table(["rank", "program", "score", "valid", "optimal", "mean gap", "max gap", "seconds",
                           "failures"], rows, align="rlrrrrrrl")]
    for r in ranked_rows:
        if not r["loaded"]:
            reason = str(r["reason"])
            lines.append("  " + (reason if reason.startswith(f"{r['program']}:") else f"{r['program']}: {reason}"))
    cached = sum(1 for r in ranked_rows if r.get("cached"))
    lines.append(f"isolation      {describe(isolation)}")
    lines.append(f"wall time      {wall_seconds:.1f} s" + (f" ({cached} program(s) from the cache)" if cached else ""))
    return "\n".join(lines)


def evaluate_generation(programs: Sequence[str], suites: Sequence[str], settings: RunSettings, *,
                        isolation: str = "auto", use_cache: bool = True, **options: Any) -> dict[str, Any]:
    """Score many programs in one run: ``{"programs": ranked rows, "isolation", "suites", "wall_seconds", ...}``.

    Trusted state is loaded once and one executor runs every call; a program file
    whose key (``kvopt.bench.cache``) was scored before is not run again (never
    with ``--no-isolation``).  A program that cannot be loaded ranks last with 0.
    """
    from kvopt.bench import cache

    start = time.perf_counter()
    if settings.limits.isolation is None and isolation != "none":
        settings = replace(settings, limits=replace(settings.limits, isolation=resolve_isolation(isolation)))
    use_cache = use_cache and settings.limits.isolation is not None and settings.limits.isolation.level != "none"
    keys: dict[str, str | None] = {}
    rows: list[dict[str, Any]] = []
    state = load_trusted(suites)
    if use_cache:
        for program in programs:
            keys[program] = (cache.program_key(program, state.to_json(), settings.to_json())
                             if Path(program).is_file() else None)
            row = cache.load_row(keys[program]) if keys[program] else None
            if row is not None:
                rows.append({**row, "program": program, "cached": True})
    to_run = [p for p in programs if p not in {r["program"] for r in rows}]
    document: dict[str, Any] = {}
    if to_run:
        document = judge(suites, (), to_run, settings, isolation=isolation, keep_going=True, trusted=state,
                         **options)
        for row in ranking(document):
            key = keys.get(row["program"])
            if key and document.get("integrity", {}).get("ok", True):
                cache.store_row(key, {k: v for k, v in row.items() if k != "rank"})
            rows.append({**row, "cached": False})
    isolation_json = settings.limits.isolation.to_json() if settings.limits.isolation else \
        document.get("settings", {}).get("isolation")
    return {"programs": ranked(rows), "isolation": isolation_json, "suites": list(suites),
            "wall_seconds": time.perf_counter() - start, "integrity": document.get("integrity"),
            "cached": sum(1 for r in rows if r["cached"])}


def integrity_problem(document: Mapping[str, Any]) -> str | None:
    """The loud message for a run during which kvopt's own files changed, else ``None``."""
    integrity = document.get("integrity") or {}
    if integrity.get("ok", True):
        return None
    files = ", ".join(integrity.get("changed_files", [])[:5])
    return (f"kvopt's own files changed during the run ({files}): a program escaped its containment or ran "
            "without it. These results cannot be trusted; reinstall kvopt before the next run.")


def evaluation_json(document: Mapping[str, Any]) -> dict[str, Any]:
    """``{"summary": {...}, "cases": [...]}`` for ``kvopt evaluate --json``."""
    method = document["methods"][0]["name"]
    summary = document["summary"][method]
    out_summary = {key: summary[key] for key in SUMMARY_KEYS}
    out_summary.update({"program": method, "failures": summary["failures"],
                        "skipped": len(document["skipped"]), "wall_seconds": document["wall_seconds"],
                        "suites": [s["key"] for s in document["suites"]],
                        "isolation": document["settings"].get("isolation"),
                        "integrity": document.get("integrity"), "interrupted": document.get("interrupted")})
    cases = []
    for r in method_records(document, method):
        cases.append({
            "suite": r["suite"], "name": r["case"], "valid": r["valid"], "failure": r["failure"],
            "reason": r["reason"], "peak_kvpr": r["peak_kvpr"], "reference": r["reference"],
            "reference_status": r["reference_status"], "reference_source": r["reference_source"],
            "reference_missing": r["reference_missing"],
            "lower_bound": r["reference_bound"] if r["reference_status"] != "optimal" else None,
            "gap": r["gap"], "optimal": r["optimal"], "seconds": r["seconds"], "cpu_seconds": r.get("cpu_seconds"),
            "num_models": r["num_models"], "num_gpus": r["num_gpus"], "gpu_of": r["gpu_of"],
        })
    return {"summary": out_summary, "cases": cases, "skipped": document["skipped"]}


def all_valid(document: Mapping[str, Any]) -> bool:
    method = document["methods"][0]["name"]
    return all(r["valid"] for r in method_records(document, method))


def format_percent(gap: float | None) -> str:
    if gap is None:
        return "-"
    if math.isinf(gap):
        return "inf"
    return f"{100 * gap:.2f}%"


def format_evaluation(document: Mapping[str, Any]) -> str:
    """The per-case table, the failure reasons and the summary, for people."""
    data = evaluation_json(document)
    rows = []
    for c in data["cases"]:
        ref = c["reference"]
        ref_text = "-" if ref is None else f"{ref:.6g}" + ("" if c["reference_status"] == "optimal" else
                                                           " (bound)" if c["reference_status"] == "bound"
                                                           else " (best known)")
        if c["reference_missing"]:
            ref_text += " !"
        rows.append([c["suite"], c["name"], c["num_models"], c["num_gpus"],
                     ("optimal" if c["optimal"] else "valid") if c["valid"] else c["failure"],
                     c["peak_kvpr"], ref_text, format_percent(c["gap"]), f"{c['seconds']:.3f}"])
    lines = [format_table(["suite", "case", "models", "gpus", "result", "peak_kvpr", "reference", "gap", "seconds"],
                          rows, align="llrrlrlrr")]
    failed = [c for c in data["cases"] if not c["valid"]]
    if failed:
        lines += ["", "invalid cases:"]
        lines += [f"  {c['suite']}/{c['name']}: {c['reason']}" for c in failed]
    if data["skipped"]:
        lines += ["", f"skipped {len(data['skipped'])} case(s): {data['skipped'][0]['reason']}"]
    s = data["summary"]
    if s["missing_references"]:
        lines += ["", f"! no stored reference optimum for {s['missing_references']} case(s): their gaps are "
                      "against this run's exact result or a lower bound (see `kvopt reference`, --solve-missing)"]
    lines += [
        "",
        f"program        {s['program']}",
        f"cases          {s['cases']}  (valid {s['valid']}, optimal {s['optimal']})",
        f"gap            mean {format_percent(s['mean_gap'])}  median {format_percent(s['median_gap'])}  "
        f"max {format_percent(s['max_gap'])}",
        f"score_legacy   {s['score_legacy']:.6g}   (1/mean(peak) + success rate)",
        f"score_bounded  {s['score_bounded']:.6g}   (mean 1/(1+peak), failures 0)",
        f"time           {s['seconds']:.3f} s in the program, {s['wall_seconds']:.1f} s wall",
        f"isolation      {describe(s['isolation'])}",
    ]
    return "\n".join(lines)

