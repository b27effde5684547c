"""Benchmark of the heuristics (greedy, pipeline) on every suite, plus a scale test.

Writes ``reports/heuristics.md``: per suite and method the number of cases, how many
got a placement, mean / median / max peak KVPR, mean / max ratio to the simple lower
bound ``max(sum n / (sum C - sum s), max_i n_i / (C_max - s_i))`` and to stored reference
optima when a suite has them, and median / max seconds per case; the machine and the
date; a "scale" section timing random 1024 x 4096 (median of 3) and 4096 x 16384
instances; and the stated targets with PASS/FAIL.

Usage::

    python scripts/bench_heuristics.py [--suites adrs50 tight ...] [--skip-scale] [--out reports/heuristics.md]

Run one benchmark at a time (the machine has 2 cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kvopt.bench.machine import cpu_model
from kvopt.evaluate import parse_fraction
from kvopt.heuristics import run_heuristic
from kvopt.model import Instance, KvoptError
from kvopt.suites import SUITES, load_reference, load_suite

from kvopt.bounds import simple_lower_bound as exact_lower_bound


def simple_lower_bound(instance: Instance) -> float:
    """``max(sum n / (sum C - sum s), max_i n_i / (C_max - s_i))`` as a float (``inf`` if proven infinite)."""
    return float(exact_lower_bound(instance))

METHODS = ("greedy", "pipeline")

# Targets stated for the pipeline.
ADRS50_MEAN_TARGET = 0.039600
ADRS50_MEDIAN_SECONDS = 0.010
SCALE_TARGETS_SECONDS = {(1024, 4096): 10.0, (4096, 16384): 60.0}


# -- running ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseRun:
    """One method on one case: its peak (None if no placement), seconds and reference ratios."""

    case: str
    peak: float | None
    seconds: float
    lower_bound: float
    optimum: float | None


def run_case(method: str, instance: Instance, optimum: float | None) -> CaseRun:
    bound = simple_lower_bound(instance)
    start = time.perf_counter()
    try:
        result = run_heuristic(method, instance)
    except KvoptError:
        return CaseRun(instance.name, None, time.perf_counter() - start, bound, optimum)
    return CaseRun(instance.name, result.peak_kvpr, result.seconds, bound, optimum)


def reference_optima(suite: str) -> dict[str, float]:
    """Proven optima stored for a suite (``status == "optimal"``), as floats."""
    optima = {}
    for case, entry in load_reference(suite).items():
        if entry.get("status") == "optimal" and entry.get("value") not in (None, "inf"):
            value = parse_fraction(str(entry["value"]))
            if value is not None:
                optima[case] = float(value)
    return optima


# -- statistics ------------------------------------------------------------------------------

def ratio(value: float, reference: float) -> float | None:
    """``value / reference`` when meaningful (reference finite and positive)."""
    if not (math.isfinite(reference) and reference > 0):
        return None
    return value / reference


def mean_or_inf(values: Sequence[float]) -> float:
    return math.inf if any(math.isinf(v) for v in values) else statistics.fmean(values)


@dataclass(frozen=True)
class SuiteStats:
    suite: str
    method: str
    cases: int
    placed: int
    mean_peak: float | None
    median_peak: float | None
    max_peak: float | None
    mean_lb_ratio: float | None
    max_lb_ratio: float | None
    mean_opt_ratio: float | None
    optimal_cases: int | None
    median_seconds: float
    max_seconds: float


def summarize(suite: str, method: str, runs: Sequence[CaseRun]) -> SuiteStats:
    peaks = [r.peak for r in runs if r.peak is not None]
    lb_ratios = [x for r in runs if r.peak is not None and (x := ratio(r.peak, r.lower_bound)) is not None]
    with_opt = [r for r in runs if r.peak is not None and r.optimum is not None]
    opt_ratios = [x for r in with_opt if (x := ratio(r.peak, r.optimum)) is not None]
    seconds = [r.seconds for r in runs]
    return SuiteStats(
        suite=suite, method=method, cases=len(runs), placed=len(peaks),
        mean_peak=mean_or_inf(peaks) if peaks else None,
        median_peak=statistics.median(peaks) if peaks else None,
        max_peak=max(peaks) if peaks else None,
        mean_lb_ratio=mean_or_inf(lb_ratios) if lb_ratios else None,
        max_lb_ratio=max(lb_ratios) if lb_ratios else None,
        mean_opt_ratio=mean_or_inf(opt_ratios) if opt_ratios else None,
        optimal_cases=sum(1 for x in opt_ratios if x <= 1 + 1e-9) if opt_ratios else None,
        median_seconds=statistics.median(seconds), max_seconds=max(seconds),
    )


@dataclass(frozen=True)
class HeadToHead:
    """Pipeline against greedy case by case (no placement counts as an infinite peak)."""

    better: int
    equal: int
    worse: int


def head_to_head(pipeline_runs: Sequence[CaseRun], greedy_runs: Sequence[CaseRun]) -> HeadToHead:
    better = equal = worse = 0
    for p, g in zip(pipeline_runs, greedy_runs):
        p_peak = math.inf if p.peak is None else p.peak
        g_peak = math.inf if g.peak is None else g.peak
        if p_peak < g_peak * (1 - 1e-12):
            better += 1
        elif p_peak <= g_peak * (1 + 1e-12):
            equal += 1
        else:
            worse += 1
    return HeadToHead(better, equal, worse)


# -- scale instances ------------------------------------------------------------------------

def scale_instance_mixed(num_gpus: int, num_models: int, seed: int = 0) -> Instance:
    """10-30 GB models, a mix of 80 / 94 / 141 GB GPUs (50/30/20 %), log-normal(0, 1) rates, SLO 5-10.

    With ~4 models per GPU the weights fill ~82 % of the memory.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(10, 31, size=num_models)
    rates = np.round(rng.lognormal(0.0, 1.0, size=num_models), 3)
    slos = rng.integers(5, 11, size=num_models)
    capacities = rng.choice([80, 94, 141], size=num_gpus, p=[0.5, 0.3, 0.2]).tolist()
    models = [{"name": f"m{i}", "size_gb": int(sizes[i]), "req_rate": float(rates[i]), "slo": int(slos[i])}
              for i in range(num_models)]
    return Instance.build(models, capacities, name=f"mixed_{num_gpus}x{num_models}")


