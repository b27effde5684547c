"""Set-partitioning backend on adrs50 per MILP solver -> reports/setpart_bench.md.

Usage: ``python scripts/bench_setpart.py`` (about a minute; CBC is the slow one).
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from kvopt.exact.candidates import minimize_peak_setpart
from kvopt.exact.setpart import DEFAULT_PATTERN_CAP, SetPartitionBackend, count_patterns
from kvopt.suites.adrs50 import generate_adrs50


def bench_adrs50(path: str = "reports/setpart_bench.md", solvers: Sequence[str] = ("auto", "highs", "pulp-highs", "cbc")
                 ) -> str:
    """Time ``minimize_peak_setpart`` on all adrs50 cases per solver; write a markdown table to ``path``."""
    cases = generate_adrs50()
    lines = ["# Set-partitioning backend on adrs50 (50 cases, exact optimum by candidate search)", "",
             "| solver | total s | checks | ms/check | all optimal | mean optimal peak |",
             "|---|---|---|---|---|---|"]
    optima: list[Fraction] = []
    for solver in solvers:
        backend = SetPartitionBackend(solver=solver)
        t0 = time.perf_counter()
        results = [minimize_peak_setpart(inst, backend=backend) for inst in cases]
        total = time.perf_counter() - t0
        checks = sum(r.details.get("checks", 0) for r in results)
        optima = [r.peak_kvpr_exact for r in results]
        mean = sum(optima) / len(optima)
        lines.append(f"| {solver} | {total:.3f} | {checks} | {1000 * total / max(checks, 1):.2f} | "
                     f"{all(r.status == 'optimal' for r in results)} | {float(mean):.7f} |")
    lines += ["", "Pattern counts at the optimum T* (per case, all classes):", "",
              "| | min | mean | max |", "|---|---|---|---|"]
    for label, maximal in (("all patterns", False), ("maximal patterns", True)):
        counts = [count_patterns(inst, t, DEFAULT_PATTERN_CAP, maximal=maximal) for inst, t in zip(cases, optima)]
        lines.append(f"| {label} | {min(counts)} | {sum(counts) / len(counts):.0f} | {max(counts)} |")
    text = "\n".join(lines) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text


if __name__ == "__main__":
    print(bench_adrs50())
