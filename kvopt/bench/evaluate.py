"""``kvopt evaluate``: score one placement program against reference optima.

Each case of the chosen suites runs the program once (a file or import path in
the sandbox, a built-in heuristic in-process) and is reported as valid with its
peak KVPR, reference and gap, or invalid with the reason.  Programs that cannot
take heterogeneous GPUs (no ``gpu_mem`` keyword) skip heterogeneous cases.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from kvopt.bench.executors import Executor
from kvopt.bench.results import method_records, run_benchmark
from kvopt.bench.runner import RunSettings, method_from_program
from kvopt.model import KvoptError
from kvopt.tables import format_table

DEFAULT_SUITES = ("adrs50",)
SUMMARY_KEYS = ("cases", "valid", "optimal", "mean_gap", "median_gap", "max_gap", "score_legacy",
                "score_bounded", "seconds", "missing_references")


def evaluate_program(
    program: str,
    suites: Sequence[str] = DEFAULT_SUITES,
    settings: RunSettings | None = None,
    *,
    executor: Executor | None = None,
    progress: bool = False,
    solve_missing: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Run ``program`` on the suites; the results document (``kvopt.bench.results``).

    Raises ``KvoptError`` (bad input) for a missing/unloadable program, an unknown
    suite, or when the program can run on none of the cases.
    """
    settings = settings or RunSettings()
    method = method_from_program(program, settings.limits)
    document = run_benchmark(suites, [method], settings, executor=executor, progress=progress,
                             solve_missing=solve_missing, command=command)
    if not method_records(document, method.name):
        reasons = sorted({s["reason"] for s in document["skipped"]})
        raise KvoptError(f"{program}: no case to run ({'; '.join(reasons) or 'the suites are empty'})")
    return document


def evaluation_json(document: Mapping[str, Any]) -> dict[str, Any]:
    """``{"summary": {...}, "cases": [...]}`` for ``kvopt evaluate --json``."""
    method = document["methods"][0]["name"]
    summary = document["summary"][method]
    out_summary = {key: summary[key] for key in SUMMARY_KEYS}
    out_summary.update({"program": method, "failures": summary["failures"],
                        "skipped": len(document["skipped"]), "wall_seconds": document["wall_seconds"],
                        "suites": [s["key"] for s in document["suites"]]})
    cases = []
    for r in method_records(document, method):
        cases.append({
            "suite": r["suite"], "name": r["case"], "valid": r["valid"], "failure": r["failure"],
            "reason": r["reason"], "peak_kvpr": r["peak_kvpr"], "reference": r["reference"],
            "reference_status": r["reference_status"], "reference_source": r["reference_source"],
            "reference_missing": r["reference_missing"],
            "lower_bound": r["reference_bound"] if r["reference_status"] != "optimal" else None,
            "gap": r["gap"], "optimal": r["optimal"], "seconds": r["seconds"],
            "num_models": r["num_models"], "num_gpus": r["num_gpus"],
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
    ]
    return "\n".join(lines)
