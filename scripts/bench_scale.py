"""Scale benchmark: the pipeline heuristic vs exact LNS on large instances -> reports/scale.md.

Cases: the ``large`` family (64/256/1024 GPUs, ~4 models each) and random
instances of 64x256, 256x1024, 1024x4096 and 4096x16384 (GPUs x models)
generated here (``random_instance``).  For each case: pipeline peak and time,
LNS (``kvopt.lns.solve_lns``, started from the pipeline's placement) peak,
improvement and time, the root lower bound, the column-generation bound on the
64-GPU cases, the gap of each peak to the best certified bound, and the peak
resident memory of the process that ran the case.  Last, the LNS alone (10 s
each) on the small ``tight`` suite, where it should end with proven optima.

Every case runs in its own child process (one at a time: the machine has two
cores), so ``ru_maxrss`` is that case's peak memory.  The whole run takes about
10 minutes.  Usage::

    python scripts/bench_scale.py                 # all cases -> reports/scale.md
    python scripts/bench_scale.py --case random_1024x4096   # one case, JSON on stdout
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from kvopt.bench.machine import cpu_model

RESULT_PREFIX = "RESULT "
PIPELINE_TARGETS_S = {"random_1024x4096": 10.0, "random_4096x16384": 60.0}


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark case: where its instance comes from and the time budgets (seconds)."""

    name: str
    lns_s: float
    colgen_s: float = 0.0
    random_shape: tuple[int, int] | None = None  # (GPUs, models) for generated cases
    seed: int = 1


CASES = (
    CaseSpec("large_00", lns_s=60, colgen_s=60),
    CaseSpec("large_01", lns_s=60, colgen_s=60),
    CaseSpec("large_02", lns_s=60),
    CaseSpec("large_03", lns_s=60),
    CaseSpec("large_04", lns_s=120),
    CaseSpec("large_05", lns_s=120),
    CaseSpec("random_64x256", lns_s=60, colgen_s=60, random_shape=(64, 256)),
    CaseSpec("random_256x1024", lns_s=60, random_shape=(256, 1024)),
    CaseSpec("random_1024x4096", lns_s=120, random_shape=(1024, 4096)),
    CaseSpec("random_4096x16384", lns_s=120, random_shape=(4096, 16384)),
)


def random_instance(num_gpus: int, num_models: int, seed: int):
    """80 GB GPUs; per model (independently, ``numpy.random.default_rng(seed)``):
    size 5..25 GB, req_rate 1..10, SLO 5..10 (integers, uniform).  Weights fill
    about 75 % of the memory at 4 models per GPU."""
    from kvopt.model import Instance

    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 26, size=num_models)
    rates = rng.integers(1, 11, size=num_models)
    slos = rng.integers(5, 11, size=num_models)
    models = [{"name": f"m{i}", "size_gb": int(s), "req_rate": int(r), "slo": int(t)}
              for i, (s, r, t) in enumerate(zip(sizes, rates, slos))]
    return Instance.build(models, [80] * num_gpus, name=f"random_{num_gpus}x{num_models}",
                          meta={"generator": "bench_scale.random_instance", "seed": seed})


def load_case(spec: CaseSpec):
    if spec.random_shape is not None:
        return random_instance(*spec.random_shape, seed=spec.seed)
    from kvopt.suites import load_suite

    by_name = {inst.name: inst for inst in load_suite("large")}
    return by_name[spec.name]


def max_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gap(peak: Fraction | None, bound: Fraction) -> float | None:
    if peak is None or bound <= 0:
        return None
    return float(peak / bound - 1)


def scaled(spec: CaseSpec, factor: float) -> CaseSpec:
    """The case with its LNS and colgen budgets multiplied by ``factor`` (for quick trial runs)."""
    return CaseSpec(spec.name, spec.lns_s * factor, spec.colgen_s * factor, spec.random_shape, spec.seed)


