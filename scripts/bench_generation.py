"""Benchmark: a whole generation of evolved programs through ``kvopt evaluate FOLDER`` (issue 18).

Writes ``reports/generation.md``: the wall time to score ``--programs`` generated
programs (typical of an evolution run: greedy, bisection and local-search
variants, a few broken ones) on adrs50 plus the hard families (tight, dense,
llm, hetero), cold with 1 and with 2 jobs, then again from the score cache; the
per-call overhead (wall × jobs − time inside the programs, per call); and the
score ranking's spread (how many distinct scores the generation got).

Usage::

    python scripts/bench_generation.py [--programs 100] [--jobs 1,2] [--out reports/generation.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvopt.bench.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("adrs50", "tight", "dense", "llm", "hetero")

GREEDY = '''
def compute_model_placement(gpu_num, models, gpu_mem=None):
    capacity = list(gpu_mem) if gpu_mem is not None else [80.0] * gpu_num
    order = sorted(models, key=lambda m: {key}, reverse=True)
    placement = {{g: [] for g in range(gpu_num)}}
    free = list(capacity)
    demand = [0.0] * gpu_num
    for m in order:
        fits = [g for g in range(gpu_num) if m.model_size <= free[g] - {slack}]
        if not fits:
            fits = [g for g in range(gpu_num) if m.model_size <= free[g]]
        if not fits:
            raise ValueError("model " + m.model_name + " fits nowhere")
        g = min(fits, key=lambda g: {choice})
        placement[g].append(m)
        free[g] -= m.model_size
        demand[g] += m.req_rate / m.slo
    {polish}
    return placement
'''

POLISH = '''
    def kvpr(g):
        return float("inf") if free[g] <= 0 else demand[g] / free[g]
    for _ in range({rounds}):
        worst = max(range(gpu_num), key=kvpr)
        moved = False
        for m in sorted(placement[worst], key=lambda m: -m.req_rate / m.slo):
            for g in range(gpu_num):
                if g == worst or m.model_size > free[g]:
                    continue
                n = m.req_rate / m.slo
                after_src = (demand[worst] - n) / (free[worst] + m.model_size)
                after_dst = (demand[g] + n) / (free[g] - m.model_size) if free[g] > m.model_size else float("inf")
                if max(after_src, after_dst) < kvpr(worst) - 1e-12:
                    placement[worst].remove(m)
                    placement[g].append(m)
                    free[worst] += m.model_size
                    free[g] -= m.model_size
                    demand[worst] -= n
                    demand[g] += n
                    moved = True
                    break
            if moved:
                break
        if not moved:
            break
'''

KEYS = ("m.req_rate / m.slo", "m.model_size", "m.req_rate / m.slo / (m.model_size + 1)",
        "m.req_rate / m.slo + {w} * m.model_size")
CHOICES = ("demand[g] / free[g] if free[g] > 0 else float('inf')",
           "(demand[g] + m.req_rate / m.slo) / (free[g] - m.model_size) if free[g] > m.model_size else float('inf')",
           "-free[g]")
BROKEN = (
    "def compute_model_placement(gpu_num, models):\n    raise RuntimeError('index out of range')\n",
    "def compute_model_placement(gpu_num, models):\n    return [models]\n",
    "def compute_model_placement(gpu_num, models):\n    return {0: list(models) + list(models[:1])}\n",
    "import time\ndef compute_model_placement(gpu_num, models):\n    time.sleep(0.05)\n"
    "    return {g: list(models[g::gpu_num]) for g in range(gpu_num)}\n",
)


def generation(count: int, seed: int = 18) -> list[str]:
    """``count`` distinct program sources: ~80 % greedy/polish variants, ~10 % bisection, ~10 % broken."""
    rng = random.Random(seed)
    bisection = (ROOT / "tests" / "programs" / "bisect_ffd.py").read_text()
    out: list[str] = []
    while len(out) < count:
        i = len(out)
        if i % 10 == 9:
            out.append(BROKEN[(i // 10) % len(BROKEN)] + f"# variant {i}\n")
        elif i % 10 == 8:
            out.append(bisection.replace("range(40)", f"range({rng.randint(15, 45)})") + f"# variant {i}\n")
        else:
            key = rng.choice(KEYS).format(w=round(rng.uniform(0.001, 0.05), 4))
            polish = POLISH.format(rounds=rng.choice((0, 5, 20, 60)))
            out.append(GREEDY.format(key=key, choice=rng.choice(CHOICES), slack=rng.choice((0, 0, 1, 2)),
                                     polish=polish) + f"# variant {i}\n")
    return out


def run(folder: Path, jobs: int, cache: Path) -> tuple[float, dict]:
    env = {**os.environ, "KVOPT_CACHE_DIR": str(cache)}
    args = [sys.executable, "-m", "kvopt.cli", "evaluate", str(folder), "--jobs", str(jobs), "--json"]
    for suite in SUITES:
        args += ["--suite", suite]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"kvopt evaluate failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=100)
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--out", default=str(ROOT / "reports" / "generation.md"))
    args = parser.parse_args()
    job_counts = [int(j) for j in args.jobs.split(",")]
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="kvopt-generation-") as tmp:
        folder = Path(tmp) / "programs"
        folder.mkdir()
        for i, source in enumerate(generation(args.programs)):
            (folder / f"program_{i:03d}.py").write_text(source)
        result = None
        for jobs in job_counts:
            cache = Path(tmp) / f"cache-{jobs}"
            cold_wall, result = run(folder, jobs, cache)
            warm_wall, warm = run(folder, jobs, cache)
            programs = result["programs"]
            calls = sum(r["cases"] or 0 for r in programs) + len(programs)  # + one load probe each
            inside = sum(r["seconds"] or 0.0 for r in programs)
            rows.append({"jobs": jobs, "cold": cold_wall, "warm": warm_wall, "calls": calls, "inside": inside,
                         "overhead_ms": 1000 * (cold_wall * jobs - inside) / calls, "cached": warm["cached"]})
            print(f"jobs {jobs}: cold {cold_wall:.1f} s, from the cache {warm_wall:.2f} s", file=sys.stderr)
    programs = result["programs"]
    scores = [r["combined_score"] for r in programs]
    fully_valid = sum(1 for r in programs if r["loaded"] and r["valid"] == r["cases"])
    lines = [
        "# A generation of evolved programs through `kvopt evaluate FOLDER`",
        "",
        f"Generated by `python scripts/bench_generation.py --programs {args.programs}` on "
        f"{dt.date.today().isoformat()}: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Linux {platform.release()}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
        f"{args.programs} distinct programs (greedy variants with different orders, GPU choices and "
        "local-search rounds, bisection variants, one in ten broken: crash, garbage, model placed twice, slow "
        f"and wrong) on {', '.join(SUITES)} — each case one sandboxed call (default isolation), trusted state "
        "loaded once, a fresh score cache for the cold run. Programs without a `gpu_mem` keyword skip hetero.",
        "",
        "| jobs | calls | cold wall s | per program s | time in programs s | overhead per call ms | "
        "from the cache s |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(f"| {r['jobs']} | {r['calls']} | {r['cold']:.1f} | {r['cold'] / args.programs:.2f} | "
                     f"{r['inside']:.1f} | {r['overhead_ms']:.0f} | {r['warm']:.2f} ({r['cached']} cached) |")
    lines += [
        "",
        "Overhead per call = (cold wall × jobs − time inside the programs) / calls: process start, sandbox, "
        "load, answer decoding, validation and scoring. The cache run re-reads every program file, hashes it "
        "and finds its row: no program runs.",
        "",
        f"Scores: {len(set(round(s, 6) for s in scores))} distinct values among {len(scores)} programs, "
        f"best {max(scores):.4f}, median {sorted(scores)[len(scores) // 2]:.4f}; "
        f"{fully_valid} programs valid on every case.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