def scale_instance_llm(num_gpus: int, num_models: int, seed: int = 0) -> Instance:
    """80 GB GPUs, LLM weight sizes {2, 6, 14, 16, 26, 28, 64} GB (~16 GB mean, ~80 % full), log-normal rates."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([2, 6, 14, 16, 26, 28, 64], size=num_models, p=[0.15, 0.2, 0.2, 0.2, 0.1, 0.1, 0.05])
    rates = np.round(rng.lognormal(0.0, 1.0, size=num_models), 3)
    slos = rng.integers(5, 11, size=num_models)
    models = [{"name": f"m{i}", "size_gb": int(sizes[i]), "req_rate": float(rates[i]), "slo": int(slos[i])}
              for i in range(num_models)]
    return Instance.build(models, [80] * num_gpus, name=f"llm_{num_gpus}x{num_models}")


@dataclass(frozen=True)
class ScaleRun:
    flavor: str
    gpus: int
    models: int
    utilisation: float
    method: str
    repeats: int
    median_seconds: float
    peak: float | None
    lb_ratio: float | None


def run_scale(flavor: str, make: Callable[[int, int], Instance], gpus: int, models: int, repeats: int,
              methods: Sequence[str] = METHODS) -> list[ScaleRun]:
    instance = make(gpus, models)
    utilisation = float(instance.sizes.sum() / instance.capacities.sum())
    bound = simple_lower_bound(instance)
    out = []
    for method in methods:
        times, peak = [], None
        for _ in range(repeats if method == "pipeline" else 1):
            run = run_case(method, instance, None)
            times.append(run.seconds)
            peak = run.peak
        out.append(ScaleRun(flavor, gpus, models, utilisation, method, len(times), statistics.median(times), peak,
                            None if peak is None else ratio(peak, bound)))
    return out


# -- report ------------------------------------------------------------------------------------

def fmt(value: float | int | None, digits: int = 6) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def machine_lines() -> list[str]:
    return [
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- platform: {platform.platform()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- Python {platform.python_version()}, numpy {np.__version__}",
        f"- load average at the end (1/5/15 min): {load_average()} (other jobs share the cores: times are wall",
        "  times and grow with the load)",
    ]


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def suite_table(stats: Sequence[SuiteStats]) -> list[str]:
    lines = [
        "| suite | method | cases | placed | mean peak | median peak | max peak | mean peak/LB | max peak/LB "
        "| mean peak/opt | at opt | median ms | max ms |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in stats:
        at_opt = "-" if s.optimal_cases is None else str(s.optimal_cases)
        lines.append(
            f"| {s.suite} | {s.method} | {s.cases} | {s.placed} | {fmt(s.mean_peak, 7)} | {fmt(s.median_peak)} "
            f"| {fmt(s.max_peak)} | {fmt(s.mean_lb_ratio, 5)} | {fmt(s.max_lb_ratio, 5)} "
            f"| {fmt(s.mean_opt_ratio, 6)} | {at_opt} | {fmt_ms(s.median_seconds)} | {fmt_ms(s.max_seconds)} |"
        )
    return lines


def scale_table(runs: Sequence[ScaleRun]) -> list[str]:
    lines = [
        "| instance | GPUs | models | weights/memory | method | runs | median s | peak | peak/LB | target |",
        "|---|--:|--:|--:|---|--:|--:|--:|--:|---|",
    ]
    for r in runs:
        limit = SCALE_TARGETS_SECONDS.get((r.gpus, r.models)) if r.method == "pipeline" else None
        target = "-" if limit is None else f"< {limit:g} s: {'PASS' if r.median_seconds < limit else 'FAIL'}"
        peak = "no placement" if r.peak is None else fmt(r.peak)
        lines.append(f"| {r.flavor} | {r.gpus} | {r.models} | {r.utilisation:.1%} | {r.method} | {r.repeats} "
                     f"| {r.median_seconds:.2f} | {peak} | {fmt(r.lb_ratio, 5)} | {target} |")
    return lines


def target_lines(stats: Sequence[SuiteStats], duels: dict[str, HeadToHead]) -> list[str]:
    lines = []
    by_key = {(s.suite, s.method): s for s in stats}
    adrs = by_key.get(("adrs50", "pipeline"))
    if adrs is not None and adrs.mean_peak is not None:
        ok = adrs.mean_peak <= ADRS50_MEAN_TARGET
        lines.append(f"- adrs50 pipeline mean peak {adrs.mean_peak:.7f} <= {ADRS50_MEAN_TARGET}: "
                     f"{'PASS' if ok else 'FAIL'}")
        ok = adrs.median_seconds < ADRS50_MEDIAN_SECONDS
        lines.append(f"- adrs50 pipeline median time {fmt_ms(adrs.median_seconds)} ms < "
                     f"{ADRS50_MEDIAN_SECONDS * 1e3:g} ms: {'PASS' if ok else 'FAIL'}")
    greedy = by_key.get(("adrs50", "greedy"))
    if greedy is not None and greedy.mean_peak is not None:
        lines.append(f"- adrs50 greedy mean peak {greedy.mean_peak:.6f} (published: 0.047866)")
    for suite, duel in duels.items():
        ok = duel.worse == 0 and duel.better > 0
        lines.append(f"- {suite}: pipeline better than greedy on {duel.better}, equal on {duel.equal}, "
                     f"worse on {duel.worse} cases: {'PASS' if ok else 'FAIL'}")
    return lines


def write_report(path: Path, stats: Sequence[SuiteStats], duels: dict[str, HeadToHead],
                 scale: Sequence[ScaleRun]) -> None:
    lines = [
        "# Heuristics benchmark",
        "",
        "Generated by `python scripts/bench_heuristics.py`.  Peak = max over GPUs of KVPR = N_g / (C_g - S_g);",
        "LB = max(sum n / (sum C - sum s), max_i n_i / (C_max - s_i)) (the simple lower bound; where the optimum",
        "needs few models per GPU it is far from achievable, so peak/LB > 1 does not mean a gap to the optimum);",
        "opt = stored proven optima (`instances/<suite>/reference.json`), when present.  Times are the heuristic's",
        "own wall time per case (evaluation excluded).  A case where a method found no memory-feasible placement",
        "counts in `cases` but not in `placed`; an infinite peak (a GPU with demand and no free memory) makes the",
        "mean infinite.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Targets",
        "",
        *target_lines(stats, duels),
        "",
        "## Suites",
        "",
        *suite_table(stats),
        "",
    ]
    if scale:
        lines += [
            "## Scale",
            "",
            "Random instances made by this script (seed 0): `mixed` = 10-30 GB models on a mix of 80/94/141 GB",
            "GPUs, `llm` = LLM weight sizes {2, 6, 14, 16, 26, 28, 64} GB on 80 GB GPUs; request rates",
            "log-normal(0, 1), SLOs 5-10 s, ~4 models per GPU.  The pipeline's 1024 x 4096 time is the median of",
            "3 runs; greedy and the 4096 x 16384 runs are single runs.",
            "",
            *scale_table(scale),
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


# -- main ----------------------------------------------------------------------------------------

def bench_suites(names: Sequence[str]) -> tuple[list[SuiteStats], dict[str, HeadToHead]]:
    stats: list[SuiteStats] = []
    duels: dict[str, HeadToHead] = {}
    for suite in names:
        instances = load_suite(suite)
        optima = reference_optima(suite)
        runs = {m: [run_case(m, inst, optima.get(inst.name)) for inst in instances] for m in METHODS}
        for method in METHODS:
            stats.append(summarize(suite, method, runs[method]))
            print(_progress_line(stats[-1]), file=sys.stderr, flush=True)
        if suite != "adrs50":
            duels[suite] = head_to_head(runs["pipeline"], runs["greedy"])
    return stats, duels


def _progress_line(s: SuiteStats) -> str:
    return (f"{s.suite:8s} {s.method:8s} placed {s.placed}/{s.cases} mean peak {fmt(s.mean_peak, 7)} "
            f"mean/LB {fmt(s.mean_lb_ratio, 5)} median {fmt_ms(s.median_seconds)} ms")


def bench_scale(repeats: int) -> list[ScaleRun]:
    runs: list[ScaleRun] = []
    for flavor, make in (("mixed", scale_instance_mixed), ("llm", scale_instance_llm)):
        for (gpus, models), reps in (((1024, 4096), repeats), ((4096, 16384), 1)):
            for run in run_scale(flavor, make, gpus, models, reps):
                runs.append(run)
                print(f"scale {flavor} {gpus}x{models} {run.method}: {run.median_seconds:.2f} s, "
                      f"peak/LB {fmt(run.lb_ratio, 5)}", file=sys.stderr, flush=True)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", nargs="*", default=None, help="suites to run (default: all registered)")
    parser.add_argument("--skip-scale", action="store_true", help="skip the 1024x4096 / 4096x16384 timings")
    parser.add_argument("--scale-repeats", type=int, default=3, help="pipeline runs on 1024x4096 (median)")
    parser.add_argument("--out", default="reports/heuristics.md")
    args = parser.parse_args(argv)
    names = args.suites if args.suites else list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    stats, duels = bench_suites(names)
    scale = [] if args.skip_scale else bench_scale(args.scale_repeats)
    write_report(Path(args.out), stats, duels, scale)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