def run_case(spec: CaseSpec) -> dict[str, Any]:
    """Everything measured on one case (run in a fresh process)."""
    from kvopt.bounds import root_lower_bound
    from kvopt.heuristics import run_heuristic
    from kvopt.lns import solve_lns

    out: dict[str, Any] = {"case": spec.name, "lns_budget_s": spec.lns_s, "colgen_budget_s": spec.colgen_s}
    t0 = time.perf_counter()
    inst = load_case(spec)
    out.update(gpus=inst.num_gpus, models=inst.num_models, build_s=time.perf_counter() - t0,
               capacities=sorted(set(inst.gpu_mem_gb)), rss_after_build_mb=max_rss_mb())

    pipeline = run_heuristic("pipeline", inst)
    out.update(pipeline_s=pipeline.seconds, pipeline_peak=pipeline.peak_kvpr, rss_after_pipeline_mb=max_rss_mb())

    t0 = time.perf_counter()
    root = root_lower_bound(inst)
    out.update(root_bound=float(root), root_bound_s=time.perf_counter() - t0)

    lns = solve_lns(inst, time_limit_s=spec.lns_s, start=pipeline.placement, seed=0)
    history = lns.details["history"]
    out.update(lns_peak=lns.peak_kvpr, lns_s=lns.seconds, lns_status=lns.status,
               lns_iterations=lns.details["iterations"], lns_accepted=lns.details["accepted"],
               lns_stop=lns.details["stop_reason"], lns_last_drop_s=history[-1][1] if len(history) > 1 else None,
               lns_sub_not_optimal=lns.details["sub_solves_not_optimal"], rss_after_lns_mb=max_rss_mb())

    best_bound, bound_source = root, "root"
    if spec.colgen_s > 0 and lns.peak_kvpr_exact is not None and lns.peak_kvpr_exact > root:
        from kvopt.exact.colgen import colgen_lower_bound

        t0 = time.perf_counter()
        found = colgen_lower_bound(inst, upper=lns.peak_kvpr_exact, time_limit_s=spec.colgen_s, rel_tol=1e-5)
        out.update(colgen_bound=float(found.bound), colgen_s=time.perf_counter() - t0,
                   colgen_certified=found.certified)
        if found.bound > best_bound:
            best_bound, bound_source = found.bound, "colgen"
    out.update(best_bound=float(best_bound), bound_source=bound_source,
               pipeline_gap=gap(pipeline.peak_kvpr_exact, best_bound), lns_gap=gap(lns.peak_kvpr_exact, best_bound),
               improvement_pct=100.0 * (pipeline.peak_kvpr - lns.peak_kvpr) / pipeline.peak_kvpr,
               max_rss_mb=max_rss_mb())
    return out


SMALL_SUITE = "tight"
SMALL_LNS_S = 10.0


def run_small_suite(budget_scale: float) -> dict[str, Any]:
    """LNS alone (from the pipeline, ``SMALL_LNS_S`` each) on every case of ``SMALL_SUITE``."""
    from kvopt.heuristics import run_heuristic
    from kvopt.lns import solve_lns
    from kvopt.suites import load_suite

    cases = []
    for inst in load_suite(SMALL_SUITE):
        pipeline = run_heuristic("pipeline", inst)
        lns = solve_lns(inst, time_limit_s=SMALL_LNS_S * budget_scale, start=pipeline.placement)
        cases.append({"case": inst.name, "gpus": inst.num_gpus, "models": inst.num_models,
                      "pipeline_peak": pipeline.peak_kvpr, "pipeline_gap": gap(pipeline.peak_kvpr_exact,
                                                                               lns.lower_bound_exact),
                      "lns_peak": lns.peak_kvpr, "lns_status": lns.status, "lns_s": lns.seconds,
                      "lns_stop": lns.details["stop_reason"]})
    return {"suite": SMALL_SUITE, "budget_s": SMALL_LNS_S * budget_scale, "cases": cases}


def run_in_child(spec: CaseSpec | str, budget_scale: float) -> dict[str, Any]:
    """Run one case in a fresh interpreter and read its result line."""
    name = spec if isinstance(spec, str) else spec.name
    proc = subprocess.run([sys.executable, __file__, "--case", name, "--budget-scale", str(budget_scale)],
                          capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"case {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


# -- the report ----------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    import ortools

    cpu = cpu_model()
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ortools": ortools.__version__,
    }


def _pct(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f} %"


