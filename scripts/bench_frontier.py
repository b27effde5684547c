"""The exact frontier (issue 9): branch and price vs the current backends vs LNS, same budget per case.

Runs (each niced by the caller).  ``--method exact`` runs side by side on a machine with two
CPUs (the proof in a second process): run such sections alone, nothing else on the machine.

* ``families``: every case of tight, dense, llm, hetero, small with ``solve_exact``
  (the proof alone), backend ``auto`` (set partitioning / CP-SAT) and
  ``branch-price``, ``--family-limit`` seconds per case;
* ``backends``: the chosen ``medium`` cases with ``solve_exact`` alone (no LNS side) on each
  feasibility backend (``BACKEND_RUNS``: CP-SAT assignment, set partitioning, branch and price),
  ``--limit`` seconds each: how far each exact approach gets on its own;
* ``large``: every ``large`` case, ``--method exact`` and ``--method lns``, ``--limit`` s each;
* ``medium``: the chosen ``medium`` cases with ``--method exact`` (anytime: the proof
  plus the LNS primal side) on backend ``branch-price`` and on ``auto`` (before this
  change: set partitioning on 8 GPUs, CP-SAT from 16 where it has too many patterns), and
  ``--method lns``, ``--limit`` seconds per case each.

Every finished run is appended to ``--raw`` (JSON lines) at once, so an
interrupted benchmark keeps what it measured; ``--render`` only rewrites the
report from the raw file.  Writes ``reports/frontier.md`` and (``--reference``)
``instances/medium/reference.json`` from the best result per case: ``optimal``
only where a run proved it, else ``feasible`` with the best peak and the best
certified bound over all runs.

Usage::

    nice python scripts/bench_frontier.py [--sections families,medium,backends,large] [--cases 0,1,4,5]
        [--limit 60] [--family-limit 20] [--skip-auto] [--raw reports/frontier_raw.jsonl] [--render] [--reference]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from kvopt.bench.machine import cpu_model
from kvopt.evaluate import format_fraction
from kvopt.model import Result
from kvopt.suites import load_suite

FAMILIES = ("tight", "dense", "llm", "hetero", "small")
FAMILY_BACKENDS = ("auto", "branch-price")
MEDIUM_RUNS = (("exact", "branch-price"), ("exact", "auto"), ("lns", "-"))
BACKEND_RUNS = ("cpsat", "setpart", "branch-price")


def run_record(section: str, suite: str, inst: Any, method: str, backend: str, limit_s: float,
               result: Result) -> dict[str, Any]:
    """One measured run as plain JSON data (exact values as ``p/q`` strings)."""
    return {
        "section": section, "suite": suite, "case": inst.name, "gpus": inst.num_gpus, "models": inst.num_models,
        "method": method, "backend": backend, "limit_s": limit_s, "status": result.status,
        "peak": format_fraction(result.peak_kvpr_exact) if result.placement is not None else None,
        "bound": format_fraction(result.lower_bound_exact) if result.lower_bound_exact is not None else None,
        "gap": result.gap, "seconds": round(result.seconds, 3), "load": os.getloadavg()[0],
        "backend_used": result.details.get("backend"),
        "mode": _mode(result),
    }


def _mode(result: Result) -> str | None:
    """Exact: ``side by side`` / ``one after the other``; ``+ incumbents`` once LNS placements go to the
    proof process, ``+ incumbents both ways`` once the proof's go to LNS too (2026-11-29, fourth session)."""
    anytime = result.details.get("anytime") or {}
    mode = anytime.get("mode")
    if mode and "proof_placements" in anytime:
        return f"{mode} + incumbents both ways"
    return f"{mode} + incumbents" if mode and "incumbents_offered" in anytime else mode


def append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def run_families(raw: Path, limit_s: float) -> None:
    from kvopt.exact import solve_exact

    for suite in FAMILIES:
        for inst in load_suite(suite):
            for backend in FAMILY_BACKENDS:
                result = solve_exact(inst, backend=backend, time_limit_s=limit_s)
                append(raw, run_record("families", suite, inst, "exact", backend, limit_s, result))


def run_medium(raw: Path, cases: list[int], limit_s: float, runs: tuple[tuple[str, str], ...] = MEDIUM_RUNS) -> None:
    from kvopt.solve import solve

    instances = load_suite("medium")
    for case in cases:
        inst = instances[case]
        for method, backend in runs:
            result = solve(inst, method, backend=backend if backend != "-" else "auto", time_limit_s=limit_s)
            append(raw, run_record("medium", "medium", inst, method, backend, limit_s, result))
            print(f"{inst.name} {method}/{backend}: {result.status} gap {result.gap} {result.seconds:.1f}s",
                  flush=True)


