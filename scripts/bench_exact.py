"""Benchmark of the exact solver (kvopt.exact) on adrs50 and the small hard families.

Writes ``reports/exact.md``:

* adrs50, all 50 cases: the default ``solve_exact`` end to end (warm start from
  the pipeline heuristic, root bounds and backend choice included), and every
  backend/model with the same pipeline start ("warm") and with a first-fit start
  ("cold", so the backend does the bisection): total seconds, cases proven
  optimal, mean optimal peak, slowest case, backend calls.  Slow
  configurations run with a per-case time limit (reported).  Also the
  McCormick single-shot MILP when ``kvopt.exact.mccormick`` exists.
* the check of the adrs50 mean optimal peak against 0.0395946 and the target
  "all 50 proven optimal in < 5 s total with the default".
* the small hard families (``small=True`` suites other than adrs50): the default
  with a 60 s limit per case, cases proven, cases with <= 20 models proven,
  total/max seconds, and the unproven cases with their gap.
* with ``--crosscheck``: every stored reference optimum re-checked with CP-SAT
  (the assignment model, independent of the set-partitioning default).

Usage::

    python scripts/bench_exact.py [--out reports/exact.md] [--family-limit 60] [--skip-families]
        [--cold-limit 30] [--mccormick-limit 10] [--mccormick-cbc] [--crosscheck]

Run one benchmark at a time (the machine has 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

from kvopt.bench.machine import cpu_model
from kvopt.exact.bisection import solve_exact
from kvopt.heuristics.start import first_fit_start
from kvopt.exact.solvers import silence_highs_banner
from kvopt.model import Instance, KvoptError, Result
from kvopt.suites import SUITES, load_suite

ADRS50_MEAN_OPTIMUM = 0.0395946  # proven independently (set-partitioning minimiser, reports/setpart_bench.md)
ADRS50_TARGET_SECONDS = 5.0
SMALL_MODELS = 20  # "small hard" cases: proven within the family limit is the target

Solver = Callable[[Instance, Sequence[int] | None, float], Result]


# -- configurations --------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """One way to solve: label, how, and the per-case time limit."""

    label: str
    solve: Solver
    time_limit_s: float


def exact_config(label: str, backend: str, solver: str, time_limit_s: float) -> Config:
    def run(inst: Instance, start: Sequence[int] | None, limit: float) -> Result:
        return solve_exact(inst, backend=backend, solver=solver, time_limit_s=limit, warm_start=start)

    return Config(label, run, time_limit_s)


def mccormick_config(solver: str, time_limit_s: float) -> Config | None:
    try:
        from kvopt.exact.mccormick import solve_mccormick
    except ImportError:
        return None

    def run(inst: Instance, start: Sequence[int] | None, limit: float) -> Result:
        return solve_mccormick(inst, solver=solver, time_limit_s=limit, warm_start=start)

    return Config(f"mccormick-{solver}", run, time_limit_s)


def backend_configs(time_limit_s: float) -> list[Config]:
    configs = [
        exact_config("cpsat-assignment", "cpsat", "highs", time_limit_s),
        exact_config("milp-highs-assignment", "milp", "highs", time_limit_s),
        exact_config("milp-cbc-assignment", "milp", "cbc", time_limit_s),
    ]
    try:
        import kvopt.exact.setpart  # noqa: F401
    except ImportError:
        return configs
    return configs + [exact_config("setpart", "setpart", "highs", time_limit_s)]


# -- running ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseRun:
    case: str
    models: int
    status: str
    peak: Fraction | None
    gap: float | None
    seconds: float
    calls: int
    backend: str


def run_case(config: Config, inst: Instance, start: Sequence[int] | None) -> CaseRun:
    t0 = time.perf_counter()
    try:
        result = config.solve(inst, start, config.time_limit_s)
    except KvoptError as exc:
        return CaseRun(inst.name, inst.num_models, f"error: {exc}", None, None, time.perf_counter() - t0, 0, "")
    seconds = time.perf_counter() - t0
    return CaseRun(inst.name, inst.num_models, result.status, result.peak_kvpr_exact, result.gap, seconds,
                   int(result.details.get("iterations", 0)), str(result.details.get("backend", config.label)))


@dataclass(frozen=True)
class Summary:
    label: str
    start: str
    limit: float
    total_s: float
    optimal: int
    cases: int
    mean_peak: float | None
    max_s: float
    calls: int


def summarize(label: str, start: str, limit: float, runs: Sequence[CaseRun]) -> Summary:
    peaks = [float(r.peak) for r in runs if r.peak is not None]
    return Summary(label, start, limit, sum(r.seconds for r in runs), sum(r.status == "optimal" for r in runs),
                   len(runs), statistics.fmean(peaks) if len(peaks) == len(runs) else None,
                   max(r.seconds for r in runs), sum(r.calls for r in runs))


def run_suite(config: Config, instances: Sequence[Instance], start_of: Callable[[Instance], Sequence[int] | None],
              label_suffix: str = "") -> list[CaseRun]:
    runs = []
    for inst in instances:
        runs.append(run_case(config, inst, start_of(inst)))
    print(f"  {config.label}{label_suffix}: {sum(r.seconds for r in runs):.2f}s, "
          f"{sum(r.status == 'optimal' for r in runs)}/{len(runs)} optimal", file=sys.stderr, flush=True)
    return runs


def pipeline_start(inst: Instance) -> Sequence[int] | None:
    from kvopt.heuristics import run_heuristic

    result = run_heuristic("pipeline", inst)
    return result.placement.gpu_of if result.placement is not None else None


# -- report -----------------------------------------------------------------------------------
def machine_info() -> list[str]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    cpu = cpu_model()
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for package in ("ortools", "pulp", "highspy"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} missing")
    return [f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
            f"- Python {platform.python_version()}; {', '.join(versions)}",
            f"- load average when the report was written (1/5/15 min): {load} "
            "(other processes on the machine inflate the timings)"]


def summary_table(rows: Sequence[Summary]) -> list[str]:
    lines = ["| configuration | start | limit/case s | total s | optimal | mean optimal peak | slowest case s "
             "| backend calls |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in rows:
        mean = f"{s.mean_peak:.7f}" if s.mean_peak is not None else "-"
        if s.mean_peak is not None and s.optimal < s.cases:
            mean += " (best found; not all proven)"
        lines.append(f"| {s.label} | {s.start} | {s.limit:g} | {s.total_s:.2f} | {s.optimal}/{s.cases} | {mean} "
                     f"| {s.max_s:.2f} | {s.calls} |")
    return lines


def family_table(results: dict[str, list[CaseRun]]) -> list[str]:
    lines = ["| suite | cases | proven optimal | cases <= 20 models | of those proven | total s | max s "
             "| backends used |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for suite, runs in results.items():
        small = [r for r in runs if r.models <= SMALL_MODELS]
        used: dict[str, int] = {}
        for r in runs:
            used[r.backend] = used.get(r.backend, 0) + 1
        lines.append(f"| {suite} | {len(runs)} | {sum(r.status == 'optimal' for r in runs)} | {len(small)} "
                     f"| {sum(r.status == 'optimal' for r in small)} | {sum(r.seconds for r in runs):.1f} "
                     f"| {max(r.seconds for r in runs):.1f} | {', '.join(f'{k} {v}' for k, v in sorted(used.items()))} |")
    return lines


def unproven_lines(results: dict[str, list[CaseRun]]) -> list[str]:
    out = []
    for runs in results.values():
        for r in runs:
            if r.status != "optimal":
                gap = f"{r.gap:.2e}" if r.gap is not None else "-"
                out.append(f"- {r.case} ({r.models} models): {r.status}, gap {gap} after {r.seconds:.1f} s")
    return out or ["- none"]


# -- independent check of stored references ---------------------------------------------------
@dataclass(frozen=True)
class CrossCheck:
    suite: str
    confirmed: int
    undecided: list[str]
    contradicted: list[str]
    seconds: float


def crosscheck_references(suite_name: str, time_limit_s: float) -> CrossCheck | None:
    """Confirm each stored optimum ``v`` with CP-SAT (the other model): ``<= v`` feasible, ``< v`` infeasible."""
    from kvopt.exact.backend import FeasibilityQuery
    from kvopt.exact.cpsat import CpSatBackend
    from kvopt.suites import load_reference

    reference = load_reference(suite_name)
    if not reference:
        return None
    backend, t0 = CpSatBackend(), time.perf_counter()
    confirmed, undecided, contradicted = 0, [], []
    for inst in load_suite(suite_name):
        entry = reference.get(inst.name)
        if entry is None or entry.get("status") != "optimal" or entry.get("value") in (None, "inf"):
            continue
        value = Fraction(entry["value"])
        at = backend.check(FeasibilityQuery(inst, value, False, time_limit_s=time_limit_s)).status
        below = backend.check(FeasibilityQuery(inst, value, True, time_limit_s=time_limit_s)).status
        if (at, below) == ("feasible", "infeasible"):
            confirmed += 1
        elif at == "infeasible" or below == "feasible":
            contradicted.append(inst.name)
        else:
            undecided.append(inst.name)
    print(f"  crosscheck {suite_name}: {confirmed} confirmed", file=sys.stderr, flush=True)
    return CrossCheck(suite_name, confirmed, undecided, contradicted, time.perf_counter() - t0)


def crosscheck_lines(checks: Sequence[CrossCheck], time_limit_s: float) -> list[str]:
    lines = ["## Independent check of the stored references", "",
             "Each stored optimum `v` (`instances/<suite>/reference.json`, written by `kvopt reference` with the "
             "default backend) is re-checked with the *other* model, CP-SAT on the assignment model "
             f"(exact integers, {time_limit_s:g} s per query): \"KVPR <= v\" must be feasible and "
             "\"KVPR < v\" infeasible.", "",
             "| suite | confirmed | undecided (time limit) | contradicted | seconds |", "|---|---:|---|---|---:|"]
    for c in checks:
        lines.append(f"| {c.suite} | {c.confirmed} | {', '.join(c.undecided) or '-'} | "
                     f"{', '.join(c.contradicted) or '-'} | {c.seconds:.1f} |")
    return lines + [""]


TRUST_NOTES = [
    "## What the proofs rest on", "",
    "- `optimal` means: a placement with exact peak `v` (re-evaluated by `kvopt.evaluate`) and an "
    "`infeasible` answer to \"every GPU KVPR < v\" (or a bound argument reaching `v`).",
    "- The default backend (set partitioning) answers with an exact bin-completion search in Python integers, "
    "falling back to a HiGHS covering MILP with 0/1 coefficients; CP-SAT works on the integer rows exactly. "
    "Lower bounds (`kvopt.bounds`, and the column-generation bound with its integer Farkas certificate) are "
    "exact integer checks.",
    "- The MILP backends (CBC, HiGHS on the assignment model) compute in floating point: their placements are "
    "re-checked exactly, and their infeasibility is used only when every gcd-reduced coefficient is "
    "<= 2^31 (else `unknown`); CBC is not given coefficients >= 10^13 (MPS file precision).",
    "- Float inputs are read as the decimals they print as (`kvopt.model.to_fraction`).", ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/exact.md")
    parser.add_argument("--cold-limit", type=float, default=30.0, help="per-case limit of the backend runs")
    parser.add_argument("--family-limit", type=float, default=60.0, help="per-case limit on the hard families")
    parser.add_argument("--skip-families", action="store_true")
    parser.add_argument("--mccormick-limit", type=float, default=10.0,
                        help="per-case limit of the McCormick MILP (pipeline start only; 0 = skip)")
    parser.add_argument("--mccormick-cbc", action="store_true", help="also McCormick with CBC (slow)")
    parser.add_argument("--crosscheck", action="store_true",
                        help="re-check the stored references of the small suites with CP-SAT (minutes)")
    parser.add_argument("--crosscheck-limit", type=float, default=120.0, help="seconds per CP-SAT query")
    args = parser.parse_args(argv)
    silence_highs_banner()

    adrs50 = load_suite("adrs50")
    print("adrs50: default end to end", file=sys.stderr)
    default = exact_config("default (auto)", "auto", "highs", 60.0)
    default_runs = run_suite(default, adrs50, lambda inst: None)
    rows = [summarize(default.label, "pipeline (included)", 60.0, default_runs)]

    starts_warm = {inst.name: pipeline_start(inst) for inst in adrs50}
    starts_cold = {inst.name: first_fit_start(inst) for inst in adrs50}
    configs = backend_configs(args.cold_limit)
    for start_label, starts in (("pipeline", starts_warm), ("first fit", starts_cold)):
        print(f"adrs50: backends, {start_label} start", file=sys.stderr)
        for config in configs:
            runs = run_suite(config, adrs50, lambda inst: starts[inst.name], f" ({start_label})")
            rows.append(summarize(config.label, start_label, config.time_limit_s, runs))
    if args.mccormick_limit > 0:
        # The single-shot McCormick MILP is much slower: pipeline start only, its own (shorter) limit.
        solvers = ("highs", "cbc") if args.mccormick_cbc else ("highs",)
        for config in filter(None, (mccormick_config(s, args.mccormick_limit) for s in solvers)):
            runs = run_suite(config, adrs50, lambda inst: starts_warm[inst.name], " (pipeline)")
            rows.append(summarize(config.label, "pipeline", config.time_limit_s, runs))

    default_summary = rows[0]
    mean_ok = default_summary.mean_peak is not None and round(default_summary.mean_peak, 7) == ADRS50_MEAN_OPTIMUM
    target_ok = default_summary.optimal == 50 and default_summary.total_s < ADRS50_TARGET_SECONDS
    backends_used: dict[str, int] = {}
    for r in default_runs:
        backends_used[r.backend] = backends_used.get(r.backend, 0) + 1

    families: dict[str, list[CaseRun]] = {}
    if not args.skip_families:
        family_default = exact_config("default (auto)", "auto", "highs", args.family_limit)
        for name, suite in SUITES.items():
            if name == "adrs50" or not suite.small:
                continue
            print(f"{name}: default", file=sys.stderr)
            families[name] = run_suite(family_default, load_suite(name), lambda inst: None)

    checks: list[CrossCheck] = []
    if args.crosscheck:
        for name, suite in SUITES.items():
            if suite.small:
                check = crosscheck_references(name, args.crosscheck_limit)
                if check is not None:
                    checks.append(check)

    lines = ["# Exact solver benchmark (kvopt.exact)", "", *machine_info(), "",
             "Generated by `python scripts/bench_exact.py`. Seconds are wall time on this machine "
             "(single-threaded solvers, one case at a time).", "",
             "The 8-32 GPU frontier (branch and price vs the other backends and LNS) is in "
             "[frontier.md](frontier.md) (`scripts/bench_frontier.py`).", "",
             "## adrs50 (50 cases)", "",
             "\"default (auto)\" is `solve_exact(instance)` end to end: pipeline warm start, root lower bound, "
             "backend choice, bisection and proof. The backend rows use a fixed start given to `solve_exact` "
             "(pipeline: usually already optimal, so mostly one proof query; first fit: a poor start, so the "
             "backend does the bisection). Times exclude computing that fixed start.", "",
             *summary_table(rows), "",
             f"- default backend per case: {', '.join(f'{k} {v}' for k, v in sorted(backends_used.items()))}",
             f"- mean optimal peak (default): {default_summary.mean_peak:.7f}; expected {ADRS50_MEAN_OPTIMUM} "
             f"-> {'PASS' if mean_ok else 'FAIL'}" if default_summary.mean_peak is not None else
             "- mean optimal peak: not all cases solved -> FAIL",
             f"- target: all 50 proven optimal in < {ADRS50_TARGET_SECONDS:g} s total with the default: "
             f"{default_summary.optimal}/50 in {default_summary.total_s:.2f} s -> {'PASS' if target_ok else 'FAIL'}",
             ""]
    if families:
        lines += ["## Small hard families", "",
                  f"Default `solve_exact` with a {args.family_limit:g} s limit per case.", "",
                  *family_table(families), "", "Not proven optimal within the limit:", "", *unproven_lines(families), ""]
    if checks:
        lines += crosscheck_lines(checks, args.crosscheck_limit)
    lines += TRUST_NOTES
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