def _num(value: float | None, fmt: str = ".6g") -> str:
    return "-" if value is None else format(value, fmt)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render_small(small: dict[str, Any]) -> list[str]:
    """The small-instance section: does the LNS end with a proven optimum there?"""
    cases = small["cases"]
    proven = [c for c in cases if c["lns_status"] == "optimal"]
    improved = [c for c in cases if c["lns_peak"] < c["pipeline_peak"]]
    times = sorted(c["lns_s"] for c in proven)
    out = ["", f"## Small instances: the `{small['suite']}` suite", ""]
    out.append(f"LNS alone, from the pipeline's placement, {small['budget_s']:.0f} s per case.  With 8 or fewer "
               "GPUs a stalled search grows its neighbourhood to the whole instance, whose exact solve proves "
               "the optimum.")
    out.append("")
    out.append(f"* {len(proven)} of {len(cases)} cases end proven optimal"
               + (f" (median {times[len(times) // 2]:.1f} s, slowest {times[-1]:.1f} s)" if times else "") + ".")
    out.append(f"* The LNS lowered the pipeline's peak on {len(improved)} case(s): "
               + (", ".join(f"{c['case']} {c['pipeline_peak']:.6g} -> {c['lns_peak']:.6g}" for c in improved)
                  or "none") + ".")
    return out