def run_backends(raw: Path, cases: list[int], limit_s: float) -> None:
    """The proof alone (``solve_exact``) per feasibility backend on the chosen ``medium`` cases."""
    from kvopt.exact import solve_exact

    instances = load_suite("medium")
    for case in cases:
        inst = instances[case]
        for backend in BACKEND_RUNS:
            result = solve_exact(inst, backend=backend, time_limit_s=limit_s)
            append(raw, run_record("backends", "medium", inst, "proof", backend, limit_s, result))
            print(f"{inst.name} proof/{backend}: {result.status} gap {result.gap} {result.seconds:.1f}s", flush=True)


def backends_table(records: list[dict[str, Any]], best_bound: dict[str, Fraction]) -> list[str]:
    """Per case and backend: proven (time), or the peak and the run's own bound against the best bound."""
    rows = [r for r in records if r["section"] == "backends"]
    backends = [b for b in BACKEND_RUNS if any(r["backend"] == b for r in rows)]
    lines = ["| case | G | models | " + " | ".join(backends) + " |", "|---|--:|--:|" + "---|" * len(backends)]
    for case in sorted({r["case"] for r in rows}):
        sel = {r["backend"]: r for r in rows if r["case"] == case}
        cells = []
        for backend in backends:
            r = sel.get(backend)
            if r is None:
                cells.append("—")
            elif r["status"] == "optimal":
                cells.append(f"optimal ({r['seconds']:.0f} s)")
            elif r["peak"] in (None, "inf"):
                cells.append(f"{r['status']}, no placement ({r['seconds']:.0f} s)")
            else:
                best = best_bound[case]
                peak = 100 * float(Fraction(r["peak"]) / best - 1)
                bound = 100 * float(Fraction(r["bound"]) / best - 1) if r["bound"] not in (None, "inf") else None
                cells.append(f"peak +{peak:.3f} %, bound {bound:+.3f} % ({r['seconds']:.0f} s)" if bound is not None
                             else f"peak +{peak:.3f} % ({r['seconds']:.0f} s)")
        any_r = next(iter(sel.values()))
        lines.append(f"| {case} | {any_r['gpus']} | {any_r['models']} | {' | '.join(cells)} |")
    return lines


def run_large(raw: Path, limit_s: float, methods: tuple[str, ...] = ("exact", "lns")) -> None:
    """``--method exact`` and ``--method lns`` on every ``large`` case (64-1024 GPUs), same budget."""
    from kvopt.solve import solve

    for inst in load_suite("large"):
        for method in methods:
            result = solve(inst, method, time_limit_s=limit_s)
            append(raw, run_record("large", "large", inst, method, "auto" if method == "exact" else "-",
                                   limit_s, result))
            print(f"{inst.name} {method}: {result.status} gap {result.gap} {result.seconds:.1f}s", flush=True)


def large_table(records: list[dict[str, Any]]) -> list[str]:
    """Per case: each exact run (peak, time, relative to LNS) and the LNS run."""
    rows = [r for r in records if r["section"] == "large"]
    present = {run_label(r) for r in rows} - {"lns"}
    exact_runs = sorted(present, key=lambda label: ("side by side" not in label, label))
    lines = ["| case | G | models | " + " | ".join(exact_runs) + " | lns |",
             "|---|--:|--:|" + "---|" * len(exact_runs) + "---|"]
    for case in sorted({r["case"] for r in rows}):
        sel = {run_label(r): r for r in rows if r["case"] == case}
        lns = sel.get("lns")
        if lns is None or lns["peak"] is None:
            continue
        cells = []
        for label in exact_runs:
            r = sel.get(label)
            if r is None or r["peak"] is None:
                cells.append("—")
                continue
            rel = 100 * float(Fraction(r["peak"]) / Fraction(lns["peak"]) - 1)
            cells.append(f"{r['status']} {float(Fraction(r['peak'])):.6f} ({r['seconds']:.0f} s, {rel:+.4f} % vs lns)")
        lines.append(f"| {case} | {lns['gpus']} | {lns['models']} | {' | '.join(cells)} | {lns['status']} "
                     f"{float(Fraction(lns['peak'])):.6f} ({lns['seconds']:.0f} s) |")
    return lines


# -- the report ---------------------------------------------------------------------------------
def read_raw(raw: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.read_text().splitlines() if line.strip()] if raw.exists() else []


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "—"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.3f} %"


