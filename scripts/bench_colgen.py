"""Column-generation lower bound vs the mediant bound -> reports/colgen_bench.md.

Usage: ``python scripts/bench_colgen.py [GPUS ...]`` (default 64 GPUs, two seeds).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from kvopt.exact.colgen import colgen_lower_bound
from kvopt.model import Instance


def random_adrs_like(num_gpus: int, seed: int) -> Instance:
    """adrs50's distribution at any size: ``num_gpus`` × 80 GB, ``2·num_gpus`` models,
    sizes 10–29 GB, rates 1–9, SLO 5–9 (``numpy.random.RandomState(seed)``)."""
    rng = np.random.RandomState(seed)
    models = [{"name": f"model_{j}", "size_gb": int(rng.randint(10, 30)), "req_rate": int(rng.randint(1, 10)),
               "slo": int(rng.randint(5, 10))} for j in range(2 * num_gpus)]
    return Instance.build(models, [80] * num_gpus, name=f"adrs_like_{num_gpus}_{seed}")


def bench_colgen(sizes: Sequence[int] = (64,), seeds: int = 2, time_limit_s: float = 120.0,
                 path: str = "reports/colgen_bench.md") -> str:
    """Colgen bound vs the mediant bound on ``random_adrs_like`` instances; markdown table to ``path``."""
    lines = ["# Column-generation lower bound vs mediant bound", "",
             f"time limit {time_limit_s:g} s per instance; upper = greedy placement's peak", "",
             "| instance | mediant | colgen | colgen/mediant − 1 | greedy upper | LP checks | s | certified |",
             "|---|---|---|---|---|---|---|---|"]
    for num_gpus in sizes:
        for seed in range(seeds):
            inst = random_adrs_like(num_gpus, seed)
            result = colgen_lower_bound(inst, time_limit_s=time_limit_s)
            lines.append(f"| {inst.name} | {float(result.mediant):.6f} | {float(result.bound):.6f} | "
                         f"{float(result.bound / result.mediant - 1):.2%} | {float(result.upper):.6f} | "
                         f"{result.checks} | {result.seconds:.1f} | {result.certified} |")
    text = "\n".join(lines) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text


if __name__ == "__main__":
    print(bench_colgen(tuple(int(a) for a in sys.argv[1:]) or (64,)))
