"""Plain-text tables for people (the CLI's default output)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from kvopt.evaluate import Evaluation
from kvopt.model import Instance, Result


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A fixed-width table; ``align`` is one char per column, ``l`` or ``r`` (numbers right by default)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for j, text in enumerate(row):
            widths[j] = max(widths[j], len(text))
    if align is None:
        align = "".join("r" if rows and isinstance(rows[0][j], (int, float)) else "l" for j in range(len(headers)))

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if a == "r" else v.ljust(w) for v, w, a in zip(values, widths, align)]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.6g}"
    return str(value)


def format_placement(instance: Instance, result: Result, evaluation: Evaluation) -> str:
    """Per-GPU memory, demand and KVPR, the peak GPU marked, then the result's summary."""
    rows = []
    for g in range(instance.num_gpus):
        names = [m.name for m, gg in zip(instance.models, result.placement.gpu_of) if gg == g]  # type: ignore[union-attr]
        mark = "<- peak" if g == evaluation.peak_gpu else ""
        rows.append([g, instance.gpu_mem_gb[g], evaluation.used_mem_gb[g], evaluation.demand[g],
                     evaluation.gpu_kvpr[g], mark, ", ".join(names)])
    table = format_table(["gpu", "mem_gb", "used_gb", "demand", "kvpr", "", "models"], rows, align="rrrrrll")
    return table + "\n\n" + format_summary(result)


def format_summary(result: Result) -> str:
    fields: list[tuple[str, Any]] = [("instance", result.instance), ("method", result.method),
                                     ("status", result.status)]
    if result.peak_kvpr is not None:
        exact = f"  (= {result.peak_kvpr_exact})" if result.peak_kvpr_exact is not None else ""
        fields.append(("peak_kvpr", f"{_cell(result.peak_kvpr)}{exact}"))
    if result.lower_bound is not None:
        fields.append(("bound", _cell(result.lower_bound)))
    if result.gap is not None:
        fields.append(("gap", f"{result.gap:.4%}" if math.isfinite(result.gap) else "inf"))
    fields.extend((key, result.details[key]) for key in ("auto_choice", "backend", "model", "reason")
                  if key in result.details)
    fields.append(("seconds", f"{result.seconds:.3f}"))
    width = max(len(key) for key, _ in fields) + 1
    return "\n".join(f"{key:<{width}} {value}" for key, value in fields)
