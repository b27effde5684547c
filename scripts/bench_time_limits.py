"""How closely each method keeps its time limit -> reports/time_limits.md.

For a few instances where the limit binds (medium and large suites), run each
method with ``time_limit_s`` and record the wall time of the whole ``solve`` call
(start heuristic included).  The issue's target: within 10 % of the limit.
Usage: ``nice python scripts/bench_time_limits.py`` (about 2 minutes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kvopt.bench.machine import cpu_model
from kvopt.io import load_instance
from kvopt.solve import solve

CASES = (("instances/medium/medium_00.json", "exact", 10.0), ("instances/medium/medium_00.json", "auto", 10.0),
         ("instances/medium/medium_00.json", "mccormick", 10.0), ("instances/large/large_00.json", "lns", 10.0),
         ("instances/large/large_01.json", "exact", 10.0))


def main(path: str = "reports/time_limits.md") -> str:
    lines = ["# Time limits kept", "", f"Machine: {cpu_model()}, {os.cpu_count()} cores, shared with other jobs "
             f"(load average {os.getloadavg()[0]:.1f} at the start).", "",
             "| instance | method | limit s | wall s | over the limit | status |", "|---|---|---|---|---|---|"]
    for file, method, limit in CASES:
        instance = load_instance(file)
        start = time.perf_counter()
        result = solve(instance, method, time_limit_s=limit)
        wall = time.perf_counter() - start
        lines.append(f"| {instance.name} ({instance.num_models} models, {instance.num_gpus} GPUs) | {method} | "
                     f"{limit:g} | {wall:.2f} | {wall / limit - 1:+.1%} | {result.status} |")
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.1f}."]
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return text


if __name__ == "__main__":
    print(main())