def family_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["| suite | backend | cases | proven | median s | max s | cases > 5 s |", "|---|---|--:|--:|--:|--:|--:|"]
    for suite in FAMILIES:
        for backend in FAMILY_BACKENDS:
            rows = [r for r in records if r["section"] == "families" and r["suite"] == suite and r["backend"] == backend]
            if not rows:
                continue
            secs = [r["seconds"] for r in rows]
            proven = sum(r["status"] == "optimal" for r in rows)
            lines.append(f"| {suite} | {backend} | {len(rows)} | {proven} | {_median(secs)} | {max(secs):.2f} | "
                         f"{sum(s > 5 for s in secs)} |")
    return lines


def run_label(r: dict[str, Any]) -> str:
    """A run's column: ``lns``, or ``exact <backend> (<mode>)``; exact runs recorded before the mode was
    (2026-11-29 first session: numpy knapsack, one after the other) are ``(previous version)``."""
    if r["method"] == "lns":
        return "lns"
    return f"{r['method']} {r['backend']} ({r['mode'] if 'mode' in r else 'previous version'})"


LABEL_ORDER = ("exact branch-price (side by side + incumbents both ways)", "exact branch-price (side by side + incumbents)",
               "exact branch-price (side by side)", "exact branch-price (one after the other)",
               "exact branch-price (previous version)", "exact auto (previous version)", "lns")


def medium_tables(records: list[dict[str, Any]], limit_s: float, best_bound: dict[str, Fraction]) -> list[str]:
    """Summary per GPU count and run, then per case, for the runs with budget ``limit_s``."""
    rows = [r for r in records if r["section"] == "medium" and r["limit_s"] == limit_s]
    present = {run_label(r) for r in rows}
    runs = [label for label in LABEL_ORDER if label in present] + sorted(present - set(LABEL_ORDER))
    lines = ["| G | run | cases | proven | median s | max s | median gap | max gap |",
             "|--:|---|--:|--:|--:|--:|--:|--:|"]
    for gpus in sorted({r["gpus"] for r in rows}):
        for label in runs:
            sel = [r for r in rows if r["gpus"] == gpus and run_label(r) == label]
            if not sel:
                continue
            gaps = [float(Fraction(r["peak"]) / best_bound[r["case"]] - 1) for r in sel if r["peak"] not in (None, "inf")]
            proven = sum(r["status"] == "optimal" for r in sel)
            secs = [r["seconds"] for r in sel]
            lines.append(f"| {gpus} | {label} | {len(sel)} | {proven} | {_median(secs)} | "
                         f"{max(secs):.1f} | {_pct(statistics.median(gaps)) if gaps else '—'} | "
                         f"{_pct(max(gaps)) if gaps else '—'} |")
    has_lns = "lns" in runs
    lines += ["", "Per case" + (" (peak relative to the LNS peak of the same case: < 0 means better than LNS)"
                                if has_lns else "") + ":", "",
              "| case | G | models | " + " | ".join(runs) + " | best bound (all runs) | gap left | proven by |",
              "|---|--:|--:|" + "---|" * len(runs) + "--:|--:|---|"]
    for case in sorted({r["case"] for r in rows}):
        sel = {run_label(r): r for r in rows if r["case"] == case}
        lns = sel.get("lns")
        cells = []
        for label in runs:
            r = sel.get(label)
            if r is None or r["peak"] in (None, "inf"):
                cells.append("—")
                continue
            rel = "" if lns is None or label == "lns" else \
                f", {100 * float(Fraction(r['peak']) / Fraction(lns['peak']) - 1):+.4f} % vs lns"
            cells.append(f"{r['status']} {float(Fraction(r['peak'])):.6f} ({r['seconds']:.0f} s{rel})")
        proven = [label for label, r in sel.items() if r["status"] == "optimal"]
        peaks = [Fraction(r["peak"]) for r in sel.values() if r["peak"] not in (None, "inf")]
        left = "0" if proven else (_pct(float(min(peaks) / best_bound[case] - 1)) if peaks else "—")
        any_r = next(iter(sel.values()))
        lines.append(f"| {case} | {any_r['gpus']} | {any_r['models']} | {' | '.join(cells)} | "
                     f"{float(best_bound[case]):.6f} | {left} | {', '.join(proven) or '—'} |")
    return lines