def render(rows: list[dict[str, Any]], machine: dict[str, str], total_s: float, budget_scale: float = 1.0,
           small: dict[str, Any] | None = None) -> str:
    out = ["# Scale benchmark: pipeline vs exact LNS", ""]
    out.append(f"Generated by `python scripts/bench_scale.py` on {machine['date']} "
               f"(whole run {total_s / 60:.1f} min, one case at a time).")
    if budget_scale != 1.0:
        out.append(f"**Trial run: every LNS/colgen budget scaled by {budget_scale:g}.**")
    out.append("")
    out.append(f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}; "
               f"Python {machine['python']}, numpy {machine['numpy']}, ortools {machine['ortools']}.")
    out += ["", "## Setup", ""]
    out.append("* **Cases**: the `large` suite (`kvopt.suites.families`; 64/256/1024 GPUs, ~4 models each; "
               "odd cases mix 80/141 GB GPUs) and `random_GxM` instances generated by the script "
               "(`random_instance`: 80 GB GPUs, per model size 5-25 GB, req_rate 1-10, SLO 5-10, "
               "uniform integers, seed 1).")
    out.append("* **LNS**: `kvopt.lns.solve_lns` with its defaults (neighbourhoods of 2 GPUs, one GPU more "
               "after every 30 rejected moves in a row up to 8 (and never again to a size whose sub-solve ran out "
               "of time), one peak GPU per neighbourhood, sub-solves by "
               "`solve_exact(backend=\"auto\")` limited to 2 s, seed 0), started from the pipeline's "
               "placement.  LNS budget (column `LNS budget`) is on top of the pipeline's time; the LNS stops "
               "early when its peak meets the root bound.  With a time limit the number of iterations, "
               "hence the result, depends on machine speed.")
    out.append("* **Bounds**: `root_lower_bound` for every case; on the 64-GPU cases with a gap left, also "
               "`colgen_lower_bound(upper=LNS peak, rel_tol=1e-5)` with the budget shown in the colgen column.  `gap = peak / best "
               "certified bound - 1`.")
    out.append("* **Memory**: peak resident set size (`ru_maxrss`) of the child process that ran the case "
               "(interpreter, numpy and OR-tools included; after building the instance, after the "
               "pipeline, at the end).")
    out += ["", "## Peak KVPR", ""]
    out.append("| case | GPUs | models | pipeline peak | LNS peak | improvement | best bound (source) "
               "| pipeline gap | LNS gap | LNS budget | LNS time | last drop at | iterations (accepted) | stop |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        out.append(
            f"| {r['case']} | {r['gpus']} | {r['models']} | {_num(r['pipeline_peak'])} | {_num(r['lns_peak'])} "
            f"| {r['improvement_pct']:.3f} % | {_num(r['best_bound'])} ({r['bound_source']}) "
            f"| {_pct(r['pipeline_gap'])} | {_pct(r['lns_gap'])} | {r['lns_budget_s']:.0f} s | {r['lns_s']:.1f} s "
            f"| {_seconds(r['lns_last_drop_s'])} | {r['lns_iterations']} ({r['lns_accepted']}) "
            f"| {r['lns_stop']} |")
    out += ["", "## Time and memory", ""]
    out.append("| case | GPUs x models | build | pipeline | target | root bound | colgen | RSS after build "
               "| RSS after pipeline | RSS after LNS | peak RSS |")
    out.append("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        target = PIPELINE_TARGETS_S.get(r["case"])
        verdict = "-" if target is None else f"< {target:.0f} s: {'met' if r['pipeline_s'] < target else 'MISSED'}"
        colgen = "-" if "colgen_s" not in r else (
            f"{r['colgen_s']:.1f} s of {r['colgen_budget_s']:.0f} s "
            f"({'certificate' if r['colgen_certified'] else 'no certificate: mediant'})")
        out.append(
            f"| {r['case']} | {r['gpus']} x {r['models']} | {r['build_s']:.2f} s | {r['pipeline_s']:.2f} s "
            f"| {verdict} | {r['root_bound_s']:.2f} s | {colgen} | {r['rss_after_build_mb']:.0f} MB "
            f"| {r['rss_after_pipeline_mb']:.0f} MB | {r['rss_after_lns_mb']:.0f} MB | {r['max_rss_mb']:.0f} MB |")
    if small is not None:
        out += render_small(small)
    out += ["", "## Notes", ""]
    out += notes(rows)
    return "\n".join(out) + "\n"


def notes(rows: list[dict[str, Any]]) -> list[str]:
    """Observations computed from the numbers (nothing hard-coded)."""
    lines = []
    at_bound = [r["case"] for r in rows if r["pipeline_gap"] == 0]
    if at_bound:
        lines.append(f"* The pipeline already meets the root bound (proven optimal) on: {', '.join(at_bound)}; "
                     "the LNS stops at once there.")
    improved = [r for r in rows if r["improvement_pct"] > 0]
    if improved:
        closed = [f"{r['case']} {_pct(r['pipeline_gap'])} -> {_pct(r['lns_gap'])}" for r in improved]
        lines.append(f"* LNS lowered the peak on {len(improved)} case(s); gap to the best bound: {'; '.join(closed)}.")
    colgen = [r for r in rows if "colgen_bound" in r]
    for r in colgen:
        better = r["colgen_bound"] > r["root_bound"]
        lines.append(f"* colgen on {r['case']}: {r['colgen_s']:.0f} s, bound {r['colgen_bound']:.8g} vs root "
                     f"{r['root_bound']:.8g} ({'tighter' if better else 'no better'}).")
    not_opt = [f"{r['case']} ({r['lns_sub_not_optimal']})" for r in rows if r["lns_sub_not_optimal"]]
    if not_opt:
        lines.append(f"* Sub-solves stopped by their 2 s limit: {', '.join(not_opt)}.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help="run one case in this process and print its JSON")
    parser.add_argument("--out", default="reports/scale.md")
    parser.add_argument("--cases", help="comma-separated subset of cases (default: all)")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="multiply the LNS and colgen budgets (quick trial runs; the report says so)")
    parser.add_argument("--json", help="also write the raw numbers to this JSON file")
    args = parser.parse_args(argv)
    specs = {s.name: s for s in CASES}
    if args.case == SMALL_SUITE:
        print(RESULT_PREFIX + json.dumps(run_small_suite(args.budget_scale)), flush=True)
        return 0
    if args.case:
        print(RESULT_PREFIX + json.dumps(run_case(scaled(specs[args.case], args.budget_scale))), flush=True)
        return 0
    chosen = [specs[name] for name in args.cases.split(",")] if args.cases else list(CASES)
    start = time.perf_counter()
    rows = []
    for spec in chosen:
        row = run_in_child(spec, args.budget_scale)
        rows.append(row)
        print(f"{spec.name}: pipeline {row['pipeline_peak']:.6g} ({row['pipeline_s']:.1f} s), "
              f"LNS {row['lns_peak']:.6g} ({row['lns_s']:.1f} s), gap {_pct(row['lns_gap'])}", flush=True)
    small = None if args.cases else run_in_child(SMALL_SUITE, args.budget_scale)
    report = render(rows, machine_info(), time.perf_counter() - start, args.budget_scale, small)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "total_s": time.perf_counter() - start,
                                               "cases": rows, "small": small}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