def best_bounds(rows: list[dict[str, Any]]) -> dict[str, Fraction]:
    """The largest certified bound per case over every run (each is a proof)."""
    out: dict[str, Fraction] = {}
    for r in rows:
        if r["bound"] not in (None, "inf"):
            bound = Fraction(r["bound"])
            out[r["case"]] = max(out.get(r["case"], bound), bound)
    return out


def latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last run per (section, suite, case, method, backend, budget): a re-run replaces the row it repeats."""
    last: dict[tuple, dict[str, Any]] = {}
    for r in records:
        last[(r["section"], r["suite"], r["case"], run_label(r), r["limit_s"])] = r
    return list(last.values())


def render(all_records: list[dict[str, Any]], out: Path) -> None:
    """The report: tables from the latest run of each kind (``latest``); best bounds from every run."""
    records = latest(all_records)
    loads = [r["load"] for r in records]
    lines = ["# Exact frontier: branch and price, current backends and LNS", "",
             f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `scripts/bench_frontier.py` on "
             f"{cpu_model()} ({os.cpu_count()} cores), Python {platform.python_version()}.  The machine was shared "
             f"with other jobs: 1-min load average {min(loads, default=0):.1f}–{max(loads, default=0):.1f} during "
             "the runs, so times are indicative; compare within a table.", "",
             "## Hard families: the proof alone (`solve_exact`)", ""]
    fam = [r for r in records if r["section"] == "families"]
    if fam:
        lines += [f"Time limit {fam[0]['limit_s']:g} s per case.", ""] + family_table(records)
    else:
        lines.append("Not run.")
    lines += ["", "## medium: `--method exact` (anytime) vs `--method lns`, same budget", ""]
    med = [r for r in records if r["section"] == "medium"]
    proof_rows = [r for r in all_records if r["section"] in ("medium", "backends")]
    if not med:
        lines.append("Not run.")
    lines += ["Gap = peak / best certified bound over all runs of the case − 1 (every budget, and the runs "
              "of earlier versions kept in the raw file: each bound is a proof), so every method is measured "
              "against one reference.  The tables show the latest run of each case, method and budget."] if med else []
    for limit_s in sorted({r["limit_s"] for r in med}):
        at = [r for r in med if r["limit_s"] == limit_s]
        ran = sorted({r["case"] for r in at})
        missing = [inst.name for inst in load_suite("medium") if inst.name not in ran]
        methods = sorted({run_label(r) for r in at})
        note = ("  (Run one after the other, `exact` spends its first 10 % of this budget in LNS, so the proof "
                "starts later than in the 60 s runs; side by side it has the whole budget.)") if limit_s > 60 else ""
        lines += ["", f"### {limit_s:g} s per case and method", "",
                  f"Methods: {', '.join(methods)}.  Cases: {', '.join(ran)}"
                  + (f"; not run at this budget: {', '.join(missing)}" if missing else "") + "." + note, ""]
        lines += medium_tables(records, limit_s, best_bounds(proof_rows))
    backend_rows = [r for r in records if r["section"] == "backends"]
    if backend_rows:
        lines += ["", "## medium: each exact backend alone", "",
                  f"`solve_exact` without the LNS side, {backend_rows[0]['limit_s']:g} s per case and backend "
                  "(each run on one core).  Peak and the run's own certified bound relative to the best "
                  "certified bound of the case over all runs.", ""]
        lines += backends_table(records, best_bounds(proof_rows))
    large = [r for r in records if r["section"] == "large"]
    if large:
        lines += ["", "## large: `--method exact` vs `--method lns`, same budget", "",
                  f"Budget {large[0]['limit_s']:g} s per case and method.", ""] + large_table(records)
    if proof_rows:
        lines += ["", "## Why the 16-32-GPU proofs are hard", "", HARD_TEXT, ""] + closeness_table(proof_rows)
    out.write_text("\n".join(lines) + "\n")


HARD_TEXT = (
    "The best placements known lie within 0.035 % of the mediant bound `Σn/(ΣC−Σs)` (every GPU at one "
    "common KVPR; the root bound on all these cases; table below), and the column-generation LP adds nothing "
    "above it (on `medium_06` its certified bound does not rise above the mediant by 10^-4); on the cases not "
    "proven, no run has certified any bound above the mediant.  Every bisection question between "
    "the two is then a near-perfect partition: the LP says \"fits\" (λ ≈ 1 − 10^-6) on both sides of the optimum, "
    "so feasible questions need a tree search for a placement and infeasible ones a tree of certificates.  "
    "Measured by hand (2026-11-29, the proof alone): at T 0.0016 % above the `medium_06` optimum finding a "
    "placement took 27 s (175 branch-and-price nodes, LP points spread over 62-69 columns for 16 GPUs); at T "
    "0.0074 % above the `medium_04` optimum 28 s, while the final infeasibility proofs of that run took 0.5-1.4 s.  "
    "Which targets the bisection happens to ask decides whether a case is proven in 6 s or not in 60 s.")


def closeness_table(rows: list[dict[str, Any]]) -> list[str]:
    """Per 16-32-GPU case: how far the best peak and the best certified bound are above the mediant bound."""
    from kvopt.bounds import mediant_bound

    bounds = best_bounds(rows)
    lines = ["| case | G | models | best peak above the mediant | best bound above the mediant | proven |",
             "|---|--:|--:|--:|--:|---|"]
    for inst in load_suite("medium"):
        sel = [r for r in rows if r["case"] == inst.name and r["peak"] not in (None, "inf")]
        if inst.num_gpus < 16 or not sel:
            continue
        peak = min(Fraction(r["peak"]) for r in sel)
        mediant = mediant_bound(inst)
        proven = any(r["status"] == "optimal" for r in sel) or bounds[inst.name] >= peak
        lines.append(f"| {inst.name} | {inst.num_gpus} | {inst.num_models} | {_pct(float(peak / mediant - 1))} | "
                     f"{_pct(float(bounds[inst.name] / mediant - 1))} | {'yes' if proven else 'no'} |")
    return lines


def write_medium_reference(records: list[dict[str, Any]], path: Path) -> None:
    """Best per case: a proven optimum where any run proved one, else best peak + best bound (``feasible``)."""
    rows = [r for r in records if r["section"] in ("medium", "backends") and r["peak"] not in (None, "inf")]
    bounds = best_bounds(rows)
    cases: dict[str, Any] = {}
    for case in sorted({r["case"] for r in rows}):
        sel = [r for r in rows if r["case"] == case]
        best = min(sel, key=lambda r: Fraction(r["peak"]))
        peak, bound = Fraction(best["peak"]), bounds[case]
        optimal = any(r["status"] == "optimal" and Fraction(r["peak"]) == peak for r in sel) or bound >= peak
        bound = peak if optimal else bound
        cases[case] = {"value": format_fraction(peak), "value_float": float(peak),
                       "status": "optimal" if optimal else "feasible",
                       "lower_bound": format_fraction(bound), "lower_bound_float": float(bound),
                       "gap": 0.0 if optimal else float(peak / bound - 1),
                       "backend": best["backend_used"], "model": f"{best['method']} ({best['backend']})",
                       "seconds": best["seconds"]}
    document = {"suite": "medium",
                "generated_by": "scripts/bench_frontier.py: best of every exact, proof-alone and lns run "
                                "per case; optimal only where proven, else feasible with the best certified bound",
                "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "cases": cases}
    path.write_text(json.dumps(document, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="families,medium")
    parser.add_argument("--cases", default="0,1,2,3,4,5,6,7", help="medium case numbers")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per medium case and method")
    parser.add_argument("--family-limit", type=float, default=20.0)
    parser.add_argument("--raw", default="reports/frontier_raw.jsonl")
    parser.add_argument("--out", default="reports/frontier.md")
    parser.add_argument("--skip-auto", action="store_true", help="medium: only exact (branch-price) and lns, not exact (auto)")
    parser.add_argument("--exact-only", action="store_true", help="medium, large: only exact")
    parser.add_argument("--render", action="store_true", help="only rewrite the report from --raw")
    parser.add_argument("--reference", action="store_true", help="also write instances/medium/reference.json")
    args = parser.parse_args()
    raw = Path(args.raw)
    if not args.render:
        sections = args.sections.split(",")
        start = time.perf_counter()
        if "families" in sections:
            run_families(raw, args.family_limit)
        if "large" in sections:
            run_large(raw, args.limit, ("exact",) if args.exact_only else ("exact", "lns"))
        if "backends" in sections:
            run_backends(raw, [int(c) for c in args.cases.split(",")], args.limit)
        if "medium" in sections:
            runs = tuple(r for r in MEDIUM_RUNS if args.skip_auto is False or r[1] != "auto")
            if args.exact_only:
                runs = (("exact", "branch-price"),)
            run_medium(raw, [int(c) for c in args.cases.split(",")], args.limit, runs)
        print(f"benchmark wall time {time.perf_counter() - start:.0f} s")
    records = read_raw(raw)
    render(records, Path(args.out))
    if args.reference:
        write_medium_reference(records, Path("instances/medium/reference.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
